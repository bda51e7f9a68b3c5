"""The v2 generator's output stage in the form every engine runs: exact, and cheaper.

v2 ends with a bilinear x2 upsampling of its half-resolution features (24 channels), a 3x3
convolution (reflect padded) to 4 channels at full resolution, and the alpha composite over the
plate. At full resolution that is memory-bound: a 24-channel map is built, stored and read again
by a convolution with only 4 outputs (OpenVINO INT8, 1 thread, AMD EPYC: the resize and that
convolution took 2.1 of 11.7 ms; ONNX Runtime INT8 spends even more there). Both steps are linear,
so together they are one 3x3 convolution on the half-resolution map to 4 x 4 channels, one per
pixel of each 2x2 output block ("phases"); the composite is elementwise, so it runs on the phases
too, and one pixel shuffle makes the frame. Measured on the demo generator (AMD EPYC, 1 thread):
OpenVINO INT8 12.9 -> 10.0 ms, ONNX Runtime INT8 23.9 -> 18.2 ms.

Only the frame's border differs: there the full-resolution reflect padding mirrors across the edge,
which no padding of the half-resolution map reproduces. So the outermost ring of phases (the frame's
two-pixel border) is recomputed by the original layers from two-pixel strips along the edges. The
result equals the training graph up to float rounding (about 1e-6); export's parity gates check it
on every bundle.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dancenow.training.phase import phase_kernel, phases


def is_v2_head(model: nn.Sequential) -> bool:
    """Whether `model` ends as v2's output layer does (bilinear x2, then a reflect-padded 3x3 conv)."""
    if len(model) < 2:
        return False
    up, conv = model[-2], model[-1]
    return (isinstance(up, nn.Upsample) and up.mode == "bilinear" and not up.align_corners
            and up.scale_factor in (2, 2.0, (2, 2), (2.0, 2.0)) and isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3)
            and conv.stride == (1, 1) and conv.padding == (1, 1) and conv.padding_mode == "reflect" and conv.groups == 1)


class PhaseLogits(nn.Module):
    """`conv(bilinear x2 (x))` run as phases, exact: v2's head up to its logits (what a residual
    enhancer reads of the coarse network), and the base of PhaseHead."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv  # the original layer: the ring
        # No padding: it computes the interior; the outermost ring of phases comes from the strips.
        self.phase = nn.Conv2d(conv.in_channels, conv.out_channels * 4, 3)
        with torch.no_grad():
            self.phase.weight.copy_(phase_kernel(conv.weight))
            self.phase.bias.copy_(conv.bias.repeat_interleave(4))

    def phased(self, x: torch.Tensor) -> torch.Tensor:
        return phases(x, self.conv, self.phase(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.phased(x), 2)


class PhaseHead(PhaseLogits):
    """Half-resolution features -> (frame, alpha or None) at full resolution, as described above."""

    def __init__(self, conv: nn.Conv2d, colours: int, plate: torch.Tensor | None):
        super().__init__(conv)
        self.colours = colours
        self.register_buffer("plate", None if plate is None else F.pixel_unshuffle(plate, 2), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        y = self.phased(x)
        c = 4 * self.colours
        if self.plate is None:
            return F.pixel_shuffle(torch.tanh(y[:, :c]), 2), None
        person, alpha = torch.tanh(y[:, :c]), torch.sigmoid(y[:, c:])
        a = alpha.repeat(1, self.colours, 1, 1)  # each colour's 4 phases take their pixel's alpha
        return F.pixel_shuffle(a * person + (1 - a) * self.plate, 2), F.pixel_shuffle(alpha, 2)


class DeployGenerator(nn.Module):
    """A v2 generator with its output stage as a PhaseHead; same interface as Generator for export."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        c = generator.config
        self.config = c
        self.trunk = generator.model[:-2]
        self.head = PhaseHead(generator.model[-1], c.out_channels, generator.plate if c.alpha else None)

    def forward(self, pose: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.layers(pose, previous)[0]

    def layers(self, pose: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self.head(self.trunk(torch.cat([pose, previous], dim=1)))


class DeployHD(nn.Module):
    """An HD generator (training/enhancer.py) in the form every engine runs; the same function:
    - the enhancer's output stage as a PhaseHead, without the 512-px 16-channel map the plain head
      would build and read again;
    - the input folded 2x2 into channels once, each image on its own, where training folds the pair
      for the enhancer and pools it for the coarse network: the coarse input (the 2x2 average) is
      then a 1x1 convolution of the folded channels, not a full-size pooling pass, and the OpenVINO
      engine turns each image's fold and its uint8 conversion into one transpose of bytes
      (engines/openvino_engine.py: `_fold_input`; 512x320, INT8, 1 thread, interleaved: 15.0 ->
      13.9 ms). v2 at 256 gains nothing from the same (4.88 -> 4.83 ms), so it keeps its form."""

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.config = c = generator.config
        self.coarse_trunk = generator.coarse.model[:-2]
        self.enhancer = generator.enhancer
        # enhance_residual: the coarse network's own head (phases) gives the logits its head reads
        self.coarse_head = PhaseLogits(generator.coarse.model[-1]) if c.enhance_residual else None
        if not isinstance(self.enhancer.stem[0], nn.PixelUnshuffle):
            raise ValueError("DeployHD expects the enhancer's stem to start with PixelUnshuffle(2)")
        self.head = PhaseHead(generator.enhancer.head[-1], c.out_channels, generator.plate)
        self.average = nn.Conv2d(c.in_channels * 4, c.in_channels, 1, bias=False)  # each channel's 2x2 mean
        with torch.no_grad():
            self.average.weight.copy_(torch.eye(c.in_channels).repeat_interleave(4, dim=1)[:, :, None, None] / 4)

    def forward(self, pose: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.layers(pose, previous)[0]

    def layers(self, pose: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        folded = torch.cat([F.pixel_unshuffle(pose, 2), F.pixel_unshuffle(previous, 2)], dim=1)  # = of the pair
        e = self.enhancer
        trunk = self.coarse_trunk(self.average(folded))
        y = e.blocks(e.stem[1:](folded) + e.bridge(trunk))
        if self.coarse_head is not None:
            y = torch.cat([y, self.coarse_head(trunk)], 1)
        return self.head(y)


def deploy_form(generator: nn.Module) -> nn.Module:
    """What export writes for `generator`: the PhaseHead form for v2 and HD generators, else the generator."""
    c = getattr(generator, "config", None)
    if getattr(c, "enhance", False):
        return DeployHD(generator).eval() if is_v2_head(generator.enhancer.head) else generator
    model = getattr(generator, "model", None)
    if c is None or not getattr(c, "fold", False) or getattr(c, "local_enhancer", False) or not isinstance(model, nn.Sequential):
        return generator
    return DeployGenerator(generator).eval() if is_v2_head(model) else generator

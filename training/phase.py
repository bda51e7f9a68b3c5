"""v2's output stage (bilinear x2, then a 3x3 convolution) as its 2x2 phases at the input's
resolution: the same function without building the full-resolution map the convolution reads
(export/phase_head.py has the story and the figures). Training runs the HD enhancer's head this
way (its forward and backward at 512x320 took 217 of the enhancer's 311 ms); export builds the
inference form from the same kernel."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# Bilinear x2 (align_corners=False) followed by a 3x3 tap, in one dimension: for output phase p and
# tap offset a, the weights of the half-resolution pixels at offsets -1, 0, +1 (keyed by p + a).
_TAPS = {-1: (0.75, 0.25, 0.0), 0: (0.25, 0.75, 0.0), 1: (0.0, 0.75, 0.25), 2: (0.0, 0.25, 0.75)}


def phase_kernel(weight: torch.Tensor) -> torch.Tensor:
    """A full-resolution 3x3 kernel (O, C, 3, 3) after bilinear x2, as a half-resolution kernel
    (4 O, C, 3, 3) whose output channel o * 4 + 2 p + q is pixel (p, q) of each 2x2 block
    (pixel_shuffle's order)."""
    taps = torch.tensor([[_TAPS[p + a] for a in (-1, 0, 1)] for p in (0, 1)], dtype=torch.float64,
                        device=weight.device)  # p, a, u
    w = torch.einsum("ocab,pau,qbv->opqcuv", weight.double(), taps, taps)
    return w.reshape(weight.shape[0] * 4, weight.shape[1], 3, 3).float()


def phases(x: torch.Tensor, conv: nn.Conv2d, interior: torch.Tensor | None = None) -> torch.Tensor:
    """`conv(bilinear x2 (x))` as its 2x2 phases at x's resolution (pixel_shuffle gives the frame),
    exact. `interior`: the phase convolution's unpadded output when the caller has it (PhaseHead's
    copied weights); else computed from `conv`'s own weights, so gradients reach them (training)."""
    if interior is None:
        interior = F.conv2d(x, phase_kernel(conv.weight), conv.bias.repeat_interleave(4))
    # Two rows (or columns) from each edge suffice for the outermost phases; stacking both edges
    # in one strip runs one small convolution instead of two. Assembled around the interior
    # without slicing it (measured: slicing and re-joining cost about 0.2 ms a frame more).
    cols = _exact(conv, torch.cat([x[:, :, :, :2], x[:, :, :, -2:]], 3))
    y = torch.cat([cols[:, :, 1:-1, :1], interior, cols[:, :, 1:-1, -1:]], 3)
    rows = _exact(conv, torch.cat([x[:, :, :2], x[:, :, -2:]], 2))
    return torch.cat([rows[:, :, :1], y, rows[:, :, -1:]], 2)


def _exact(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """The original layers on a strip, as phases."""
    return F.pixel_unshuffle(conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)), 2)

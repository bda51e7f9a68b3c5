"""EDN's networks: pix2pixHD's global generator and local enhancer, the multi-scale PatchGAN,
and the face residual generator.

Generators take the label map and the previous generated frame stacked (6 channels, both in
[-1, 1]) and return a frame in [-1, 1] (tanh).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from torch import nn

from dancenow.training.phase import phases


@dataclass
class GeneratorConfig:
    in_channels: int = 6  # label map (3) + previous frame (3)
    out_channels: int = 3
    ngf: int = 64
    n_downsample: int = 4
    n_blocks: int = 9
    norm: str = "instance"  # "instance" (pix2pixHD) or "batch" (folds into convs, quantizes better)
    upsample: str = "transpose"  # "transpose" (pix2pixHD), "resize" (nearest + conv) or "bilinear" (+ conv)
    local_enhancer: bool = False  # gpu-quality: pix2pixHD's local enhancer around the global net
    # v2 (cpu-realtime): the trunk runs from half resolution down. The input is folded 2x2 into
    # channels (pixel unshuffle, lossless) and only a 3x3 convolution to the output's channels runs
    # at full resolution: a small net's full-resolution stem and head cost more time than their
    # FLOPs say (few channels, memory-bound).
    fold: bool = False
    # v2: predict the person's colour and an alpha, composited over the target's plate (a buffer
    # set by `set_plate`, exported as a constant): the background stays the real room.
    alpha: bool = False
    ngf_local: int = 32
    n_blocks_local: int = 3
    # HD: this (v2) generator runs at half the frame's size as the coarse network, inside a
    # full-resolution enhancer of `ngf_enhance` channels (training/enhancer.py). The coarse network
    # alone still makes the half-size frame: one bundle, two sizes.
    enhance: bool = False
    ngf_enhance: int = 16
    n_blocks_enhance: int = 2
    # HD: the enhancer's head also reads the coarse network's own logits (colour and alpha at half
    # size), initialised to pass them through bilinear x2 unchanged: the full-size frame starts as
    # the upscaled half-size one and the enhancer learns what to add (training/enhancer.py).
    enhance_residual: bool = False

    @property
    def factor(self) -> int:
        """Both sides of the input must be multiples of this."""
        return 2 ** (self.n_downsample + (1 if self.local_enhancer or self.enhance else 0))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


def norm_layer(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}: use 'instance', 'batch' or 'none'")


def up_block(cin: int, cout: int, kind: str, norm: str) -> list[nn.Module]:
    if kind == "transpose":
        conv: list[nn.Module] = [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1)]
    elif kind == "resize":
        conv = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cin, cout, 3, padding=1)]
    elif kind == "bilinear":  # nearest copies each feature into a 2x2 block: stacked, a visible grid
        conv = [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False), nn.Conv2d(cin, cout, 3, padding=1)]
    else:
        raise ValueError(f"unknown upsample {kind!r}: use 'transpose', 'resize' or 'bilinear'")
    return [*conv, norm_layer(norm, cout), nn.ReLU(True)]


class ResnetBlock(nn.Module):
    def __init__(self, dim: int, norm: str):
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm_layer(norm, dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), norm_layer(norm, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def global_trunk(c: GeneratorConfig, ngf: int, in_channels: int) -> list[nn.Module]:
    """pix2pixHD's global generator up to (not including) its output layer; with `fold`, it
    starts at half resolution (2 ngf channels) and ends there too."""
    if c.fold:
        layers: list[nn.Module] = [nn.PixelUnshuffle(2), nn.Conv2d(in_channels * 4, ngf * 2, 3, padding=1,
                                                                    padding_mode="reflect"),
                                   norm_layer(c.norm, ngf * 2), nn.ReLU(True)]
    else:
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), norm_layer(c.norm, ngf), nn.ReLU(True)]
    for i in range(1 if c.fold else 0, c.n_downsample):
        m = 2**i
        layers += [nn.Conv2d(ngf * m, ngf * m * 2, 3, stride=2, padding=1), norm_layer(c.norm, ngf * m * 2), nn.ReLU(True)]
    m = 2**c.n_downsample
    layers += [ResnetBlock(ngf * m, c.norm) for _ in range(c.n_blocks)]
    for i in range(c.n_downsample - (1 if c.fold else 0)):
        m = 2 ** (c.n_downsample - i)
        layers += up_block(ngf * m, ngf * m // 2, c.upsample, c.norm)
    return layers


def output_layer(c: GeneratorConfig, channels: int) -> list[nn.Module]:
    """The trunk's features to the output's channels (3, or 4 with alpha), before the activation.

    With `fold` the trunk ends at half resolution: one bilinear upsampling and a 3x3 convolution
    to the few output channels (cheap at full resolution). A pixel-shuffle head was tried first: its
    four sub-pixel filters drifted apart under the GAN and left 2x2 colour speckle on faces. (Export
    runs this layer's exact function as a half-resolution convolution and a pixel shuffle, its four
    filters tied by the bilinear weights: export/phase_head.py.)"""
    out = c.out_channels + (1 if c.alpha else 0)
    if c.fold:
        return [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                nn.Conv2d(channels * 2, out, 3, padding=1, padding_mode="reflect")]
    return [nn.ReflectionPad2d(3), nn.Conv2d(channels, out, 7)]


class Generator(nn.Module):
    """Global generator, optionally wrapped by the local enhancer (gpu-quality)."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()):
        super().__init__()
        self.config = c = config
        self.register_buffer("plate", torch.zeros(1, c.out_channels, 1, 1), persistent=False)
        if c.enhance:
            from dancenow.training.enhancer import Enhancer

            if c.local_enhancer or not (c.fold and c.alpha):
                raise ValueError("enhance wraps a v2 generator (fold and alpha), not the local enhancer")
            self.coarse = Generator(replace(c, enhance=False))
            self.enhancer = Enhancer(c)
            return
        if not c.local_enhancer:
            self.model = nn.Sequential(*global_trunk(c, c.ngf, c.in_channels), *output_layer(c, c.ngf))
            return
        if c.fold or c.alpha:
            raise ValueError("fold and alpha are for the global generator alone (not the local enhancer)")
        # Local enhancer: the global trunk (at ngf) runs on a 2x downsampled input; a shallow
        # full-resolution branch (ngf_local) adds its features before the residual blocks.
        g = c.ngf
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.global_net = nn.Sequential(*global_trunk(c, g, c.in_channels))
        lf = c.ngf_local
        self.local_down = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(c.in_channels, lf, 7), norm_layer(c.norm, lf), nn.ReLU(True),
            nn.Conv2d(lf, g, 3, stride=2, padding=1), norm_layer(c.norm, g), nn.ReLU(True),
        )
        self.local_up = nn.Sequential(
            *[ResnetBlock(g, c.norm) for _ in range(c.n_blocks_local)],
            *up_block(g, lf, c.upsample, c.norm),
            nn.ReflectionPad2d(3), nn.Conv2d(lf, c.out_channels, 7), nn.Tanh(),
        )

    def set_plate(self, plate: torch.Tensor) -> None:
        """The background (1 x 3 x H x W in [-1, 1]) an alpha generator composites the person over."""
        self.plate = plate.to(self.plate)
        if self.config.enhance:
            self.coarse.set_plate(nn.functional.avg_pool2d(self.plate, 2))

    def forward(self, pose: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        return self.layers(pose, previous)[0]

    def layers(self, pose: torch.Tensor, previous: torch.Tensor,
               logits: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The frame and (with `alpha`) the person's alpha in [0, 1], or its logit with `logits`
        (the mask loss: an L1 on the sigmoid's output cannot pull a saturated alpha back, and a
        first v2 left a hole in the face that the room showed through)."""
        x = torch.cat([pose, previous], dim=1)
        c = self.config
        if c.local_enhancer:
            return self.local_up(self.local_down(x) + self.global_net(self.downsample(x))), None
        if c.enhance:  # the coarse trunk on the half-size input; the enhancer at full size
            y = self._enhanced(x)[0]
        elif c.fold:
            y = self._head(self.model[:-2](x))
        else:
            y = self.model(x)
        return self._compose(y, logits)

    def hd_layers(self, pose: torch.Tensor, previous: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """HD training: the full-size frame and alpha logit, and the coarse network's own half-size
        frame and logit from the same trunk, so that a loss on them keeps the bundle's half size
        good while both train together (without it, dancer A's half size fell to body SSIM 0.777
        and a blurred face)."""
        full, trunk, half = self._enhanced(torch.cat([pose, previous], dim=1))
        half = self.coarse._head(trunk) if half is None else half
        return (*self._compose(full, True), *self.coarse._compose(half, True))

    def _enhanced(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """HD: the full-size logits, the coarse trunk, and the coarse network's own logits where the
        (residual) enhancer read them (None otherwise: not computed)."""
        trunk = self.coarse.model[:-2](nn.functional.avg_pool2d(x, 2))
        half = self.coarse._head(trunk) if self.config.enhance_residual else None
        return self.enhancer(x, trunk, half), trunk, half

    def _head(self, trunk: torch.Tensor) -> torch.Tensor:
        """v2's head (bilinear x2, 3x3 convolution) run as its phases: the same function, faster."""
        return nn.functional.pixel_shuffle(phases(trunk, self.model[-1]), 2)

    def _compose(self, y: torch.Tensor, logits: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        if not self.config.alpha:
            return torch.tanh(y), None
        person, logit = torch.tanh(y[:, :self.config.out_channels]), y[:, self.config.out_channels:]
        alpha = torch.sigmoid(logit)
        return alpha * person + (1 - alpha) * self.plate, logit if logits else alpha


def count_gflop(model: nn.Module, *inputs: torch.Tensor) -> float:
    """FLOPs of one forward pass (2 x multiply-adds of convolutions), in GFLOP."""
    total = 0

    def hook(mod: nn.Module, _inp, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(mod, nn.Conv2d | nn.ConvTranspose2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            spatial = out.shape[2] * out.shape[3] if isinstance(mod, nn.Conv2d) else inputs_hw[id(mod)]
            total += 2 * k * mod.out_channels * spatial * out.shape[0]

    inputs_hw: dict[int, int] = {}

    def pre(mod: nn.Module, inp) -> None:
        inputs_hw[id(mod)] = inp[0].shape[2] * inp[0].shape[3]

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            handles.append(m.register_forward_hook(hook))
            handles.append(m.register_forward_pre_hook(pre))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for h in handles:
            h.remove()
    return total / 1e9


@dataclass
class FaceConfig:
    """EDN's face stage: a small generator that adds a residual to the crop around the nose."""

    ngf: int = 32
    n_downsample: int = 2
    n_blocks: int = 3
    norm: str = "instance"
    upsample: str = "resize"
    # The refined crop's colour (each channel minus the luma) is low-passed by a fixed 5x5 Gaussian
    # of this sigma (0: off, as targets made before it): the face stage's GAN painted pink and green
    # speckle on the skin (issue 24), while eyes, brows and the mouth live in the luma (and the
    # footage is 4:2:0 video: its colour has half the resolution anyway).
    chroma_sigma: float = 0.0
    # EDN's face stage works at the face's own resolution: at 2 the net refines the crop at twice
    # its size in the frame (a 512 frame's 64 px face at 128, the footage's own pixels, from
    # `prepare`'s faces_hi.npy), and hands the frame its area average. The bottleneck keeps a mouth
    # 4 px high instead of 2. 1: the crop's size (targets made before it).
    scale: int = 1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> FaceConfig:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})


class FaceGenerator(nn.Module):
    """Input: the label-map crop and the generated crop (6 channels); output: the refined crop
    (generated + a tanh residual, its colour low-passed with `chroma_sigma`, clamped to [-1, 1]), the
    size of the input crops; with `hi`, at `scale` times that size (what training judges)."""

    def __init__(self, config: FaceConfig = FaceConfig()):
        super().__init__()
        self.config = config
        g = GeneratorConfig(in_channels=6, ngf=config.ngf, n_downsample=config.n_downsample,
                            n_blocks=config.n_blocks, norm=config.norm, upsample=config.upsample)
        self.model = nn.Sequential(*global_trunk(g, g.ngf, 6), nn.ReflectionPad2d(3), nn.Conv2d(g.ngf, 3, 7), nn.Tanh())
        if config.chroma_sigma > 0:
            x = torch.arange(5, dtype=torch.float32) - 2
            k = torch.exp(-x ** 2 / (2 * config.chroma_sigma ** 2))
            k2 = torch.outer(k, k) / k.sum() ** 2
            self.register_buffer("chroma_kernel", k2.expand(3, 1, 5, 5).clone(), persistent=False)

    def forward(self, label_crop: torch.Tensor, frame_crop: torch.Tensor, hi: bool = False) -> torch.Tensor:
        s = self.config.scale
        if s > 1:
            label_crop, frame_crop = (nn.functional.interpolate(t, scale_factor=s, mode="bilinear", align_corners=False)
                                      for t in (label_crop, frame_crop))
        out = frame_crop + self.model(torch.cat([label_crop, frame_crop], dim=1))
        if self.config.chroma_sigma > 0:
            luma = (out * out.new_tensor(LUMA).view(1, 3, 1, 1)).sum(1, keepdim=True)
            colour = nn.functional.pad(out - luma, (2, 2, 2, 2), mode="reflect")
            out = luma + nn.functional.conv2d(colour, self.chroma_kernel, groups=3)
        out = torch.clamp(out, -1.0, 1.0)
        return out if s == 1 or hi else nn.functional.avg_pool2d(out, s)


LUMA = (0.299, 0.587, 0.114)  # BT.601 weights

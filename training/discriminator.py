"""pix2pixHD's multi-scale PatchGAN, as EDN uses it.

EDN's discriminator judges two consecutive frames together with their label maps (12 channels:
label t, frame t, label t+1, frame t+1), so it can punish flicker as well as bad frames; the
face stage uses the same network on (label crop, face crop), 6 channels. Every scale returns its
intermediate features too, for the feature-matching loss.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from dancenow.training.networks import norm_layer


@dataclass
class DiscriminatorConfig:
    in_channels: int = 12  # (label, frame) x 2 consecutive frames
    ndf: int = 32
    n_layers: int = 3
    num_scales: int = 2
    norm: str = "instance"

    def to_dict(self) -> dict:
        return asdict(self)


class PatchDiscriminator(nn.Module):
    """One scale: strided 4x4 convolutions; returns every block's output (the last is the patch map)."""

    def __init__(self, c: DiscriminatorConfig):
        super().__init__()
        nf = c.ndf
        blocks: list[nn.Sequential] = [nn.Sequential(nn.Conv2d(c.in_channels, nf, 4, 2, 2), nn.LeakyReLU(0.2, True))]
        for i in range(1, c.n_layers + 1):
            prev, nf = nf, min(nf * 2, 512)
            stride = 2 if i < c.n_layers else 1
            blocks.append(nn.Sequential(nn.Conv2d(prev, nf, 4, stride, 2), norm_layer(c.norm, nf), nn.LeakyReLU(0.2, True)))
        blocks.append(nn.Sequential(nn.Conv2d(nf, 1, 4, 1, 2)))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """PatchGANs on the input at full, 1/2, 1/4 ... resolution; returns [scale][block] tensors."""

    def __init__(self, config: DiscriminatorConfig = DiscriminatorConfig()):
        super().__init__()
        self.config = config
        self.scales = nn.ModuleList(PatchDiscriminator(config) for _ in range(config.num_scales))
        self.down = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[list[torch.Tensor]]:
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = self.down(x)
            out.append(d(x))
        return out

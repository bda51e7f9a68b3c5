"""HD's full-resolution enhancer around the v2 generator (pix2pixHD's coarse-to-fine scheme).

The v2 generator runs on the frame at half size (the coarse network; alone, it makes the
half-size frame). The enhancer takes the full-size pose and previous frame folded 2x2 into
channels (lossless, so its layers run at half resolution like v2's trunk), adds the coarse
trunk's features (a 1x1 convolution, then bilinear x2: linear, so in this order it costs a
quarter), refines them with a few residual blocks, and ends as v2 does: bilinear x2 and a 3x3
convolution to colour and alpha at full size (export turns that into its exact half-resolution
phase form). Thin layers at full resolution cost far more than their FLOPs (issue 24: an
8-channel full-resolution enhancer took 32 ms for 4.9 GFLOP), hence the fold.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dancenow.training.networks import GeneratorConfig, ResnetBlock, norm_layer
from dancenow.training.phase import phases


class Enhancer(nn.Module):
    def __init__(self, c: GeneratorConfig):
        super().__init__()
        e = c.ngf_enhance
        self.stem = nn.Sequential(nn.PixelUnshuffle(2), nn.Conv2d(c.in_channels * 4, e, 3, padding=1, padding_mode="reflect"),
                                  norm_layer(c.norm, e), nn.ReLU(True))
        self.bridge = nn.Sequential(nn.Conv2d(c.ngf * 2, e, 1),
                                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False))
        self.blocks = nn.Sequential(*[ResnetBlock(e, c.norm) for _ in range(c.n_blocks_enhance)])
        out = c.out_channels + 1  # colour and alpha's logit, as v2's head
        self.head = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                  nn.Conv2d(e, out, 3, padding=1, padding_mode="reflect"))

    def features(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """The half-resolution features the head turns into the frame."""
        return self.blocks(self.stem(x) + self.bridge(coarse))

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """Colour and alpha logits at full size: `self.head`'s function, run as its phases (training
        at 512x320: the plain head's forward and backward took 217 of the enhancer's 311 ms)."""
        return F.pixel_shuffle(phases(self.features(x, coarse), self.head[-1]), 2)

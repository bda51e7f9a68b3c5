"""HD's full-resolution enhancer around the v2 generator (pix2pixHD's coarse-to-fine scheme).

The v2 generator runs on the frame at half size (the coarse network; alone, it makes the
half-size frame). The enhancer takes the full-size pose and previous frame folded 2x2 into
channels (lossless, so its layers run at half resolution like v2's trunk), adds the coarse
trunk's features (a 1x1 convolution, then bilinear x2: linear, so in this order it costs a
quarter), refines them with a few residual blocks, and ends as v2 does: bilinear x2 and a 3x3
convolution to colour and alpha at full size (export turns that into its exact half-resolution
phase form). With `enhance_residual` that convolution also reads the coarse network's own logits
(at half size, as the features), its weights on them set to pass them through and the rest to
zero: the enhancer stage starts from the upscaled half-size frame and learns what to add. Without
it, the full-size frame began from nothing and after 45 minutes was still below its own half size
upscaled (dancer B, PSNR 21.39 vs 21.61 dB). Thin layers at full resolution cost far more than
their FLOPs (issue 24: an 8-channel full-resolution enhancer took 32 ms for 4.9 GFLOP), hence the
fold.
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
        self.residual = c.enhance_residual
        self.head = nn.Sequential(nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                                  nn.Conv2d(e + (out if self.residual else 0), out, 3, padding=1, padding_mode="reflect"))
        if self.residual:
            with torch.no_grad():
                conv = self.head[-1]
                conv.weight.zero_()
                conv.bias.zero_()
                conv.weight[:, e:, 1, 1] = torch.eye(out)

    def features(self, x: torch.Tensor, coarse: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """The half-resolution map the head turns into the frame: the refined features, and with
        `enhance_residual` the coarse network's logits (`logits`) beside them."""
        y = self.blocks(self.stem(x) + self.bridge(coarse))
        if self.residual:
            if logits is None:
                raise ValueError("a residual enhancer needs the coarse network's logits")
            y = torch.cat([y, logits], 1)
        return y

    def forward(self, x: torch.Tensor, coarse: torch.Tensor, logits: torch.Tensor | None = None) -> torch.Tensor:
        """Colour and alpha logits at full size: `self.head`'s function, run as its phases (training
        at 512x320: the plain head's forward and backward took 217 of the enhancer's 311 ms)."""
        return F.pixel_shuffle(phases(self.features(x, coarse, logits), self.head[-1]), 2)

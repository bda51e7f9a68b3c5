"""EDN's losses: LSGAN, discriminator feature matching, L1, an optional VGG19 perceptual loss.

The perceptual loss needs VGG19 weights, which are never downloaded: the user passes a local
file (`--vgg-weights`, a torchvision-style state dict). VGG19's feature layers are defined here
in a few lines because torchvision is not a dependency.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from dancenow.errors import DanceNowError


def lsgan(predictions: list[list[torch.Tensor]], real: bool) -> torch.Tensor:
    """Least-squares GAN loss, averaged over the discriminator's scales (last block = patch map)."""
    losses = []
    for feats in predictions:
        p = feats[-1]
        losses.append(F.mse_loss(p, torch.ones_like(p) if real else torch.zeros_like(p)))
    return torch.stack(losses).mean()


def feature_matching(fake: list[list[torch.Tensor]], real: list[list[torch.Tensor]]) -> torch.Tensor:
    """pix2pixHD/EDN weighting: sum over scales and intermediate blocks of L1 between the
    discriminator's features on fake and (detached) real, each weighted 4 / (n_layers + 1) / scales."""
    num_d = len(fake)
    n_layers = len(fake[0]) - 2  # blocks = first + n_layers + output
    w_feat, w_d = 4.0 / (n_layers + 1), 1.0 / num_d
    total = fake[0][0].new_zeros(())
    for fs, rs in zip(fake, real, strict=True):
        for f, r in zip(fs[:-1], rs[:-1], strict=True):
            total = total + w_d * w_feat * F.l1_loss(f, r.detach())
    return total


# VGG19's convolutional part ("M" = max pooling), as torchvision numbers its `features` layers.
_VGG19 = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512]
_SLICES = (2, 7, 12, 21, 30)  # after relu1_1, relu2_1, relu3_1, relu4_1, relu5_1
_WEIGHTS = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)  # pix2pixHD's VGGLoss weights


class VGGLoss(nn.Module):
    """pix2pixHD's perceptual loss on VGG19 features, from local weights only."""

    def __init__(self, weights_path: str | os.PathLike):
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for v in _VGG19:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
                cin = v
        self.features = nn.Sequential(*layers[: _SLICES[-1]])
        try:
            state = torch.load(weights_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise DanceNowError(f"cannot read VGG19 weights {weights_path} ({type(e).__name__}): pass a torchvision "
                                "vgg19 state dict saved with torch.save") from None
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        mine = {k: v for k, v in state.items() if k.startswith("features.") and int(k.split(".")[1]) < _SLICES[-1]}
        try:
            self.load_state_dict(mine, strict=True)
        except RuntimeError as e:
            raise DanceNowError(f"{weights_path} does not hold VGG19 `features.*` weights ({str(e)[:120]}...)") from None
        self.requires_grad_(False).eval()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        x = torch.cat([fake, real]).add(1).div(2).sub(self.mean).div(self.std)
        loss = fake.new_zeros(())
        start = 0
        for end, w in zip(_SLICES, _WEIGHTS, strict=True):
            x = self.features[start:end](x)
            f, r = x.chunk(2)
            loss = loss + w * F.l1_loss(f, r.detach())
            start = end
        return loss


def adversarial(D: nn.Module, fake: torch.Tensor, real: torch.Tensor, lambda_feat: float
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The generator's LSGAN loss and feature matching against `D`, judged on (fake, real) in one
    pass (the real half's features are the targets, detached)."""
    n = fake.shape[0]
    preds = D(torch.cat([fake, real]))
    p_fake = [[f[:n] for f in s] for s in preds]
    p_real = [[f[n:].detach() for f in s] for s in preds]
    return lsgan(p_fake, True), feature_matching(p_fake, p_real) * lambda_feat


def discriminator(D: nn.Module, fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss on real, loss on fake) for `D`: real pairs are real, generated (detached) are fake."""
    n = fake.shape[0]
    preds = D(torch.cat([fake.detach(), real]))
    return lsgan([[f[n:] for f in s] for s in preds], True), lsgan([[f[:n] for f in s] for s in preds], False)

"""Training profiles: what a target's networks look like and how long they train.

`cpu-realtime` must run live on two cores: a compact global generator (ngf 16, 3 down-samplings,
6 residual blocks, about 5 GFLOP a frame at 256x192, 2 M parameters). It upsamples by nearest resize + 3x3
convolution instead of transposed convolutions: ONNX Runtime's INT8 quantizer leaves
ConvTranspose in fp32 (27% of the time in its profile), while resize + conv quantizes fully, and
it avoids checkerboard artifacts. `gpu-quality` is EDN's setting: pix2pixHD's global generator
(ngf 64) inside the local enhancer (ngf 32) at 512x1024.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from dancenow.errors import DanceNowError
from dancenow.training.discriminator import DiscriminatorConfig
from dancenow.training.networks import FaceConfig, GeneratorConfig


@dataclass
class Profile:
    name: str
    size: tuple[int, int]  # (H, W) the profile is meant for (the data's own size is used to train)
    generator: GeneratorConfig
    face: FaceConfig
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    face_discriminator: DiscriminatorConfig = field(
        default_factory=lambda: DiscriminatorConfig(in_channels=6, ndf=32, n_layers=2, num_scales=1))
    steps: int = 3000
    face_steps: int = 600
    batch: int = 1  # per process
    lr: float = 2e-4
    beta1: float = 0.5
    lambda_feat: float = 10.0  # feature matching (EDN/pix2pixHD)
    lambda_l1: float = 50.0  # L1 to the real frame
    lambda_vgg: float = 10.0  # perceptual, only with --vgg-weights
    lambda_face_l1: float = 50.0
    checkpoint_every: int = 250
    log_every: int = 25
    image_every: int = 250

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_realtime() -> Profile:
    return Profile(
        name="cpu-realtime", size=(256, 192),
        generator=GeneratorConfig(ngf=16, n_downsample=3, n_blocks=6, norm="instance", upsample="resize"),
        face=FaceConfig(ngf=16, n_downsample=2, n_blocks=3, norm="instance", upsample="resize"),
        discriminator=DiscriminatorConfig(in_channels=12, ndf=32, n_layers=3, num_scales=2),
        steps=3000, face_steps=600,
    )


def gpu_quality() -> Profile:
    return Profile(
        name="gpu-quality", size=(512, 1024),
        generator=GeneratorConfig(ngf=64, n_downsample=4, n_blocks=9, norm="instance", upsample="transpose",
                                  local_enhancer=True, ngf_local=32, n_blocks_local=3),
        face=FaceConfig(ngf=32, n_downsample=2, n_blocks=5, norm="instance", upsample="resize"),
        discriminator=DiscriminatorConfig(in_channels=12, ndf=64, n_layers=3, num_scales=3),
        steps=60000, face_steps=10000, checkpoint_every=1000, log_every=50, image_every=1000,
    )


PROFILES = {"cpu-realtime": cpu_realtime, "gpu-quality": gpu_quality}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise DanceNowError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}")
    return PROFILES[name]()

"""Training profiles: what a target's networks look like and how long they train.

`cpu-realtime` (v2) must run live on two cores, AVX2 laptops included: a compact global generator
whose trunk starts at half resolution (the input folded 2x2 into channels) and whose only
full-resolution layer is a 3x3 convolution to the output (ngf 12, 3 down-samplings, 5 residual
blocks, bilinear upsampling, 2.1 GFLOP a frame at 256x192, 0.9 M parameters), predicting the
person's colour and alpha over the target's background plate. Measured on OpenVINO, 1 thread,
under ONEDNN_MAX_CPU_ISA=AVX2 (Intel Xeon with AMX, 2 Dec 2026): NNCF INT8 19.7 ms against v1's
39.0 ms in the same session. The size was chosen from a quality-against-time curve on dancer A at
equal training time (ngf 8, 12, 16 and 12 with 9 blocks; README): the body saturates at ngf 12,
wider helps the face but breaks the AVX2 budget (ngf 16: 30 ms). `cpu-realtime-v1` is the
previous generator (ngf 16, a 7x7 stem and head at full resolution, nearest-resize upsampling, no
alpha), kept to compare against and to retrain old targets. Nearest upsampling copies each bottleneck feature into an 8x8 block, and
v1's outputs show that grid over clothes; a pixel-shuffle head (tried for v2) left 2x2 colour
speckle on faces: v2 upsamples bilinearly, with one convolution at full resolution.
`gpu-quality` is EDN's setting: pix2pixHD's global generator (ngf 64)
inside the local enhancer (ngf 32) at 512x1024.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

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
    enhance_steps: int = 0  # HD: the enhancer stage (the coarse network frozen for its first `fix_global`)
    fix_global: float = 0.6
    coarse_share: float = 0.4  # HD with --minutes: the coarse stage's share of the time before the face stage
    face_share: float = 0.15  # with --minutes: the face stage's share of the whole budget (the last)
    enhance_discriminator: DiscriminatorConfig = field(
        default_factory=lambda: DiscriminatorConfig(in_channels=12, ndf=32, n_layers=3, num_scales=3))
    batch: int = 1  # per process
    lr: float = 2e-4
    lr_decay: float = 0.5  # over this last fraction of each stage the rate falls linearly to 0 (pix2pixHD)
    beta1: float = 0.5
    lambda_feat: float = 10.0  # feature matching (EDN/pix2pixHD)
    # L1 to the real frame. cpu-realtime uses 100: the person is a fifth of the frame and the plate
    # makes the rest almost free, so at 50 the GAN terms outweighed it; 100 lifted body SSIM, face
    # SSIM and pose error on all three clips at equal steps (dancer A 0.806 -> 0.817, README).
    lambda_l1: float = 50.0
    lambda_vgg: float = 10.0  # perceptual, only with --vgg-weights
    lambda_face_l1: float = 50.0
    lambda_mouth: float = 0.0  # face stage: an L1 on the box around the lips (training/stages.py mouth_weights)
    # The face discriminator judges two consecutive crops (training/stages.py face_stage; its
    # `face_discriminator` then takes 12 channels, whatever that config says).
    face_temporal: bool = False
    # An extra L1 on the face crop in the generator stage: the face is 2% of a full-body frame, so
    # the frame's L1 spends almost nothing on it; the face stage alone (a residual on the
    # generator's face) could not recover what the generator never learnt. Dancer A, face / body
    # SSIM: without 0.728 / 0.810, at 12 0.768 / 0.806; at 25 the face gained more (0.794) but tai
    # chi's body lost 0.030 and dancer B's PSNR fell below the nearest-pose baseline (README).
    lambda_face_region: float = 0.0
    # An extra L1 on a band along the forearms and hands (training/stages.py limb_weights), for the
    # same reason: a forearm across the chest is a few hundred pixels of the frame. The demo at 12
    # (with the arms drawn over the torso): a desk performer's forearms within 20 degrees on 89-94 %
    # of frames, against 79-90 % without it (DEMO_CHECKPOINT.md); not yet measured on footage.
    lambda_limb: float = 0.0
    # HD: the coarse network's own half-size frames keep their L1 and mask terms, at this weight,
    # while it trains together with the enhancer (the bundle's half size: `--size half`).
    lambda_coarse: float = 0.5
    # Where the camera moved (registration not still), learn the frames with the plate as their room
    # (training/plate.py over_plate): against the raw frames, whose room drifts from the plate, the
    # generator painted streaks on it (dancer C at 256, 2000 steps: room pixels off the plate by
    # more than 24 levels 1.63 % -> 0.01 %; body SSIM 0.475 -> 0.459, docs/HD_LOG.md). On a tripod, only
    # where `prepare --clean-room` painted a changing room out of the plate (dancer B's subtitles).
    plate_target: bool = True
    lambda_mask: float = 10.0  # cross-entropy of the generator's alpha to the prepared person mask (alpha generators)
    checkpoint_every: int = 250
    log_every: int = 25
    image_every: int = 250

    def to_dict(self) -> dict:
        return asdict(self)


def cpu_realtime() -> Profile:
    return Profile(
        name="cpu-realtime", size=(256, 192),
        generator=GeneratorConfig(ngf=12, n_downsample=3, n_blocks=5, norm="instance", upsample="bilinear",
                                  fold=True, alpha=True),
        face=FaceConfig(ngf=16, n_downsample=2, n_blocks=3, norm="instance", upsample="resize"),
        discriminator=DiscriminatorConfig(in_channels=12, ndf=32, n_layers=3, num_scales=2),
        steps=3000, face_steps=600, lambda_face_region=12.0, lambda_l1=100.0,
    )


def cpu_hd() -> Profile:
    """HD: 512 px high; v2 at 256 inside a full-resolution enhancer (training/enhancer.py). The
    enhancer's width (16 channels, 2 blocks): OpenVINO bf16, 1 thread, 512x320, Intel Xeon with AMX
    (5 Dec 2026, a noisy host): 8 channels 27 ms, 16 channels 16-28 ms, 24 channels 29-36 ms,
    16 with 4 blocks 30-38 ms, against v2 itself at 512x320 36.5 ms and at 256x160 9.0 ms."""
    base = cpu_realtime()
    return replace(base, name="cpu-hd", size=(512, 384),
                   # The residual enhancer (7 Dec 2026, dancer B, 15 minutes, same seed): body SSIM 0.828 vs
                   # 0.814, PSNR 20.95 vs 20.63 dB, face SSIM 0.688 vs 0.671; the 512 generator +12 % time.
                   generator=replace(base.generator, enhance=True, ngf_enhance=16, n_blocks_enhance=2, enhance_residual=True),
                   # The face stage at 128 px from the footage's own pixels (FaceConfig.scale, prepare's
                   # faces_hi.npy), dancer B's face stage alone on two generators (Intel Xeon, 7 Dec 2026):
                   # face SSIM 0.706 -> 0.714 and 0.698 -> 0.720, mouth r 0.40 -> 0.53 and 0.22 -> 0.43; a
                   # step 1.4x, the deployed face pass 4x (docs/HD_LOG.md).
                   face=replace(base.face, chroma_sigma=1.0, scale=2),
                   # The enhancer stage's 3-scale full-size discriminator cost more than the generator
                   # (one step at 512x288, one thread: its part 820 ms of the generator's update and 726
                   # ms its own at ndf 32; 359 + 274 ms at ndf 16), so at ndf 16 the same minutes buy
                   # more enhancer steps.
                   enhance_discriminator=DiscriminatorConfig(in_channels=12, ndf=16, n_layers=3, num_scales=3),
                   lambda_mouth=50.0,
                   # One generator's face stage retrained at more steps (Intel Xeon, 7 Dec 2026): dancer B
                   # 1620 -> 2620 face SSIM 0.703 -> 0.710, tai chi 1348 -> 2200 0.637 -> 0.646 and the face
                   # mesh found on its frames 53 -> 74 %: a quarter of the minutes instead of 15 %. The
                   # temporal face discriminator (`face_temporal`) stays off: +0.003-0.005 face SSIM but
                   # the mesh found on tai chi 13-19 points lower in two pairs (docs/HD_LOG.md).
                   face_share=0.25,
                   steps=3000, enhance_steps=3000, face_steps=600)


def cpu_realtime_v1() -> Profile:
    """The same training, the previous generator (and without the face-region loss, as it was)."""
    return replace(cpu_realtime(), name="cpu-realtime-v1", lambda_face_region=0.0, lambda_l1=50.0,
                   generator=GeneratorConfig(ngf=16, n_downsample=3, n_blocks=6, norm="instance", upsample="resize"))


def gpu_quality() -> Profile:
    return Profile(
        name="gpu-quality", size=(512, 1024),
        generator=GeneratorConfig(ngf=64, n_downsample=4, n_blocks=9, norm="instance", upsample="transpose",
                                  local_enhancer=True, ngf_local=32, n_blocks_local=3),
        face=FaceConfig(ngf=32, n_downsample=2, n_blocks=5, norm="instance", upsample="resize"),
        discriminator=DiscriminatorConfig(in_channels=12, ndf=64, n_layers=3, num_scales=3),
        steps=60000, face_steps=10000, checkpoint_every=1000, log_every=50, image_every=1000,
    )


PROFILES = {"cpu-realtime": cpu_realtime, "cpu-hd": cpu_hd, "cpu-realtime-v1": cpu_realtime_v1, "gpu-quality": gpu_quality}


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise DanceNowError(f"unknown profile {name!r}: use one of {', '.join(PROFILES)}")
    return PROFILES[name]()

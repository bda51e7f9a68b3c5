"""What `dancenow serve` runs: one dataclass, checked when made (a clear error before anything binds)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dancenow.errors import DanceNowError
from dancenow.realtime.live.virtualcam import VirtualCameraConfig
from dancenow.realtime.serve.encoder import DEFAULT_BITRATE, MAX_BITRATE, MIN_BITRATE
from dancenow.realtime.serve.publish import publish_kind


@dataclass
class ServeConfig:
    """What `dancenow serve` runs. Port 0 picks a free port (tests)."""

    target: Path | None = None
    source: str = "demo"
    host: str = "127.0.0.1"
    port: int = 8080
    backend: str = "auto"
    size: str = "auto"  # an HD bundle's size: auto (measured), full or half (engines/sizes.py)
    layout: str = "target"
    background: str = "plate"  # behind the person (alpha targets): plate, green, blue, black, white or an image
    token: str | None = None
    max_peers: int = 8
    calibration: Path | None = None
    # pipeline paints counter + capture time into frames (pages show glass-to-glass latency);
    # None: on, unless publishing (an audience should not see the blocks)
    stamp: bool | None = None
    max_body: int = 64_000  # bytes; an SDP offer is a few kB
    consent_interval: float = 1.0  # aioice's ICE consent check period (default 5 s)
    consent_failures: int = 3  # missed checks before a vanished peer is dropped (default 6)
    connect_timeout: float = 15.0  # a peer that never connects is dropped after this long
    # seconds a peer's WebRTC close, or a request still in flight at shutdown, may take before the
    # server goes on without it (one wedged connection must not hold every other one, or `stop`)
    close_timeout: float = 5.0
    bitrate: int = DEFAULT_BITRATE  # bits/s of the one VP8 stream every viewer gets (and of RTMP's H.264)
    publish: tuple[str, ...] = ()  # WHIP endpoint or RTMP URLs to publish the stream to (publish.py)
    publish_token: str | None = None  # bearer token for the WHIP endpoints
    targets: Path | None = None  # where named targets live (make-target, the studio); default targets_dir()
    virtual_camera: VirtualCameraConfig | None = None  # also offer the target as a camera (the show then always runs)

    def __post_init__(self) -> None:
        self.publish = tuple(self.publish)
        for url in self.publish:
            publish_kind(url)  # a clear error now for a URL that cannot work
        if self.stamp is None:
            self.stamp = not self.publish
        if not MIN_BITRATE <= self.bitrate <= MAX_BITRATE:
            raise DanceNowError(f"--bitrate {self.bitrate} is out of range: give 100k to 20M")
        if self.target is not None:
            self.target = Path(self.target)
        if not 0 <= self.port <= 65535:
            raise DanceNowError(f"port {self.port} is out of range: give 1-65535 (or 0 for any free port)")
        if self.close_timeout <= 0:
            raise DanceNowError(f"close_timeout must be above 0 s, got {self.close_timeout}")
        if self.max_peers < 1:
            raise DanceNowError(f"--max-peers must be at least 1, got {self.max_peers}")
        if self.token is not None and len(self.token) < 8:
            raise DanceNowError("the token is too short: give at least 8 characters, or none for a random one")

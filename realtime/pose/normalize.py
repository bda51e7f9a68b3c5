"""EDN's global pose normalization: the performer's body size and position mapped onto the target's.

Everybody Dance Now (Chan et al. 2019, sec. 3.3) maps a source pose into the target video by a
scale and a translation that depend on how close the performer stands to the camera, read off the
ankles. From each video we fit statistics:

- ankle y per frame = the lower ankle in the image (the standing foot);
- `ankle_close` = the largest ankle y (closest to the camera), `ankle_median` = their median, and
  `ankle_far` = as EDN does, from the ankle positions above the median, those whose distance to the
  median mirrors the close one's (the far end of the range seen as far as the close end);
- `height_close`/`height_far` = body heights (head to the mean of the ankles) of frames whose
  ankles are near each position (a high percentile: a crouch must not shrink the reference).

For a source frame with ankle y: p = (y - src_far) / (src_close - src_far); the target ankle
y = tgt_far + p (tgt_close - tgt_far); scale = s_far + p (s_close - s_far), s_* = tgt_h_* / src_h_*.
Every point (body, face, hands) is scaled about the source anchor and moved onto the target
anchor. Horizontally the anchor is the video's typical hip-centre x, so a performer's offset from
where they usually stand is kept, scaled into the target's frame. When the source shows too
little depth range to tell two positions apart, one scale and one offset are used instead (the
stats say so in `mode`/`note`, and a warning is logged).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from dancenow.errors import DanceNowError
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.stance import typical_stance
from dancenow.schema import parse, read_json

log = logging.getLogger(__name__)

TWO_POSITION = "two-position"
ONE_SCALE = "one-scale"


@dataclass
class NormalizeConfig:
    """How statistics are fitted and how far the mapping may extrapolate."""

    min_frames: int = 10  # full-body frames needed to fit statistics
    near: float = 0.15  # "near a position" = within this fraction of the ankle range
    height_percentile: float = 95.0  # of the heights near each position
    min_depth_range: float = 0.08  # ankle range below this x median body height -> one scale
    p_clip: tuple[float, float] = (-0.5, 1.5)  # how far beyond the seen depths the scale may extrapolate
    visibility: float = 0.3  # keypoints below this confidence are not measured


@dataclass
class PoseStats:
    """One video's body statistics, in pixels of a frame of `frame_size` (height, width)."""

    frame_size: tuple[int, int]
    ankle_close: float
    ankle_far: float
    ankle_median: float
    height_close: float
    height_far: float
    height_median: float
    x_center: float  # median hip-centre x
    frames: int  # full-body frames the statistics came from
    mode: str = TWO_POSITION  # or ONE_SCALE when the ankle range was too small
    note: str = ""
    # the 33 body points of the video's most typical full-body pose (`stance.typical_stance`):
    # what a target shows of itself where a performer shows nothing; None in files made before
    rest: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self) -> None:
        self.frame_size = (int(self.frame_size[0]), int(self.frame_size[1]))
        if min(self.frame_size) <= 0:
            raise ValueError(f"frame_size {self.frame_size} must be positive")
        if self.mode not in (TWO_POSITION, ONE_SCALE):
            raise ValueError(f"mode {self.mode!r} must be {TWO_POSITION!r} or {ONE_SCALE!r}")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["frame_size"] = list(self.frame_size)
        d["rest"] = [list(p) for p in self.rest] if self.rest is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict, where: str = "pose statistics") -> PoseStats:
        """Type-checked, every field named in the error; nothing else is accepted."""
        fix = "re-run the calibration (`dancenow calibrate`) or the preparation"
        return parse(cls, d, where, fix).check(where, fix)

    @classmethod
    def read(cls, path: str | Path, what: str = "calibration file") -> PoseStats:
        """Statistics from a JSON file (`dancenow calibrate` writes them)."""
        fix = f"record one with `dancenow calibrate -o {path}`"
        return parse(cls, read_json(path, what, fix), str(path), fix).check(str(path), fix)

    def check(self, where: str, fix: str) -> PoseStats:
        """Refuse values no body in its frame has: statistics read from a file could hold any
        numbers, and a zero height or a zero ankle range would divide by zero in every frame."""
        h, w = self.frame_size
        limit = 10.0 * max(h, w)
        problem = None
        if max(h, w) > 65536:
            problem = f"frame_size {[h, w]} is larger than any video (at most 65536 px a side)"
        for name in ("height_close", "height_far", "height_median"):
            if problem is None and not 1.0 <= getattr(self, name) <= limit:
                problem = f"{name} {getattr(self, name):g} must be a body height between 1 and {limit:g} px"
        for name in ("ankle_close", "ankle_far", "ankle_median", "x_center"):
            if problem is None and abs(getattr(self, name)) > limit:
                problem = f"{name} {getattr(self, name):g} is more than {limit:g} px off a {h}x{w} frame"
        if problem is None and self.frames < 0:
            problem = f"frames {self.frames} must not be negative"
        if problem is None and self.rest is not None and len(self.rest) != sk.NUM_BODY:
            problem = f"rest has {len(self.rest)} points, not the body's {sk.NUM_BODY}"
        if problem is None and self.rest is not None and np.abs(np.asarray(self.rest)).max() > limit:
            problem = f"rest has a point more than {limit:g} px off a {h}x{w} frame"
        if problem is None and self.two_position and self.ankle_close - self.ankle_far < 1.0:
            problem = (f"ankle_close {self.ankle_close:g} must lie at least 1 px below ankle_far {self.ankle_far:g} "
                       f"in {TWO_POSITION} mode (or the mode must be {ONE_SCALE})")
        if problem:
            raise DanceNowError(f"{where}: {problem}: {fix}")
        return self

    @property
    def two_position(self) -> bool:
        return self.mode == TWO_POSITION


@dataclass
class _Measure:
    """What one pose contributes to the statistics (None when the body is not fully visible)."""

    ankle: float
    height: float
    hip_x: float


def _measure(pose: Pose, visibility: float) -> _Measure | None:
    if not pose.detected:
        return None
    height = pose.body_height(visibility)
    vis = pose.visible(visibility)
    if height is None or height <= 0 or not (vis[sk.LEFT_HIP] and vis[sk.RIGHT_HIP]):
        return None
    ankles = [i for i in sk.ANKLE_POINTS if vis[i]]
    hip_x = (pose.points[sk.LEFT_HIP, 0] + pose.points[sk.RIGHT_HIP, 0]) / 2
    return _Measure(float(pose.points[ankles, 1].max()), height, float(hip_x))


def _anchor_y(pose: Pose, visibility: float) -> float | None:
    vis = pose.visible(visibility)
    ankles = [i for i in sk.ANKLE_POINTS if vis[i]]
    return float(pose.points[ankles, 1].max()) if ankles else None


def _fit(ankle: np.ndarray, height: np.ndarray, hip_x: np.ndarray, frame_size: tuple[int, int],
         config: NormalizeConfig) -> PoseStats:
    """The statistics of per-frame measurements (see the module docstring)."""
    if len(ankle) < config.min_frames:
        raise DanceNowError(
            f"only {len(ankle)} frames show the whole body (head to ankles, hips), {config.min_frames} are "
            "needed to fit pose statistics: use footage where the feet are in view"
        )
    close = float(ankle.max())
    median = float(np.median(ankle))
    reach = close - median
    above = ankle[ankle < median]
    far = median
    if above.size:
        mirror = np.abs((median - above) - reach)
        cluster = above[mirror <= config.near * reach]
        far = float(cluster.max()) if cluster.size else float(above[np.argmin(mirror)])
    span = close - far
    tol = config.near * span

    def height_near(pos: float) -> float:
        return float(np.percentile(height[np.abs(ankle - pos) <= tol], config.height_percentile))

    height_median = float(np.percentile(height, config.height_percentile))
    stats = PoseStats(
        frame_size=frame_size, ankle_close=close, ankle_far=far, ankle_median=median,
        height_close=height_near(close), height_far=height_near(far), height_median=height_median,
        x_center=float(np.median(hip_x)), frames=int(len(ankle)),
    )
    if span < config.min_depth_range * float(np.median(height)):
        stats.mode = ONE_SCALE
        stats.note = (f"ankle range {span:.1f} px is below {config.min_depth_range:g} x body height: "
                      "too little depth for two positions, using one scale and one offset")
        stats.height_close = stats.height_far = height_median
    return stats


def fit_stats(poses, config: NormalizeConfig | None = None) -> PoseStats:
    """Statistics of a pose sequence (frames without a fully visible body are skipped)."""
    config = config or NormalizeConfig()
    poses = list(poses)
    ms = [m for m in (_measure(p, config.visibility) for p in poses) if m is not None]
    frame_size = next((p.frame_size for p in poses if p.detected), poses[0].frame_size if poses else (0, 0))
    stats = _fit(np.array([m.ankle for m in ms]), np.array([m.height for m in ms]),
                 np.array([m.hip_x for m in ms]), frame_size, config)
    rest = typical_stance(poses)
    stats.rest = tuple(rest) if rest is not None else None
    if not stats.two_position:
        log.warning("pose statistics: %s", stats.note)
    return stats


class Normalizer:
    """Maps poses of the source video (performer) into the target's frame and body size."""

    def __init__(self, source: PoseStats, target: PoseStats, config: NormalizeConfig | None = None) -> None:
        self.source, self.target = source, target
        self.config = config or NormalizeConfig()
        self.mode = source.mode
        self._last_anchor = source.ankle_median  # used while the ankles are out of view
        if self.mode == ONE_SCALE:
            log.debug("normalization: %s", source.note)

    def scale_at(self, ankle_y: float) -> tuple[float, float, float]:
        """(p, scale, target ankle y) for a source ankle y.

        The ankle's position maps linearly for any p, as in EDN: a jump above the far position
        must show as a jump, not be pinned. Only the scale's extrapolation is bounded (`p_clip`),
        since a scale extrapolated far past the seen depths can shrink a body to nothing.
        """
        s, t = self.source, self.target
        if self.mode == ONE_SCALE:
            scale = t.height_median / s.height_median
            return 0.0, scale, t.ankle_median + (ankle_y - s.ankle_median) * scale
        p = float((ankle_y - s.ankle_far) / (s.ankle_close - s.ankle_far))
        q = float(np.clip(p, *self.config.p_clip))
        s_far, s_close = t.height_far / s.height_far, t.height_close / s.height_close
        return p, s_far + q * (s_close - s_far), t.ankle_far + p * (t.ankle_close - t.ankle_far)

    def transform(self, pose: Pose) -> tuple[float, np.ndarray, float]:
        """(scale, offset, p) that map `pose` (in the source's frame size) into the target's."""
        anchor = _anchor_y(pose, self.config.visibility)
        anchor = self._last_anchor if anchor is None else anchor
        self._last_anchor = anchor
        p, scale, target_y = self.scale_at(anchor)
        src = np.array([self.source.x_center, anchor], np.float32)
        dst = np.array([self.target.x_center, target_y], np.float32)
        return scale, dst - src * scale, p

    def apply(self, pose: Pose) -> Pose:
        """`pose` in the target's frame (frame_size = the target's); a missing pose stays missing."""
        if not pose.detected:
            return Pose.missing(self.target.frame_size, pose.timestamp)
        if pose.frame_size != self.source.frame_size:
            pose = pose.resized(self.source.frame_size)
        scale, offset, p = self.transform(pose)
        out = pose.transformed(scale, tuple(offset), self.target.frame_size)
        out.extras.update(norm_p=p, norm_scale=scale)
        return out


@dataclass
class OnlineStats:
    """Statistics from a running window of a live performance (live calibration).

    `update` is cheap (it stores three numbers a frame); `stats()` refits at most every
    `refit_every` new frames and returns None until `config.min_frames` full-body frames arrived.
    """

    window: int = 600  # frames kept (about 20 s at 30 fps)
    refit_every: int = 15
    config: NormalizeConfig = field(default_factory=NormalizeConfig)

    def __post_init__(self) -> None:
        self._m: deque[_Measure] = deque(maxlen=self.window)
        self._frame_size: tuple[int, int] | None = None
        self._since_fit = 0
        self._stats: PoseStats | None = None

    def update(self, pose: Pose) -> None:
        m = _measure(pose, self.config.visibility)
        if m is None:
            return
        if self._frame_size not in (None, pose.frame_size):
            self._m.clear()  # the camera changed: old pixels mean nothing now
            self._stats = None
        self._frame_size = pose.frame_size
        self._m.append(m)
        self._since_fit += 1

    @property
    def frames(self) -> int:
        return len(self._m)

    def stats(self) -> PoseStats | None:
        if len(self._m) < self.config.min_frames or self._frame_size is None:
            return None
        if self._stats is None or self._since_fit >= self.refit_every:
            ms = list(self._m)
            self._stats = _fit(np.array([m.ankle for m in ms]), np.array([m.height for m in ms]),
                               np.array([m.hip_x for m in ms]), self._frame_size, self.config)
            self._since_fit = 0
        return self._stats

    def reset(self) -> None:
        self._m.clear()
        self._stats, self._frame_size, self._since_fit = None, None, 0


def fit_into(pose: Pose, size: tuple[int, int]) -> Pose:
    """`pose` scaled to fit a frame of `size` (aspect kept, centred): the live loop's placement
    until the performer's statistics exist."""
    if not pose.detected:
        return Pose.missing(size, pose.timestamp)
    h, w = pose.frame_size
    s = min(size[0] / h, size[1] / w)
    return pose.transformed(s, ((size[1] - w * s) / 2, (size[0] - h * s) / 2), size)

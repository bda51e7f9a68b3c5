"""Where the performer's pose lands in the target's frame, for whatever part of them the camera shows.

Most performers sit at a desk: the camera sees them from the head to the waist, never the
ankles that EDN's normalization (`normalize.py`) reads depth from. So each frame is placed by
one of two maps, both a scale and an offset:

- **edn**: EDN's global pose normalization, when the whole body is in view and the performer's
  full-body statistics exist (from a calibration file or gathered live);
- **upper**: from what every view shows, the shoulders: the performer's torso length (shoulder
  centre to hip centre; from the shoulder width where the hips are hidden) against the target's
  stance, and their usual shoulder position onto the stance's, so the target stands on its floor.

A switch between the two glides over `switch_seconds` (no jump when the feet come into view or
calibration lands), and the parts the camera does not show (`View`: head, waist, knees, full,
with hysteresis) are the target's own stance's, faded in and out over `blend_seconds`.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.normalize import Normalizer, OnlineStats, PoseStats
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.stance import (
    ANKLES,
    FEET,
    HIPS,
    KNEES,
    L_SH,
    R_SH,
    Stance,
    hip_centre,
    shoulder_centre,
)

HEAD, WAIST, KNEES_VIEW, FULL = "head", "waist", "knees", "full"
VIEWS = (HEAD, WAIST, KNEES_VIEW, FULL)
EDN, UPPER = "edn", "upper"
# what the stance lends in each view
LENT: dict[str, tuple[int, ...]] = {
    HEAD: (*HIPS, *KNEES, *ANKLES, *FEET), WAIST: (*KNEES, *ANKLES, *FEET), KNEES_VIEW: (*ANKLES, *FEET), FULL: (),
}
MESSAGES: dict[str, str] = {
    HEAD: "head and shoulders: the target's body below them is its own; step back until your feet are in view "
          "for full-body control",
    WAIST: "head to waist: your legs are the target's; step back until your feet are in view for full-body control",
    KNEES_VIEW: "head to knees: your feet are the target's; step back a little until your feet are in view",
    FULL: "whole body: you control the target's legs too",
}


@dataclass
class PlacementConfig:
    visibility: float = 0.5  # a point counts as shown at or above this confidence, inside the frame
    view_frames: int = 5  # frames a new view must persist before it is taken (MediaPipe guesses legs)
    blend_seconds: float = 0.4  # lent parts fade in / out over this long
    switch_seconds: float = 0.8  # a change of map (edn <-> upper) glides over this long
    window: int = 600  # frames of live statistics (about 20 s at 30 fps)
    min_frames: int = 10  # upper-body frames before live calibration counts as done
    keep_seconds: float = 120.0  # a camera's statistics are kept this long while another one plays


def smoothstep(x):
    """0 below 0, 1 above 1, an S between with flat ends (a float, or an array of them): how
    every fade and glide of the live loop eases (here and in the live side's Presence)."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def seen_view(pose: Pose, visibility: float = 0.5) -> str:
    """What this frame shows, from the lowest body part in view (confident and inside the frame).
    Whole takes a foot too: with the frame cut below the knees MediaPipe puts confident ankles on
    its bottom edge (a head-to-knees crop of dancer A: 10 of 150 frames), never the feet."""
    h, w = pose.frame_size
    p = pose.points
    vis = pose.visible(visibility) & (p[:, 0] >= 0) & (p[:, 0] < w) & (p[:, 1] >= 0) & (p[:, 1] < h)
    if vis[list(ANKLES)].any() and vis[list(FEET)].any() and vis[list(KNEES)].any():
        return FULL
    if vis[list(KNEES)].any():
        return KNEES_VIEW
    if vis[list(HIPS)].all():
        return WAIST
    return HEAD


class ViewTracker:
    """The view with hysteresis: a new view is taken after `frames` consecutive frames show it."""

    def __init__(self, frames: int = 5, visibility: float = 0.5) -> None:
        self.frames, self.visibility = frames, visibility
        self.reset()

    def reset(self) -> None:
        self.view: str | None = None
        self.seen: str | None = None
        self._pending: str | None = None
        self._count = 0

    def update(self, pose: Pose) -> str:
        self.seen = seen = seen_view(pose, self.visibility)  # this frame's, before the hysteresis
        if self.view is None:
            self.view = seen
        elif seen == self.view:
            self._pending, self._count = None, 0
        else:
            self._count = self._count + 1 if seen == self._pending else 1
            self._pending = seen
            if self._count >= self.frames:
                self.view, self._pending, self._count = seen, None, 0
        return self.view


class UpperStats:
    """The performer's torso length and usual shoulder position over a running window."""

    def __init__(self, window: int = 600) -> None:
        self._m: deque[tuple[float, float, float]] = deque(maxlen=window)
        self.frame_size: tuple[int, int] | None = None

    def update(self, pose: Pose, torso_per_shoulder: float, visibility: float, seen: str) -> None:
        """Add `pose`'s measures; `seen`: its own view (`seen_view`), as the view tracker found it."""
        vis = pose.visible(visibility)
        if not pose.detected or not (vis[L_SH] and vis[R_SH]):
            return
        if self.frame_size not in (None, pose.frame_size):
            self._m.clear()  # the camera changed
        self.frame_size = pose.frame_size
        sc = shoulder_centre(pose.points)
        if vis[list(HIPS)].all() and seen != HEAD:
            torso = float(np.linalg.norm(sc - hip_centre(pose.points)))
        else:
            torso = float(np.linalg.norm(pose.points[L_SH] - pose.points[R_SH])) * torso_per_shoulder
        if torso > 1.0:
            self._m.append((torso, float(sc[0]), float(sc[1])))

    @property
    def frames(self) -> int:
        return len(self._m)

    def medians(self) -> tuple[float, np.ndarray] | None:
        """(torso length, usual shoulder centre), or None before the first measured frame."""
        if not self._m:
            return None
        m = np.median(np.array(self._m), axis=0)
        return float(m[0]), m[1:].astype(np.float32)

    def reset(self) -> None:
        self._m.clear()
        self.frame_size = None


class Placement:
    """Performer poses (in the camera's frame) to poses in the target's frame, the whole body."""

    def __init__(self, target: PoseStats, config: PlacementConfig | None = None,
                 performer: PoseStats | None = None) -> None:
        self.config = config or PlacementConfig()
        self.target = target
        self.stance = Stance.of(target)
        # the performer's torso from the shoulder width, in the target's proportions (bounded: a
        # stance seen from the side has narrow shoulders)
        self._torso_per_shoulder = float(np.clip(self.stance.torso / max(self.stance.shoulder_width, 1.0), 0.8, 2.5))
        self.file_stats = performer
        self.online = OnlineStats(window=self.config.window)
        self.upper = UpperStats(self.config.window)
        self.views = ViewTracker(self.config.view_frames, self.config.visibility)
        self._weights = np.zeros(sk.NUM_BODY, np.float32)
        self._normalizer: Normalizer | None = None
        self._norm_key: tuple[int, int] | None = None
        self.mode: str | None = None
        self._last: tuple[np.ndarray, np.ndarray] | None = None
        self._glide: tuple[float, np.ndarray, np.ndarray] | None = None  # (start, scale, offset) at the switch
        self._last_t: float | None = None
        self._performer: object = None  # whose statistics these are (the pipeline's source)
        self._kept: dict[object, tuple[float, OnlineStats, UpperStats, ViewTracker]] = {}

    def retarget(self, target: PoseStats) -> Placement:
        """The same performer on another target: their statistics carry over the switch."""
        new = Placement(target, self.config, self.file_stats)
        new.online, new.upper, new.views = self.online, self.upper, self.views
        new._performer, new._kept = self._performer, self._kept
        return new

    def forget_performer(self, keep_file: bool = True) -> None:
        """Gather the performer's statistics afresh (recalibrate; a calibration file is kept unless
        `keep_file` is False)."""
        self.online = OnlineStats(window=self.config.window)
        self.upper = UpperStats(self.config.window)
        self.views = ViewTracker(self.config.view_frames, self.config.visibility)
        if not keep_file:
            self.file_stats = None

    def switch_performer(self, key: object, now: float) -> None:
        """Frames come from another camera (`key`) from now on. Its statistics are kept for
        `keep_seconds`, so a performer whose link dropped and rejoined (the same camera back
        within that time) keeps their calibration; a camera not seen lately starts afresh."""
        if key is self._performer:
            return
        if self._performer is not None:
            self._kept[self._performer] = (now, self.online, self.upper, self.views)
        self._performer = key
        kept = self._kept.pop(key, None)
        self._kept = {k: v for k, v in self._kept.items() if now - v[0] <= self.config.keep_seconds}
        if kept is not None and now - kept[0] <= self.config.keep_seconds:
            _, self.online, self.upper, self.views = kept
        else:
            self.forget_performer()

    @property
    def view(self) -> str | None:
        return self.views.view

    @property
    def calibrated(self) -> bool:
        """Whether the performer's measures exist: full-body statistics, or enough upper-body frames."""
        return self.full_stats() is not None or self.upper.frames >= self.config.min_frames

    def full_stats(self) -> PoseStats | None:
        return self.file_stats or self.online.stats()

    def message(self) -> str:
        return MESSAGES.get(self.view or "", "nobody in view: the target stands at rest")

    def apply(self, pose: Pose, t: float) -> Pose:
        """`pose` placed in the target's frame, its hidden parts lent by the target's stance."""
        size = self.target.frame_size
        if not pose.detected:
            return Pose.missing(size, pose.timestamp)
        c = self.config
        view = self.views.update(pose)
        if not pose.extras.get("held"):
            if view == FULL:  # not legs MediaPipe guesses behind a desk: they would shrink the body
                self.online.update(pose)
            self.upper.update(pose, self._torso_per_shoulder, c.visibility, self.views.seen)
        scale, offset, mode = self._map(pose, view)
        if self.mode is not None and mode != self.mode and self._last is not None:
            self._glide = (t, *self._last)  # glide from where the body is drawn now
        self.mode = mode
        if self._glide is not None:
            w = smoothstep((t - self._glide[0]) / c.switch_seconds)
            scale = (1 - w) * self._glide[1] + w * scale
            offset = (1 - w) * self._glide[2] + w * offset
            if w >= 1.0:
                self._glide = None
        self._last = (scale, offset)
        placed = pose.transformed(scale, tuple(offset), size)
        placed.extras.update(view=view, placement=mode, norm_scale=float(scale.mean()))
        first = self._last_t is None
        dt = 1 / 30 if first else min(max(t - self._last_t, 0.0), 1.0)
        self._last_t = t
        goal = np.zeros(sk.NUM_BODY, np.float32)
        goal[list(LENT[view])] = 1.0
        step = dt / max(c.blend_seconds, 1e-6)
        if first:  # nothing was drawn before: no fade from the performer's guessed legs (a
            self._weights = goal.copy()  # head-to-knees crop's first frame showed crossed ones)
        self._weights += np.clip(goal - self._weights, -step, step)
        weights = smoothstep(self._weights)
        return self._on_floor(self.stance.complete(placed, weights), weights)

    def _on_floor(self, pose: Pose, weights: np.ndarray) -> Pose:
        """Lent feet stay on the target's own floor (its ankles' far..close rows, its stance's
        included): the upper-body map follows the performer's shoulders, so one who rises on her
        toes behind a desk would lift the lent legs off the ground (dancer B's head-to-waist crop:
        6 frames 1-3 px above the target's standing band). The whole body moves, by the lent
        feet's weight: no pop."""
        w = float(weights[list(ANKLES)].min())
        if w <= 0.0 or not pose.detected:
            return pose
        y = float(pose.points[list(ANKLES), 1].max())
        floor = self.stance.ankle_y
        shift = min(max(y, min(self.target.ankle_far, floor)), max(self.target.ankle_close, floor)) - y
        return pose if shift == 0.0 else pose.transformed(1.0, (0.0, w * shift))

    def _map(self, pose: Pose, view: str) -> tuple[np.ndarray, np.ndarray, str]:
        """(scale, offset, mode) for this frame, before any glide."""
        full = self.full_stats()
        if full is not None and view == FULL:
            key = (id(full), id(self.target))
            if self._norm_key != key:
                self._normalizer, self._norm_key = Normalizer(full, self.target), key
            # statistics of another camera size (a calibration file): the resize folded into the map
            (h, w), (fh, fw) = pose.frame_size, full.frame_size
            scale, offset, _ = self._normalizer.transform(pose.resized(full.frame_size))
            return np.array([scale * fw / w, scale * fh / h], np.float32), offset.astype(np.float32), EDN
        med = self.upper.medians()
        if med is None:  # no shoulders measured yet: fit the frame into the target's
            h, w = pose.frame_size
            th, tw = self.target.frame_size
            s = min(th / h, tw / w)
            return np.array([s, s], np.float32), np.array([(tw - w * s) / 2, (th - h * s) / 2], np.float32), UPPER
        torso, usual = med
        scale = self.stance.torso / torso
        return np.array([scale, scale], np.float32), shoulder_centre(self.stance.pose.points) - usual * scale, UPPER

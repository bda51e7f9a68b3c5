"""What the studio tells a person filming themselves, frame by frame: are they whole in view, at a
good distance, in enough light, and which kinds of movement has the camera seen so far.

A generator can only draw what its footage showed: feet it never saw, arms it never saw raised, a
side it never saw. So while a target is recorded, the live loop's tracker (the same one that
follows a performer) counts four kinds of pose: arms up (both wrists above the head), an arm out
to the side (a wrist beyond the shoulders by a forearm, at about shoulder height), a turn (the
shoulders narrow against the torso: the body seen from the side), a crouch (the hips dropped
towards the knees). `Coverage.verdict()` says it in words for the page.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.placement import FULL, seen_view
from dancenow.realtime.pose.pose import Pose

I = sk.INDEX  # noqa: E741 - the skeleton's index, as in the pose modules
MOVES = ("arms up", "arm to the side", "turn", "crouch")
NEEDED = 5  # frames of a move before it counts as seen


@dataclass
class CoverageConfig:
    visibility: float = 0.5
    too_close: float = 0.92  # body height over frame height above this: step back
    too_far: float = 0.35  # below this: come closer
    dark: float = 60.0  # mean luma below this: more light


@dataclass
class Coverage:
    config: CoverageConfig = field(default_factory=CoverageConfig)

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.frames = 0
        self.full = 0
        self.moves = {m: 0 for m in MOVES}
        self._last: dict = {}

    def update(self, pose: Pose, image: np.ndarray | None = None) -> None:
        """Account for one performer frame (`image`: the camera's, for the light)."""
        self.frames += 1
        light = float(np.mean(image[::8, ::8] @ np.array([0.299, 0.587, 0.114]))) if image is not None else None
        last = {"person": bool(pose.detected), "light": light, "full": False, "size": None}
        if pose.detected:
            last["full"] = seen_view(pose, self.config.visibility) == FULL
            self.full += last["full"]
            box = pose.bbox(self.config.visibility)
            if box is not None:
                last["size"] = (box[3] - box[1]) / pose.frame_size[0]
            for move in self._moves(pose):
                self.moves[move] += 1
        self._last = last

    def _moves(self, pose: Pose) -> list[str]:
        p, vis = pose.points, pose.visible(self.config.visibility)
        seen = []
        sh = [I["left_shoulder"], I["right_shoulder"]]
        hips = [I["left_hip"], I["right_hip"]]
        wrists = [I["left_wrist"], I["right_wrist"]]
        if not vis[sh + hips].all():
            return seen
        torso = float(np.linalg.norm(p[sh].mean(0) - p[hips].mean(0)))
        if torso < 1.0:
            return seen
        head = [i for i in sk.HEAD_POINTS if vis[i]]
        if head and vis[wrists].all() and (p[wrists, 1] < p[head, 1].min()).all():
            seen.append("arms up")
        width = abs(float(p[sh[0], 0] - p[sh[1], 0]))
        for w, s in zip(wrists, sh, strict=True):
            out = abs(float(p[w, 0] - p[sh].mean(0)[0])) - width / 2
            if vis[w] and out > 0.55 * torso and abs(float(p[w, 1] - p[s, 1])) < 0.45 * torso:
                seen.append("arm to the side")
                break
        if width < 0.35 * torso:
            seen.append("turn")
        knees = [I["left_knee"], I["right_knee"]]
        if vis[knees].all() and float(p[knees, 1].mean() - p[hips, 1].mean()) < 0.55 * torso:
            seen.append("crouch")
        return seen

    def verdict(self) -> dict:
        """For the page: this frame's checks and advice, and the moves seen so far."""
        c, last = self.config, self._last
        advice = []
        if not last.get("person"):
            advice.append("nobody in view: step into the frame")
        elif not last.get("full"):
            advice.append("head to feet not in view: step back until your feet are in the picture")
        elif last.get("size") and last["size"] > c.too_close:
            advice.append("too close: step back a little")
        elif last.get("size") and last["size"] < c.too_far:
            advice.append("far away: come a little closer")
        if last.get("light") is not None and last["light"] < c.dark:
            advice.append("too dark: more light, or face a window")
        seen = [m for m in MOVES if self.moves[m] >= NEEDED]
        missing = [m for m in MOVES if m not in seen]
        if missing and self.frames:
            advice.append("still to show: " + ", ".join(missing))
        return {"frames": self.frames, "whole_body": self.full / self.frames if self.frames else 0.0,
                "person": bool(last.get("person")), "in_view": bool(last.get("full")),
                "size": last.get("size"), "light": last.get("light"), "moves": dict(self.moves),
                "coverage": len(seen) / len(MOVES), "seen": seen, "advice": advice}

"""MediaPipe Pose (or Holistic) behind one call: an RGB frame in, a `Pose` in its pixels out.

MediaPipe runs in video mode (it tracks a region of interest from frame to frame), on a copy of
the frame scaled so that its long side is `max_side`: inference cost no longer depends on the
camera, and the normalized landmarks map straight back to the caller's pixels.

MediaPipe's video mode follows one person, but when it loses the region it re-detects on the
whole frame and may lock onto someone else. The guard here rejects a result whose hip centre
jumps implausibly far (relative to the tracked body's height) and re-runs a single-image pass on a
crop around the person tracked so far, so a crowd does not make the track hop between people.

With `segmentation` on, the same pass also gives MediaPipe's person mask (Pose and Holistic
compute it from the landmark model they already run): `prepare` uses it for the background plate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import cv2
import numpy as np

from dancenow.errors import DanceNowError
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose

log = logging.getLogger(__name__)


@dataclass
class TrackerConfig:
    """MediaPipe settings and the single-person guard."""

    holistic: bool = False  # body + both hands (75-point layout); slower
    model_complexity: int = 1  # the only model bundled with mediapipe 0.10.21 (0 and 2 download)
    max_side: int = 640  # frames are scaled so their long side is this before tracking
    min_detection_confidence: float = 0.5
    min_tracking_confidence: float = 0.5
    # Threads for MediaPipe's XNNPACK inference. MediaPipe's own default on Linux is one; two
    # make tracking about 1.6x faster (31 -> 20 ms on this machine's AVX2 cores, `bench pose`). A live
    # pipeline that runs the generator on the other core should ask for one.
    threads: int = 2
    # MediaPipe's own landmark smoothing stays off: `filter.PoseFilter` is the one smoother (the
    # same in training and live, with known parameters); two stacked smoothers only add lag.
    smooth_landmarks: bool = False
    # Guard: a hip-centre move above this many body heights per frame (plus a speed allowance
    # per second) is treated as a jump to another person.
    max_jump: float = 0.35
    max_speed: float = 2.0  # body heights per second a person can plausibly move
    relock_seconds: float = 0.7  # after losing the person this long, accept anyone again
    crop_margin: float = 0.5  # crop around the tracked person: bbox grown by this x body height
    # Also return MediaPipe's person mask as pose.extras["mask"]: float32 H x W in [0, 1] at the
    # frame's size (zeros when nobody is tracked). Off by default: the live loop has no use for it.
    # MediaPipe's temporal mask smoothing stays off (it trails moving limbs; training wants each
    # frame's own mask).
    segmentation: bool = False
    # Who runs the landmark network from frame to frame: "mediapipe" (its own graph, XNNPACK), or
    # "openvino" (the same bundled network on oneDNN, landmarker.py; MediaPipe still finds the
    # person on the first frame and whenever they are lost; 2.0x faster on one thread, `bench
    # pose`), or "auto" (openvino, MediaPipe when OpenVINO cannot compile it; what the live loop
    # uses). Body points only: openvino is not for `holistic` or `segmentation`.
    landmarks: str = "mediapipe"
    landmark_precision: str | None = None  # openvino: "bf16" / "f32"; None: bf16 where the CPU has it
    # Also find the face mesh's points (face_mesh.py: MediaPipe's face network on OpenVINO, on a
    # crop placed by the body's face points), for targets whose label maps draw the face as lines.
    face_mesh: bool = False


def _hip_centre(pose: Pose) -> np.ndarray:
    return (pose.points[sk.LEFT_HIP] + pose.points[sk.RIGHT_HIP]) / 2


def _body_size(pose: Pose) -> float:
    """The body's height in pixels: head to ankles, or the visible extent when feet are hidden."""
    h = pose.body_height() or 0.0
    box = pose.bbox(0.0)
    if box is not None:
        h = max(h, box[3] - box[1], 0.6 * (box[2] - box[0]))
    return max(h, 1.0)


class PoseTracker:
    """One person's keypoints per frame, in the pixels of the frame given.

    Frames must come in time order (video mode); `timestamp` is any monotonic clock in seconds
    (capture time), copied into the returned Pose. Use as a context manager or call `close()`.
    """

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        if self.config.model_complexity != 1:
            raise DanceNowError(
                f"model_complexity={self.config.model_complexity} is not bundled with mediapipe "
                "0.10.21 (it would download): use model_complexity=1"
            )
        if self.config.threads < 1:
            raise DanceNowError(f"tracker threads must be at least 1, got {self.config.threads}")
        kind = self.config.landmarks
        if kind not in ("mediapipe", "openvino", "auto"):
            raise DanceNowError(f"unknown landmarks runner {kind!r}: use 'mediapipe', 'openvino' or 'auto'")
        body_only = not (self.config.holistic or self.config.segmentation)
        if kind == "openvino" and not body_only:
            raise DanceNowError("landmarks='openvino' runs the body model only: use landmarks='mediapipe' "
                                "with holistic or segmentation")
        self._lmk = None
        if kind == "openvino" or (kind == "auto" and body_only):
            from dancenow.realtime.pose.landmarker import Landmarker

            try:
                self._lmk = Landmarker(self.config.threads, self.config.landmark_precision)
            except DanceNowError as e:
                if kind == "openvino":
                    raise
                log.warning("%s; tracking with MediaPipe alone", e)
        self.face_mesh = self.config.face_mesh  # may be switched per frame (a new target)
        self._face = None  # face_mesh.FaceMesh, made when first needed
        self._carry = None  # face_mesh.MeshCarry: the last mesh, over a frame or two without one
        self._mp = self._make(static=False)
        self._still = None  # single-image instance for the guard's crop pass, made when needed
        self._last: Pose | None = None  # the last accepted detection
        self._last_time: float | None = None
        self.jumps_rejected = 0

    # --- MediaPipe plumbing -------------------------------------------------------------------

    def _make(self, static: bool):
        import mediapipe as mp

        c = self.config
        kw = dict(static_image_mode=static, model_complexity=c.model_complexity,
                  smooth_landmarks=c.smooth_landmarks, min_detection_confidence=c.min_detection_confidence,
                  min_tracking_confidence=c.min_tracking_confidence)
        if c.segmentation:
            kw.update(enable_segmentation=True, smooth_segmentation=False)
        if c.holistic:
            return _with_threads(mp.solutions.holistic.Holistic, c.threads)(**kw)
        kw.setdefault("enable_segmentation", False)
        return _with_threads(mp.solutions.pose.Pose, c.threads)(**kw)

    def _infer(self, solution, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """Normalized (75, 2) points, confidences and (with segmentation) the person mask at
        `image`'s size, or None when nobody is found."""
        h0, w0 = image.shape[:2]
        h, w = h0, w0
        scale = self.config.max_side / max(h, w)
        if scale != 1.0:
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        image = np.ascontiguousarray(image)
        image.flags.writeable = False
        res = solution.process(image)
        if res.pose_landmarks is None:
            return None
        pts = np.zeros((sk.NUM_POINTS, 2), np.float32)
        conf = np.zeros(sk.NUM_POINTS, np.float32)
        body = res.pose_landmarks.landmark
        pts[: sk.NUM_BODY] = [(lm.x, lm.y) for lm in body]
        conf[: sk.NUM_BODY] = [lm.visibility for lm in body]
        if self.config.holistic:
            # MediaPipe's left_hand_landmarks is the person's left hand, as the body's left_* points.
            for hand, sl in ((res.left_hand_landmarks, sk.LEFT_HAND), (res.right_hand_landmarks, sk.RIGHT_HAND)):
                if hand is not None:
                    pts[sl] = [(lm.x, lm.y) for lm in hand.landmark]
                    conf[sl] = 1.0
        mask = None
        if self.config.segmentation:
            mask = res.segmentation_mask
            mask = np.zeros((h0, w0), np.float32) if mask is None else cv2.resize(mask, (w0, h0))
        return pts, np.clip(conf, 0.0, 1.0), mask

    # --- tracking ------------------------------------------------------------------------------

    def track(self, frame_rgb: np.ndarray, timestamp: float) -> Pose:
        """The tracked person's Pose in `frame_rgb` (uint8 H x W x 3, RGB); detected=False if nobody."""
        frame = _check_frame(frame_rgb)
        h, w = frame.shape[:2]
        found = self._landmarks(frame)
        pose = Pose.missing((h, w), timestamp)
        if found is not None:
            pts, conf, mask = found
            pose = Pose(pts * np.array([w, h], np.float32), conf, (h, w), timestamp)
            if mask is not None:
                pose.extras["mask"] = mask
            if self._is_jump(pose, timestamp):
                self.jumps_rejected += 1
                log.debug("pose jumped to another person at t=%.3f: re-checking around the tracked one", timestamp)
                pose = self._recheck(frame, timestamp)
                # Make the video-mode graph (or the landmarker) forget the other person's region.
                self._mp.reset()
                if self._lmk is not None:
                    self._lmk.reset()
                    if pose.detected:
                        self._lmk.seed(pose.points[: sk.NUM_BODY], pose.confidence[: sk.NUM_BODY])
        if pose.detected:
            self._last, self._last_time = pose, timestamp
            if self.face_mesh:
                self._add_face(frame, pose)
        if self.config.segmentation and "mask" not in pose.extras:
            pose.extras["mask"] = np.zeros((h, w), np.float32)
        return pose

    def _add_face(self, frame: np.ndarray, pose: Pose) -> None:
        if self._face is None:
            from dancenow.realtime.pose.face_mesh import FaceMesh, MeshCarry

            try:
                self._face = FaceMesh(self.config.threads, self.config.landmark_precision)
            except DanceNowError as first:  # e.g. an asked-for bf16 that cannot compile: try fp32, else go on without
                try:
                    self._face = FaceMesh(self.config.threads, "f32")
                except DanceNowError:
                    log.warning("face mesh unavailable here (%s): tracking the body without it", first)
                    self.face_mesh = False
                    return
            self._carry = MeshCarry()
        found = self._face.find(frame, pose.points, pose.confidence)
        if found is not None:
            pose.points[sk.FACE], pose.confidence[sk.FACE] = found
            self._carry.found(pose.timestamp, pose.points, pose.confidence)
        elif (carried := self._carry.carry(pose.timestamp, pose.points, pose.confidence)) is not None:
            pose.points[sk.FACE], pose.confidence[sk.FACE] = carried
            pose.extras["face_carried"] = True

    def _landmarks(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """`_infer`'s result for `frame`: from the landmarker while it holds the person, else from
        MediaPipe (single-image mode, so it detects afresh), which then seeds the landmarker."""
        if self._lmk is None:
            return self._infer(self._mp, frame)
        h, w = frame.shape[:2]
        got = self._lmk.track(frame)
        if got is None:
            if self._still is None:
                self._still = self._make(static=True)
            found = self._infer(self._still, frame)
            if found is not None:
                self._lmk.seed(found[0][: sk.NUM_BODY] * np.array([w, h], np.float32), found[1][: sk.NUM_BODY])
            return found
        pts = np.zeros((sk.NUM_POINTS, 2), np.float32)
        conf = np.zeros(sk.NUM_POINTS, np.float32)
        pts[: sk.NUM_BODY] = got[0] / np.array([w, h], np.float32)
        conf[: sk.NUM_BODY] = got[1]
        return pts, np.clip(conf, 0.0, 1.0), None

    def _is_jump(self, pose: Pose, timestamp: float) -> bool:
        last = self._last
        if last is None or self._last_time is None:
            return False
        dt = max(0.0, timestamp - self._last_time)
        if dt > self.config.relock_seconds:
            return False
        size = _body_size(last)
        move = float(np.linalg.norm(_hip_centre(pose) - _hip_centre(last)))
        return move > (self.config.max_jump + self.config.max_speed * dt) * size

    def _recheck(self, frame: np.ndarray, timestamp: float) -> Pose:
        """A single-image pass on a crop around the last tracked person; missing if they are gone."""
        last = self._last
        assert last is not None
        h, w = frame.shape[:2]
        box = last.bbox(0.0)
        size = _body_size(last)
        m = self.config.crop_margin * size
        x0, y0 = int(max(0, box[0] - m)), int(max(0, box[1] - m))
        x1, y1 = int(min(w, box[2] + m)), int(min(h, box[3] + m))
        if x1 - x0 < 8 or y1 - y0 < 8:
            return Pose.missing((h, w), timestamp)
        if self._still is None:
            self._still = self._make(static=True)
        found = self._infer(self._still, frame[y0:y1, x0:x1])
        if found is None:
            return Pose.missing((h, w), timestamp)
        pts, conf, crop_mask = found
        pts = pts * np.array([x1 - x0, y1 - y0], np.float32) + np.array([x0, y0], np.float32)
        pose = Pose(pts, conf, (h, w), timestamp, extras={"rechecked": True})
        if self._is_jump(pose, timestamp):
            return Pose.missing((h, w), timestamp)
        if crop_mask is not None:
            mask = np.zeros((h, w), np.float32)
            mask[y0:y1, x0:x1] = crop_mask
            pose.extras["mask"] = mask
        return pose

    def reset(self) -> None:
        """Forget the tracked person (a new performer, or a cut in the video)."""
        self._mp.reset()
        if self._lmk is not None:
            self._lmk.reset()
        self._last = self._last_time = None

    def close(self) -> None:
        for s in (self._mp, self._still):
            if s is not None:
                s.close()
        self._still = None

    def __enter__(self) -> PoseTracker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _with_threads(solution: type, threads: int) -> type:
    """`solution` (a mediapipe.solutions class) whose inference calculators use `threads` threads.

    The solutions API has no thread setting, but it hands every expanded graph node to
    `_modify_calculator_options` before the graph starts: the InferenceCalculator options'
    `delegate.xnnpack.num_threads` is set there.
    """
    class Threaded(solution):
        inference_threads: dict[str, int]  # what each inference node was given (for tests)

        def _modify_calculator_options(self, config, params) -> None:
            self.inference_threads = {}
            for node in config.node:
                if node.calculator.startswith("InferenceCalculator"):
                    self.inference_threads[node.name] = _set_threads(node, threads)
            super()._modify_calculator_options(config, params)

    Threaded.__name__ = f"{solution.__name__}Threads{threads}"
    return Threaded


def _set_threads(node, threads: int) -> int:
    """Set an InferenceCalculator node's CPU threads, in whichever options field it uses.

    XNNPACK (every CPU inference node of mediapipe 0.10.21's Pose and Holistic) has its own
    thread setting; a plain TFLite interpreter uses `cpu_num_thread`.
    """
    from mediapipe.calculators.tensor.inference_calculator_pb2 import InferenceCalculatorOptions

    def apply(opts: InferenceCalculatorOptions) -> int:
        if opts.delegate.WhichOneof("delegate") == "xnnpack":
            opts.delegate.xnnpack.num_threads = threads
            return opts.delegate.xnnpack.num_threads
        opts.cpu_num_thread = threads
        return opts.cpu_num_thread

    for packed in node.node_options:  # proto3-style nodes carry their options here
        if packed.Is(InferenceCalculatorOptions.DESCRIPTOR):
            opts = InferenceCalculatorOptions()
            packed.Unpack(opts)
            given = apply(opts)
            packed.Pack(opts)
            return given
    return apply(node.options.Extensions[InferenceCalculatorOptions.ext])


def _check_frame(frame: np.ndarray) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or min(frame.shape[:2]) < 1:
        raise DanceNowError(
            f"the tracker needs an RGB uint8 H x W x 3 frame, got dtype {frame.dtype} shape {frame.shape}: "
            "convert the frame (e.g. cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))"
        )
    return frame

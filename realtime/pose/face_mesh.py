"""MediaPipe's face mesh on a crop placed by the body's face points, run by OpenVINO.

The label map's face was 11 dots from the body model: eyes and mouth could not follow the
performer. This runs MediaPipe's own face landmark network (`face_landmark.tflite`, bundled with
mediapipe 0.10.21) on a square crop centred between the eyes and the mouth, rotated so the eyes
are level, sized from the ears and the eye-to-mouth distance. The crop comes from each frame's body
pose, so there is no face detector: training data and the live loop get the same points for the
same frame. The network's input is 192x192 RGB in [0, 1]; it gives 468 points in input pixels and
a face-present logit. Where it loses the face for a moment (a turn, motion blur), `MeshCarry`
(the tracker's, so prepare and the live loop share it too) carries the last mesh.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.landmarker import Roi, compiled, default_precision

MODEL = "face_landmark/face_landmark.tflite"
SIDE = 192
NUM_MESH = 468
CROP_SCALE = 1.7  # the crop's side: this x the face's width (checked by eye on dancer A's frames)
MIN_FACE_CONFIDENCE = 0.5  # of the body's eyes and mouth corners, to place a crop at all
FLAG_THRESHOLD = 0.5  # of the face-present probability

_EYES = (sk.INDEX["right_eye"], sk.INDEX["left_eye"])
_MOUTH = (sk.INDEX["mouth_right"], sk.INDEX["mouth_left"])
_EARS = (sk.INDEX["right_ear"], sk.INDEX["left_ear"])
_KEEP = np.asarray(sk.FACE_MESH)
_BODY_FACE = np.arange(11)  # the body model's own face points: nose, eyes, ears, mouth corners
CARRY_S = 0.5  # a mesh lost for longer is not drawn from memory


def face_roi(points: np.ndarray, confidence: np.ndarray) -> Roi | None:
    """The crop for the face of a body pose (frame pixels), or None when eyes or mouth are unseen."""
    needed = _EYES + _MOUTH
    if float(np.min(confidence[list(needed)])) < MIN_FACE_CONFIDENCE:
        return None
    right_eye, left_eye = points[_EYES[0]], points[_EYES[1]]
    eyes = (right_eye + left_eye) / 2
    mouth = points[list(_MOUTH)].mean(0)
    d = left_eye - right_eye  # the person's right eye is on the image's left when they face us
    width = max(float(np.hypot(*(points[_EARS[1]] - points[_EARS[0]]))), 2.5 * float(np.hypot(*(mouth - eyes))))
    if width < 4:
        return None
    centre = (eyes + mouth) / 2
    return Roi(float(centre[0]), float(centre[1]), CROP_SCALE * width, math.atan2(float(d[1]), float(d[0])), SIDE)


class FaceMesh:
    """The face mesh of one frame at a time. Not thread-safe: one per tracker (they share the
    compiled model, each with its own infer request)."""

    def __init__(self, threads: int = 1, precision: str | None = None) -> None:
        self.precision = precision or default_precision()
        model = compiled(MODEL, int(threads), self.precision)
        self._request = model.create_infer_request()
        shapes = {o.get_any_name(): int(np.prod(o.get_partial_shape().to_shape())) for o in model.outputs}
        self._mesh = next(o for o in model.outputs if shapes[o.get_any_name()] == NUM_MESH * 3)
        self._flag = next(o for o in model.outputs if shapes[o.get_any_name()] == 1)

    def find(self, frame: np.ndarray, points: np.ndarray, confidence: np.ndarray
             ) -> tuple[np.ndarray, float] | None:
        """The layout's face-mesh points (frame pixels) and the face-present probability, or None
        when the body's face is unseen or the network finds no face in the crop."""
        roi = face_roi(points, confidence)
        if roi is None:
            return None
        out = self._request.infer({0: roi.input_tensor(frame)})
        present = 1.0 / (1.0 + math.exp(-float(np.asarray(out[self._flag]).ravel()[0])))
        if present < FLAG_THRESHOLD:
            return None
        mesh = np.asarray(out[self._mesh], np.float64).reshape(NUM_MESH, 3)[_KEEP, :2]
        return roi.project(mesh).astype(np.float32), present


class MeshCarry:
    """The last face mesh found, carried over the frames where the network loses the face, for up
    to `seconds` and only while the body model still sees the face: moved with the body's face
    points (a similarity fit). Without it such a frame's label map falls back to the body's dots,
    which a generator trained on the mesh's lines paints as a blotch."""

    def __init__(self, seconds: float = CARRY_S) -> None:
        self.seconds = seconds
        self._last: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def found(self, t: float, points: np.ndarray, confidence: np.ndarray) -> None:
        """Remember the mesh of a pose whose face the network found (`points[sk.FACE]`)."""
        self._last = (t, points[_BODY_FACE].copy(), confidence[_BODY_FACE].copy(),
                      points[sk.FACE].copy(), confidence[sk.FACE].copy())

    def carry(self, t: float, points: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """The last mesh moved onto this pose's face, with its confidence; None when there is none
        recent enough or the body's face points do not say where it went."""
        if self._last is None or not 0.0 <= t - self._last[0] <= self.seconds:
            return None
        _, body, body_conf, mesh, mesh_conf = self._last
        seen = (confidence[_BODY_FACE] >= MIN_FACE_CONFIDENCE) & (body_conf >= MIN_FACE_CONFIDENCE)
        if seen.sum() < 3:
            return None
        m, _ = cv2.estimateAffinePartial2D(body[seen], points[_BODY_FACE][seen], method=cv2.LMEDS)
        if m is None:
            return None
        return (mesh @ m[:, :2].T + m[:, 2]).astype(np.float32), mesh_conf

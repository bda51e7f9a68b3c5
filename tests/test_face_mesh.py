"""The face as lines: MediaPipe's face mesh on OpenVINO (face_mesh.py) on real footage, the
tracker option, the renderer's lines and mouth, and old 75-point tracks still loading."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dancenow.realtime.media.reader import iter_frames
from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.face import mouth_box, mouth_opening
from dancenow.realtime.pose.face_mesh import face_roi
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map
from dancenow.realtime.pose.tracker import PoseTracker, TrackerConfig

from footage import CLIPS

DANCER_A = CLIPS / "dancer_a_yellow_top_full_body.mp4"


@pytest.fixture(scope="module")
def dancer_a_poses() -> dict[int, tuple[np.ndarray, Pose]]:
    """Frames 0 (mouth closed, by eye) and 105 (mouth open) of dancer A, tracked with the mesh."""
    if not DANCER_A.is_file():
        pytest.skip(f"needs {DANCER_A} (../shared/data)")
    out = {}
    with PoseTracker(TrackerConfig(threads=1, face_mesh=True)) as tracker:
        for f in iter_frames(DANCER_A, 106):
            pose = tracker.track(f.image, f.time)
            if f.index in (0, 105):
                out[f.index] = (f.image, pose)
    return out


@pytest.mark.data
def test_the_mesh_lies_on_the_face_the_body_model_found(dancer_a_poses) -> None:
    for image, pose in dancer_a_poses.values():
        assert pose.detected and np.all(pose.confidence[sk.FACE] > 0.5)
        p = pose.points
        face_width = np.hypot(*(p[sk.INDEX["left_ear"]] - p[sk.INDEX["right_ear"]]))
        for body, mesh in (("right_eye", (33, 133)), ("left_eye", (263, 362)), ("mouth_right", (61,)),
                           ("mouth_left", (291,))):
            centre = np.mean([p[sk.MESH_AT[m]] for m in mesh], axis=0)
            assert np.hypot(*(centre - p[sk.INDEX[body]])) < 0.25 * face_width, body
        # the forehead is above the chin, both inside the frame
        assert p[sk.MESH_AT[10], 1] < p[sk.MESH_AT[152], 1]
        assert np.all((p[sk.FACE] >= 0) & (p[sk.FACE] < [image.shape[1], image.shape[0]]))


@pytest.mark.data
def test_an_open_mouth_and_a_closed_one_draw_differently(dancer_a_poses) -> None:
    """Frame 105 has the mouth open, frame 0 closed: the mesh says so, and so does the label map
    (the mouth's dark fill), which is what lets the face follow the performer's mouth."""
    closed, opened = dancer_a_poses[0][1], dancer_a_poses[105][1]
    print(f"mouth opening: closed {mouth_opening(closed):.3f}, open {mouth_opening(opened):.3f} face heights")
    assert mouth_opening(opened) > 2 * mouth_opening(closed) and mouth_opening(opened) > 0.04
    cfg = RenderConfig(face_lines=True)

    def mouth_pixels(pose: Pose) -> int:
        label = render_label_map(pose.resized((1024, 640)), (1024, 640), cfg)
        return int(np.all(label == sk.MOUTH_FILL, axis=-1).sum())

    assert mouth_pixels(opened) > 2 * mouth_pixels(closed) > 0


def _face_pose(mesh_confidence: float) -> Pose:
    """A frontal face: body face points and a mesh drawn on an ellipse, forehead up."""
    pts = np.zeros((sk.NUM_POINTS, 2))
    conf = np.zeros(sk.NUM_POINTS)
    for name, xy in (("nose", (100, 100)), ("right_eye", (88, 88)), ("left_eye", (112, 88)),
                     ("right_ear", (72, 92)), ("left_ear", (128, 92)), ("mouth_right", (92, 115)),
                     ("mouth_left", (108, 115))):
        pts[sk.INDEX[name]] = xy
        conf[sk.INDEX[name]] = 1.0
    oval = len(sk.FACE_CHAINS[0][0])  # the outline on an ellipse, the rest on a circle inside it
    t = np.linspace(0, 2 * math.pi, oval, endpoint=False)
    inner = np.linspace(0, 2 * math.pi, sk.NUM_FACE_MESH - oval, endpoint=False)
    pts[sk.FACE] = np.concatenate([np.column_stack([100 + 30 * np.cos(t), 100 + 40 * np.sin(t)]),
                                   np.column_stack([100 + 15 * np.cos(inner), 100 + 15 * np.sin(inner)])])
    conf[sk.FACE] = mesh_confidence
    return Pose(pts, conf, (200, 200))


def test_face_lines_replace_the_dots_only_where_the_mesh_is_tracked() -> None:
    lines, dots = RenderConfig(face_lines=True), RenderConfig()
    tracked = _face_pose(1.0)
    drawn = render_label_map(tracked, (200, 200), lines)
    assert np.all(drawn == sk.FACE_FILL, axis=-1).sum() > 1000  # the head's region is filled
    assert not np.array_equal(drawn, render_label_map(tracked, (200, 200), dots))
    untracked = _face_pose(0.0)  # no mesh in this frame: the dots, exactly as before
    np.testing.assert_array_equal(render_label_map(untracked, (200, 200), lines),
                                  render_label_map(untracked, (200, 200), dots))


def test_the_mouth_box_holds_the_lips_at_the_asked_size() -> None:
    pose = _face_pose(1.0)
    lips = pose.points[[sk.MESH_AT[m] for m in sk.FACE_CHAINS[-2][0]]]
    x0, y0, x1, y1 = mouth_box(pose, (200, 200), pad=0.0)
    assert x0 <= lips[:, 0].min() and lips[:, 0].max() <= x1 and y0 <= lips[:, 1].min() and lips[:, 1].max() <= y1
    big = mouth_box(pose, (400, 400), pad=0.25)  # twice the size: twice the box, then a quarter more each side
    assert big[2] - big[0] >= 1.4 * 2 * (x1 - x0)
    assert mouth_box(_face_pose(0.0), (200, 200)) is None


def test_a_bundle_from_before_the_mesh_keeps_drawing_dots() -> None:
    old = RenderConfig().to_dict()
    del old["face_lines"], old["face_line"]
    assert RenderConfig.from_dict(old).face_lines is False


def test_a_track_saved_with_75_points_loads_without_a_face_mesh() -> None:
    pose = _face_pose(1.0)
    d = pose.to_dict()
    d["points"], d["confidence"] = d["points"][:sk.NUM_BODY_HANDS], d["confidence"][:sk.NUM_BODY_HANDS]
    old = Pose.from_dict(d)
    assert old.points.shape == (sk.NUM_POINTS, 2) and not old.confidence[sk.FACE].any()
    np.testing.assert_allclose(old.points[:sk.NUM_BODY_HANDS], pose.points[:sk.NUM_BODY_HANDS], atol=1e-3)


def test_no_crop_without_eyes_and_mouth() -> None:
    pose = _face_pose(0.0)
    assert face_roi(pose.points, pose.confidence) is not None
    pose.confidence[sk.INDEX["mouth_left"]] = 0.1
    assert face_roi(pose.points, pose.confidence) is None


@pytest.mark.data
def test_the_tracker_finds_the_mesh_only_when_asked() -> None:
    if not DANCER_A.is_file():
        pytest.skip(f"needs {DANCER_A} (../shared/data)")
    frame = next(iter_frames(DANCER_A)).image
    with PoseTracker(TrackerConfig(threads=1)) as tracker:
        assert not tracker.track(frame, 0.0).confidence[sk.FACE].any()
        tracker.face_mesh = True  # a show switched to a target drawn with face lines
        assert np.all(tracker.track(frame, 0.04).confidence[sk.FACE] > 0.5)


def test_a_face_mesh_that_cannot_compile_here_leaves_the_body_tracked(monkeypatch, caplog) -> None:
    """Under ONEDNN_MAX_CPU_ISA=AVX2 OpenVINO refused the face network and the pose stage failed on
    every frame; now the tracker goes on without the mesh and says so once."""
    if not DANCER_A.is_file():
        pytest.skip(f"needs {DANCER_A} (../shared/data)")
    import dancenow.realtime.pose.face_mesh as fm
    from dancenow.errors import DanceNowError

    def refuse(*a, **k):
        raise DanceNowError("OpenVINO cannot compile MediaPipe's face_landmark/face_landmark.tflite")
    monkeypatch.setattr(fm, "FaceMesh", refuse)
    frame = next(iter(iter_frames(DANCER_A, 1)))
    with PoseTracker(TrackerConfig(threads=1, face_mesh=True)) as tracker:
        pose = tracker.track(frame.image, frame.time)
        assert pose.detected and not tracker.face_mesh
        assert float(pose.confidence[sk.FACE].max()) == 0.0
    assert "face mesh unavailable here" in caplog.text


def test_a_lost_mesh_is_carried_with_the_head_for_half_a_second() -> None:
    """A frame or two where the mesh network loses the face keeps the last mesh, moved as the
    body's face points moved (here: turned 5 degrees, 1.2x larger, shifted), instead of dots."""
    from dancenow.realtime.pose.face_mesh import CARRY_S, MeshCarry

    rng = np.random.default_rng(0)
    points = np.zeros((sk.NUM_POINTS, 2), np.float32)
    conf = np.zeros(sk.NUM_POINTS, np.float32)
    points[:11] = rng.uniform(100, 140, (11, 2))
    points[sk.FACE] = rng.uniform(95, 145, (sk.FACE.stop - sk.FACE.start, 2))
    conf[:11], conf[sk.FACE] = 0.9, 0.8
    a = math.radians(5)
    move = np.array([[1.2 * math.cos(a), -1.2 * math.sin(a), 10.0], [1.2 * math.sin(a), 1.2 * math.cos(a), 5.0]])

    def moved(p: np.ndarray) -> np.ndarray:
        return p @ move[:, :2].T + move[:, 2]

    carry = MeshCarry()
    assert carry.carry(0.0, points, conf) is None  # nothing found yet
    carry.found(1.0, points, conf)
    now = points.copy()
    now[:11] = moved(points[:11])
    mesh, mesh_conf = carry.carry(1.2, now, conf)
    assert np.abs(mesh - moved(points[sk.FACE])).max() < 0.5 and np.all(mesh_conf == 0.8)
    assert carry.carry(1.0 + CARRY_S + 0.1, now, conf) is None  # lost for too long: dots again
    unseen = conf.copy()
    unseen[:11] = 0.1
    assert carry.carry(1.2, now, unseen) is None  # the body no longer sees the face (turned away)

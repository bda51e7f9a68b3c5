"""The label map's real pixels: what the generator sees must be exactly what training drew."""

from __future__ import annotations

import numpy as np
import pytest

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map

IX = sk.INDEX
# A wide stance with arms out, in fractions of (width, height): limbs far apart from each other.
LAYOUT = {
    "nose": (0.50, 0.10), "left_eye_inner": (0.51, 0.09), "left_eye": (0.52, 0.09), "left_eye_outer": (0.53, 0.09),
    "right_eye_inner": (0.49, 0.09), "right_eye": (0.48, 0.09), "right_eye_outer": (0.47, 0.09),
    "left_ear": (0.55, 0.10), "right_ear": (0.45, 0.10), "mouth_left": (0.52, 0.12), "mouth_right": (0.48, 0.12),
    "left_shoulder": (0.62, 0.22), "right_shoulder": (0.38, 0.22), "left_elbow": (0.78, 0.22),
    "right_elbow": (0.22, 0.22), "left_wrist": (0.94, 0.22), "right_wrist": (0.06, 0.22),
    "left_hip": (0.57, 0.52), "right_hip": (0.43, 0.52), "left_knee": (0.70, 0.72), "right_knee": (0.30, 0.72),
    "left_ankle": (0.80, 0.92), "right_ankle": (0.20, 0.92),
}
CHECKED_LIMBS = [
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"), ("left_shoulder", "left_elbow"),
    ("left_elbow", "left_wrist"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_shoulder", "right_hip"),
    ("left_shoulder", "left_hip"),
]


def stance(size=(512, 384)) -> Pose:
    h, w = size
    pts = np.zeros((sk.NUM_POINTS, 2))
    conf = np.zeros(sk.NUM_POINTS)
    for name, (x, y) in LAYOUT.items():
        pts[IX[name]] = (x * w, y * h)
        conf[IX[name]] = 0.9
    return Pose(pts, conf, size)


@pytest.mark.parametrize("size", [(256, 192), (1024, 768)])
def test_limb_colours_background_and_face(size):
    h, w = size
    pose = stance((480, 360)).resized(size)  # drawn from another frame size: points rescale
    img = render_label_map(pose, size)
    assert img.shape == (h, w, 3) and img.dtype == np.uint8
    a = RenderConfig().limb_alpha
    for name_a, name_b in CHECKED_LIMBS:
        limb = sk.LIMBS.index((IX[name_a], IX[name_b]))
        expected = np.round((1 - a) * 255 + a * sk.LIMB_COLORS[limb].astype(float))
        mid = (pose.points[IX[name_a]] + pose.points[IX[name_b]]) / 2
        got = img[int(round(mid[1])), int(round(mid[0]))].astype(float)
        np.testing.assert_allclose(got, expected, atol=3, err_msg=f"{name_a}-{name_b} at {size}")
    # joints: solid discs in their limb's colour
    elbow = pose.points[IX["left_elbow"]].round().astype(int)
    np.testing.assert_array_equal(img[elbow[1], elbow[0]], sk.joint_color(IX["left_elbow"]))
    # face: dark dots
    nose = pose.points[sk.NOSE].round().astype(int)
    assert img[nose[1], nose[0]].max() <= 60
    # background: white everywhere away from the body
    for y, x in ((0, 0), (h - 1, w - 1), (int(0.5 * h), int(0.1 * w)), (int(0.05 * h), int(0.9 * w))):
        np.testing.assert_array_equal(img[y, x], (255, 255, 255))
    assert (img == 255).all(axis=2).mean() > 0.8


def test_sizes_scale_with_resolution():
    small = render_label_map(stance(), (256, 192))
    large = render_label_map(stance(), (1024, 768))
    ink = [(img < 250).any(axis=2).mean() for img in (small, large)]
    # About the same share of the canvas is drawn (fixed pixel sizes would differ 16-fold; the
    # anti-aliased rim and the 1 px minimums make the small map a little inkier).
    assert 0.6 < ink[0] / ink[1] < 1.7


def test_deterministic_and_blank_for_missing():
    pose = stance()
    first = render_label_map(pose, (256, 192))
    assert np.array_equal(first, render_label_map(pose.copy(), (256, 192)))
    blank = render_label_map(Pose.missing((480, 640)), (256, 192))
    assert blank.shape == (256, 192, 3) and (blank == 255).all()


def test_low_confidence_points_are_not_drawn():
    pose = stance()
    pose.confidence[IX["left_knee"]] = 0.1
    img = render_label_map(pose, (512, 384))
    knee = pose.points[IX["left_knee"]].round().astype(int)
    mid = ((pose.points[IX["left_knee"]] + pose.points[IX["left_ankle"]]) / 2).round().astype(int)
    assert (img[knee[1], knee[0]] == 255).all() and (img[mid[1], mid[0]] == 255).all()


def test_hands_drawn_as_thin_dark_bones():
    pose = stance()
    wrist = pose.points[IX["left_wrist"]]
    hand = wrist + np.stack([np.zeros(sk.NUM_HAND), np.linspace(0, 40, sk.NUM_HAND)], axis=1)
    pose.points[sk.LEFT_HAND] = hand
    pose.confidence[sk.LEFT_HAND] = 1.0
    img = render_label_map(pose, (512, 384))
    p = hand[12].round().astype(int)  # on the middle finger's bone line (0-9-10-11-12 are collinear)
    np.testing.assert_allclose(img[p[1], p[0]], sk.LEFT_HAND_COLOR, atol=40)


def test_arms_over_torso_keeps_a_forearm_across_the_chest_whole():
    """A left forearm held level across the chest crosses both flanks. Drawn in LIMBS' order, the
    flanks (drawn later) cut through it; with `arms_over_torso` the forearm covers them, and a
    bundle made before the setting existed reads it as off (it draws as it was trained)."""
    pose = stance()
    h, w = pose.frame_size
    pose.points[IX["left_elbow"]] = (0.66 * w, 0.34 * h)
    pose.points[IX["left_wrist"]] = (0.34 * w, 0.34 * h)
    y = int(0.34 * h)
    x = int(round(float(np.interp(0.34, [0.22, 0.52], [0.62, 0.57])) * w))  # the left flank at that height
    fore = sk.LIMB_COLORS[sk.LIMBS.index((IX["left_elbow"], IX["left_wrist"]))].astype(float)
    flank = sk.LIMB_COLORS[sk.LIMBS.index((IX["left_shoulder"], IX["left_hip"]))].astype(float)
    under, over = (render_label_map(pose, (h, w), RenderConfig(arms_over_torso=v))[y, x].astype(float) for v in (False, True))
    a = RenderConfig().limb_alpha

    def blended(c):
        return c * a + 255 * (1 - a)

    np.testing.assert_allclose(under, blended(flank), atol=3)
    np.testing.assert_allclose(over, blended(fore), atol=3)
    assert RenderConfig.from_dict({k: v for k, v in RenderConfig().to_dict().items() if k != "arms_over_torso"}
                                  ).arms_over_torso is False
    # away from the arms nothing changes
    legs = render_label_map(pose, (h, w), RenderConfig(arms_over_torso=True))[int(0.6 * h):]
    np.testing.assert_array_equal(legs, render_label_map(pose, (h, w))[int(0.6 * h):])

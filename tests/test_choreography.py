"""The built-in dance and the procedural figure: deterministic, looping, varied, drawn in place."""

from __future__ import annotations

import numpy as np

from dancenow.realtime.pose import skeleton as sk
from dancenow.realtime.pose.choreography import PERIOD, pose_at
from dancenow.realtime.pose.figure import PERFORMER_STYLE, TARGET_STYLE, draw_figure


def test_dance_is_deterministic_and_loops() -> None:
    a, b = pose_at(3.3), pose_at(3.3)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_allclose(pose_at(1.0).points, pose_at(1.0 + PERIOD).points, atol=1e-3)
    # Continuous: 1/30 s apart the joints move a few pixels at most.
    steps = [np.abs(pose_at(t + 1 / 30).points[:33] - pose_at(t).points[:33]).max() for t in np.arange(0, PERIOD, 0.5)]
    assert max(steps) < 16


def test_dance_covers_the_moves() -> None:
    poses = [pose_at(t) for t in np.arange(0, PERIOD, 0.1)]
    wrist_y = np.array([p.points[[sk.INDEX["left_wrist"], sk.INDEX["right_wrist"]], 1] for p in poses])
    nose_y = np.array([p.points[sk.NOSE, 1] for p in poses])
    assert ((wrist_y < nose_y[:, None]).all(1)).any(), "both arms up somewhere"
    # a desk performer's gesture: both forearms raised (wrists above elbows), hands in front of the chest
    i = sk.INDEX
    raised = [all(p.points[i[f"{s}_wrist"], 1] < p.points[i[f"{s}_elbow"], 1]
                  and p.points[i["right_shoulder"], 0] < p.points[i[f"{s}_wrist"], 0] < p.points[i["left_shoulder"], 0]
                  for s in ("left", "right")) for p in poses]
    assert sum(raised) >= 10, "forearms up in front of the chest for a second or more"
    ankle_y = np.array([p.points[sk.LEFT_ANKLE, 1] for p in poses])
    assert ankle_y.max() - ankle_y.min() > 10, "depth changes move the feet"
    shoulders = np.array([abs(p.points[sk.LEFT_SHOULDER, 0] - p.points[sk.RIGHT_SHOULDER, 0]) for p in poses])
    assert shoulders.min() < 0.85 * shoulders.max(), "the torso turns"
    heights = [p.body_height() for p in poses]
    assert all(h is not None and 120 < h < 230 for h in heights)
    for p in poses:
        assert p.frame_size == (256, 192) and p.detected
        assert (p.confidence[:33] > 0.5).all() and (p.confidence[33:] == 0).all()
        body = p.points[:17, 0]  # up to the wrists (finger tips may leave the frame)
        assert (body > 0).all() and (body < 192).all()


def test_figure_is_drawn_where_the_pose_is() -> None:
    pose = pose_at(6.5)
    img = draw_figure(pose, (256, 192))
    assert img.shape == (256, 192, 3) and img.dtype == np.uint8
    bg = draw_figure(pose.copy(detected=False), (256, 192))
    changed = np.abs(img.astype(int) - bg.astype(int)).sum(2) > 30
    x0, y0, x1, y1 = pose.bbox()
    ys, xs = np.nonzero(changed)
    assert xs.min() >= x0 - 25 and xs.max() <= x1 + 25 and ys.min() >= y0 - 30
    nose = pose.points[sk.NOSE].astype(int)
    assert changed[nose[1], nose[0]]
    # Twice the size: the same picture, scaled.
    big = draw_figure(pose, (512, 384))
    small = big.reshape(256, 2, 192, 2, 3).mean((1, 3))
    assert np.abs(small - img).mean() < 6
    other = draw_figure(pose, (256, 192), PERFORMER_STYLE)
    assert np.abs(other.astype(int) - img.astype(int)).mean() > 20
    assert TARGET_STYLE != PERFORMER_STYLE


def test_a_forearm_across_the_chest_is_drawn_in_front_of_it() -> None:
    """The desk gesture's forearms over the shirt show as skin (the generator learns what the
    figure shows: drawn behind the torso, the demo target painted such arms as part of the shirt)."""
    i = sk.INDEX
    for t in np.arange(14.5, 19.5, 0.05):
        pose = pose_at(t, (256, 192))
        p = pose.points
        inside = [p[i["right_shoulder"], 0] + 6 < p[i[f"{s}_wrist"], 0] < p[i["left_shoulder"], 0] - 6
                  and p[i[f"{s}_wrist"], 1] < p[i[f"{s}_elbow"], 1] for s in ("left", "right")]
        if all(inside):
            break
    else:
        raise AssertionError("no frame with both forearms across the chest")
    img = draw_figure(pose, (256, 192)).astype(float)
    for s in ("left", "right"):
        mid = (0.3 * p[i[f"{s}_elbow"]] + 0.7 * p[i[f"{s}_wrist"]]).astype(int)
        colour = img[mid[1], mid[0]]
        skin, shirt = (np.linalg.norm(colour / colour.sum() - np.array(c) / sum(c))
                       for c in (TARGET_STYLE.skin, TARGET_STYLE.shirt))
        assert skin < shirt, (s, t, colour)

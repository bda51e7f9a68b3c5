"""The one keypoint layout shared by training and the live loop.

A generator only works on label maps drawn exactly as in its training data, so every index,
limb, colour and drawing size lives here and nowhere else.

Layout (K = 204): MediaPipe Pose's 33 body points, then 21 left-hand points, then 21 right-hand
points (MediaPipe Hands order), then 129 points of MediaPipe's 468-point face mesh that outline
the face, brows, eyes, nose and lips. Points that are not tracked have confidence 0. Tracks saved
with the older 75-point layout load with the face mesh untracked.
"""

from __future__ import annotations

import numpy as np

BODY_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye",
    "right_eye_outer", "left_ear", "right_ear", "mouth_left", "mouth_right",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_pinky", "right_pinky", "left_index", "right_index", "left_thumb", "right_thumb",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
HAND_NAMES: tuple[str, ...] = (
    "wrist", "thumb_cmc", "thumb_mcp", "thumb_ip", "thumb_tip",
    "index_mcp", "index_pip", "index_dip", "index_tip",
    "middle_mcp", "middle_pip", "middle_dip", "middle_tip",
    "ring_mcp", "ring_pip", "ring_dip", "ring_tip",
    "pinky_mcp", "pinky_pip", "pinky_dip", "pinky_tip",
)

NUM_BODY = len(BODY_NAMES)  # 33
NUM_HAND = len(HAND_NAMES)  # 21
LEFT_HAND = slice(NUM_BODY, NUM_BODY + NUM_HAND)  # 33..53
RIGHT_HAND = slice(NUM_BODY + NUM_HAND, NUM_BODY + 2 * NUM_HAND)  # 54..74
NUM_BODY_HANDS = NUM_BODY + 2 * NUM_HAND  # 75: the layout before the face mesh

# The face as lines (EDN draws OpenPose's 70 face points as lines): chains of MediaPipe face-mesh
# indices, in drawing order, from MediaPipe's own face_mesh_connections; (chain, closed).
FACE_CHAINS: tuple[tuple[tuple[int, ...], bool], ...] = (
    ((10, 109, 67, 103, 54, 21, 162, 127, 234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377,
      400, 378, 379, 365, 397, 288, 361, 323, 454, 356, 389, 251, 284, 332, 297, 338), True),  # oval
    ((70, 63, 105, 66, 107), False),  # right brow (the person's right)
    ((300, 293, 334, 296, 336), False),  # left brow
    ((33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7), True),  # right eye
    ((263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249), True),  # left eye
    ((168, 6, 197, 195, 5, 4), False),  # nose bridge
    ((98, 97, 2, 326, 327), False),  # nose base
    ((61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146), True),  # lips
    ((78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95), True),  # mouth
)
FACE_MESH: tuple[int, ...] = tuple(i for chain, _ in FACE_CHAINS for i in chain)  # mesh index per point
NUM_FACE_MESH = len(FACE_MESH)  # 129
FACE = slice(NUM_BODY_HANDS, NUM_BODY_HANDS + NUM_FACE_MESH)  # 75..203
MESH_AT = {m: FACE.start + i for i, m in enumerate(FACE_MESH)}  # face-mesh index -> layout index
NUM_POINTS = NUM_BODY_HANDS + NUM_FACE_MESH  # 204

NAMES: tuple[str, ...] = (
    BODY_NAMES
    + tuple(f"left_hand_{n}" for n in HAND_NAMES)
    + tuple(f"right_hand_{n}" for n in HAND_NAMES)
    + tuple(f"face_mesh_{i}" for i in FACE_MESH)
)
INDEX: dict[str, int] = {n: i for i, n in enumerate(NAMES)}

NOSE = INDEX["nose"]
LEFT_SHOULDER, RIGHT_SHOULDER = INDEX["left_shoulder"], INDEX["right_shoulder"]
LEFT_HIP, RIGHT_HIP = INDEX["left_hip"], INDEX["right_hip"]
LEFT_ANKLE, RIGHT_ANKLE = INDEX["left_ankle"], INDEX["right_ankle"]

# Points drawn as the face: eyes, ears, mouth corners and the nose (dark dots, as EDN does).
FACE_POINTS: tuple[int, ...] = tuple(range(0, 11))
# Points that carry the body's height and position (used by normalization and crops).
HEAD_POINTS: tuple[int, ...] = FACE_POINTS
ANKLE_POINTS: tuple[int, int] = (LEFT_ANKLE, RIGHT_ANKLE)
TORSO_POINTS: tuple[int, ...] = (LEFT_SHOULDER, RIGHT_SHOULDER, LEFT_HIP, RIGHT_HIP)

# Virtual points, computed as midpoints for drawing only: the neck and the hip centre.
NECK = NUM_POINTS  # 204
MID_HIP = NUM_POINTS + 1  # 205
VIRTUAL_POINTS: dict[int, tuple[int, int]] = {
    NECK: (LEFT_SHOULDER, RIGHT_SHOULDER),
    MID_HIP: (LEFT_HIP, RIGHT_HIP),
}

# Body limbs in OpenPose / EDN spirit: left and right sides get different colours so the
# generator can tell them apart. Colours are RGB.
LIMBS: tuple[tuple[int, int], ...] = (
    (NECK, NOSE),
    (NECK, MID_HIP),
    (LEFT_SHOULDER, RIGHT_SHOULDER),
    (RIGHT_SHOULDER, INDEX["right_elbow"]),
    (INDEX["right_elbow"], INDEX["right_wrist"]),
    (LEFT_SHOULDER, INDEX["left_elbow"]),
    (INDEX["left_elbow"], INDEX["left_wrist"]),
    (RIGHT_SHOULDER, RIGHT_HIP),
    (LEFT_SHOULDER, LEFT_HIP),
    (LEFT_HIP, RIGHT_HIP),
    (RIGHT_HIP, INDEX["right_knee"]),
    (INDEX["right_knee"], RIGHT_ANKLE),
    (LEFT_HIP, INDEX["left_knee"]),
    (INDEX["left_knee"], LEFT_ANKLE),
    (RIGHT_ANKLE, INDEX["right_heel"]),
    (RIGHT_ANKLE, INDEX["right_foot_index"]),
    (LEFT_ANKLE, INDEX["left_heel"]),
    (LEFT_ANKLE, INDEX["left_foot_index"]),
    (INDEX["right_wrist"], INDEX["right_index"]),
    (INDEX["left_wrist"], INDEX["left_index"]),
)
# The forearms and the upper arms among LIMBS (indices), and the hands' stubs (wrist to index finger).
FOREARM_LIMBS: tuple[int, ...] = tuple(LIMBS.index((INDEX[f"{s}_elbow"], INDEX[f"{s}_wrist"])) for s in ("right", "left"))
ARM_LIMBS: tuple[int, ...] = tuple(sorted(  # in LIMBS' order, as the renderer draws them
    (*(LIMBS.index((INDEX[f"{s}_shoulder"], INDEX[f"{s}_elbow"])) for s in ("right", "left")), *FOREARM_LIMBS)))
HAND_LIMBS: tuple[int, ...] = tuple(LIMBS.index((INDEX[f"{s}_wrist"], INDEX[f"{s}_index"])) for s in ("right", "left"))
LIMB_COLORS: np.ndarray = np.array(
    [
        (255, 0, 85),   # neck-nose
        (255, 0, 0),    # spine
        (255, 85, 0),   # shoulders
        (255, 170, 0),  # right upper arm
        (255, 255, 0),  # right forearm
        (170, 255, 0),  # left upper arm
        (85, 255, 0),   # left forearm
        (0, 255, 0),    # right flank
        (0, 255, 85),   # left flank
        (0, 255, 170),  # hips
        (0, 255, 255),  # right thigh
        (0, 170, 255),  # right shin
        (0, 85, 255),   # left thigh
        (0, 0, 255),    # left shin
        (85, 0, 255),   # right heel
        (170, 0, 255),  # right toes
        (255, 0, 255),  # left heel
        (255, 0, 170),  # left toes
        (200, 200, 0),  # right hand
        (100, 200, 0),  # left hand
    ],
    dtype=np.uint8,
)
# Joints drawn as discs in the colour of the first limb that starts or ends there.
JOINTS: tuple[int, ...] = (
    NECK, MID_HIP, LEFT_SHOULDER, RIGHT_SHOULDER, INDEX["left_elbow"], INDEX["right_elbow"],
    INDEX["left_wrist"], INDEX["right_wrist"], LEFT_HIP, RIGHT_HIP, INDEX["left_knee"],
    INDEX["right_knee"], LEFT_ANKLE, RIGHT_ANKLE,
)
FACE_COLOR: tuple[int, int, int] = (20, 20, 20)
# The face from the mesh: the head's region filled (the generator sees where skin is), each chain
# of FACE_CHAINS in its own dark colour, the open mouth filled dark (open and closed differ).
FACE_FILL: tuple[int, int, int] = (200, 200, 200)
FACE_CHAIN_COLORS: tuple[tuple[int, int, int], ...] = (
    (90, 90, 90), (120, 60, 0), (0, 60, 120), (160, 0, 90), (0, 90, 160), (60, 120, 60), (60, 120, 60),
    (200, 0, 0), (120, 0, 0),
)
MOUTH_FILL: tuple[int, int, int] = (40, 0, 0)

# Hand bones (indices within one hand), drawn as thin lines.
HAND_BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (1, 2), (2, 3), (3, 4),
    (0, 5), (5, 6), (6, 7), (7, 8),
    (0, 9), (9, 10), (10, 11), (11, 12),
    (0, 13), (13, 14), (14, 15), (15, 16),
    (0, 17), (17, 18), (18, 19), (19, 20),
)
LEFT_HAND_COLOR: tuple[int, int, int] = (0, 120, 60)
RIGHT_HAND_COLOR: tuple[int, int, int] = (120, 0, 60)

# EDN's drawing sizes, as fractions of the label map's height (EDN draws 4 px sticks at 512 px).
LIMB_WIDTH_FRAC = 0.016  # full width of a limb ellipse
JOINT_RADIUS_FRAC = 0.010
FACE_DOT_RADIUS_FRAC = 0.006
HAND_LINE_FRAC = 0.004
FACE_LINE_FRAC = 0.004
LIMB_ALPHA = 0.6  # limbs are blended over the canvas: out = (1 - a) * canvas + a * colour
MIN_CONFIDENCE = 0.3  # points below this are not drawn

assert len(LIMB_COLORS) == len(LIMBS)
assert len(FACE_CHAIN_COLORS) == len(FACE_CHAINS) and len(set(FACE_MESH)) == NUM_FACE_MESH


def with_virtual_points(points: np.ndarray, confidence: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Append the neck and hip-centre midpoints (their confidence is the weaker of the pair)."""
    extra_p = np.stack([(points[a] + points[b]) / 2 for a, b in VIRTUAL_POINTS.values()])
    extra_c = np.array([min(confidence[a], confidence[b]) for a, b in VIRTUAL_POINTS.values()])
    return (
        np.concatenate([points, extra_p]).astype(np.float32),
        np.concatenate([confidence, extra_c]).astype(np.float32),
    )


def joint_color(joint: int) -> np.ndarray:
    """Colour of the first limb touching `joint`."""
    for (a, b), color in zip(LIMBS, LIMB_COLORS, strict=True):
        if joint in (a, b):
            return color
    return np.array(FACE_COLOR, dtype=np.uint8)

"""The pose representation: skeleton, tracker, filter, normalization, renderer.

This is the floor: it imports nothing else of ours. Training and the live loop both see bodies
through these modules only.
"""

from dancenow.realtime.pose.pose import Pose
from dancenow.realtime.pose.renderer import RenderConfig, render_label_map

__all__ = ["Pose", "RenderConfig", "render_label_map"]

"""DanceNow: real-time Everybody Dance Now.

Sub-packages: `dancenow.realtime` (pose, capture, live pipeline, WebRTC server),
`dancenow.training`, `dancenow.export`, `dancenow.engines`, `dancenow.demo`.
"""

__version__ = "0.1.0"

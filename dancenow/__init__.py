"""DanceNow: real-time Everybody Dance Now.

Sub-packages: `dancenow.realtime` (pose, capture, live pipeline, WebRTC server),
`dancenow.training`, `dancenow.export`, `dancenow.engines`, `dancenow.demo`.
"""

from dancenow import vendor_telemetry as _vendor_telemetry

__version__ = "0.1.0"

_vendor_telemetry.decline()  # before any of ours imports OpenVINO, which reports at import

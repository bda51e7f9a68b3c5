"""The WebRTC server: HTTP and security, RTC peers and tracks, metrics, and its web pages."""

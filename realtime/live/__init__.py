"""The live loop: capture sources, the pipeline and its slots, presence, compositor, telemetry, the Target and the Show."""

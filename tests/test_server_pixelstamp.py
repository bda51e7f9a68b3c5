"""The pixel stamp survives a real VP8 round trip (what the pages read back for latency)."""

from __future__ import annotations

import fractions

import av
import numpy as np
import pytest

from dancenow.realtime.live import pixelstamp


def test_roundtrip_exact() -> None:
    img = np.random.default_rng(0).integers(0, 256, (256, 192, 3), dtype=np.uint8)
    pixelstamp.encode(img, 4095, 123_456_789.7)
    assert pixelstamp.decode(img) == (4095, 123_456_789 % (1 << pixelstamp.TIME_BITS))


def test_unstamped_and_corrupted_frames_are_rejected() -> None:
    img = np.full((256, 192, 3), 255, np.uint8)
    assert pixelstamp.decode(img) is None
    pixelstamp.encode(img, 7, 1000)
    img[0:8, 8 * 10:8 * 11] = 255 - img[0, 8 * 10]  # flip one counter bit
    assert pixelstamp.decode(img) is None


def test_age_wraps() -> None:
    mod = 1 << pixelstamp.TIME_BITS
    assert pixelstamp.age_ms((mod - 10), mod + 30) == 40


def test_too_small_frame_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="too"):
        pixelstamp.encode(np.zeros((8, 16, 3), np.uint8), 1, 1)


def test_survives_vp8() -> None:
    """Encode stamped noisy frames with libvpx at a low bitrate and read every stamp back."""
    rng = np.random.default_rng(1)
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = 192, 256, "yuv420p"
    codec.bit_rate = 300_000
    codec.time_base = fractions.Fraction(1, 30)
    decoder = av.CodecContext.create("vp8", "r")
    sent, got = [], []
    for i in range(30):
        img = rng.integers(0, 256, (256, 192, 3), dtype=np.uint8)
        t = 1_700_000_000_000 + 33 * i
        pixelstamp.encode(img, i, t)
        sent.append((i, t % (1 << pixelstamp.TIME_BITS)))
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in codec.encode(frame):
            got += [pixelstamp.decode(f.to_ndarray(format="rgb24")) for f in decoder.decode(packet)]
    for packet in codec.encode(None):
        got += [pixelstamp.decode(f.to_ndarray(format="rgb24")) for f in decoder.decode(packet)]
    assert got == sent

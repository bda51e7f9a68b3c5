"""A frame counter and a capture time written into the pixels, to measure glass-to-glass latency.

Timestamps in RTP headers do not survive to the page, so the sender paints them into the frame as
large black/white blocks that a lossy codec (VP8 at a modest bitrate) keeps readable; the page
reads them back after decoding (`web/stamp.js` is the matching decoder). The layout:

- blocks of `BLOCK` x `BLOCK` pixels, row-major from the top-left corner, `width // BLOCK` per row;
- bits: the marker 1010, then the counter (12 bits), then the capture time in wall-clock
  milliseconds modulo 2**22 (about 70 minutes, enough to take a difference), then a 6-bit
  checksum: the 6-bit groups of counter and time XOR-ed together. Most significant bit first.
- white (255) is 1, black (0) is 0; readers threshold the mean of each block's centre at 128.
"""

from __future__ import annotations

import numpy as np

from dancenow.errors import DanceNowError

BLOCK = 8
MARKER = (1, 0, 1, 0)
COUNTER_BITS = 12
TIME_BITS = 22
CHECK_BITS = 6
NBITS = len(MARKER) + COUNTER_BITS + TIME_BITS + CHECK_BITS


def _fold6(x: int) -> int:
    out = 0
    while x:
        out ^= x & 0x3F
        x >>= 6
    return out


def _bits(value: int, n: int) -> list[int]:
    return [(value >> (n - 1 - i)) & 1 for i in range(n)]


def band_height(width: int) -> int:
    """Rows of pixels the stamp covers at the top of a frame `width` pixels wide."""
    cols = width // BLOCK
    if cols < 1:
        raise ValueError(f"frame too narrow for a pixel stamp: {width} px < {BLOCK} px")
    return -(-NBITS // cols) * BLOCK


def encode(image: np.ndarray, counter: int, time_ms: float) -> np.ndarray:
    """Paint the stamp into the top rows of `image` (H x W x 3 uint8) in place and return it."""
    h, w = image.shape[:2]
    if band_height(w) > h:
        raise ValueError(f"frame too small for a pixel stamp: {w}x{h}")
    counter &= (1 << COUNTER_BITS) - 1
    t = int(time_ms) & ((1 << TIME_BITS) - 1)
    bits = [*MARKER, *_bits(counter, COUNTER_BITS), *_bits(t, TIME_BITS),
            *_bits(_fold6(counter) ^ _fold6(t), CHECK_BITS)]
    cols = w // BLOCK
    for i, bit in enumerate(bits):
        r, c = divmod(i, cols)
        image[r * BLOCK:(r + 1) * BLOCK, c * BLOCK:(c + 1) * BLOCK] = 255 if bit else 0
    return image


def decode(image: np.ndarray) -> tuple[int, int] | None:
    """(counter, time_ms modulo 2**22) from a stamped frame, or None when no valid stamp is there.

    Any H x W or H x W x C array of numbers is read; anything else is a DanceNowError."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] == 0) or image.dtype.kind not in "biuf":
        raise DanceNowError(f"pixel stamp: expected an H x W or H x W x C image of numbers, "
                            f"got an array of shape {image.shape} and type {image.dtype}")
    h, w = image.shape[:2]
    cols = w // BLOCK
    if cols < 1 or band_height(w) > h:
        return None
    gray = image.astype(np.float32).mean(axis=2) if image.ndim == 3 else image.astype(np.float32)
    lo, hi = BLOCK // 2 - 2, BLOCK // 2 + 2
    bits = []
    for i in range(NBITS):
        r, c = divmod(i, cols)
        centre = gray[r * BLOCK + lo:r * BLOCK + hi, c * BLOCK + lo:c * BLOCK + hi]
        bits.append(1 if centre.mean() >= 128 else 0)
    if tuple(bits[:4]) != MARKER:
        return None

    def value(a: int, n: int) -> int:
        return int("".join(map(str, bits[a:a + n])), 2)

    counter = value(4, COUNTER_BITS)
    t = value(4 + COUNTER_BITS, TIME_BITS)
    if value(4 + COUNTER_BITS + TIME_BITS, CHECK_BITS) != _fold6(counter) ^ _fold6(t):
        return None
    return counter, t


def age_ms(stamped_ms: int, now_ms: float) -> int:
    """Milliseconds from a stamped time to `now_ms` (wall clock), across the modulo wrap."""
    return (int(now_ms) - stamped_ms) % (1 << TIME_BITS)

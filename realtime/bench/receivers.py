"""aiortc viewers in a process of their own, for `dancenow bench web`: on two cores, seven more
Chromium tabs would measure the browser, not the server. Each viewer decodes every frame (as a
browser does); the first also reads the pixel stamps (glass-to-glass as far as a frame decoded in
Python).

`python -m dancenow.realtime.bench.receivers URL N SECONDS`: connects N viewers, waits until each
decodes, prints "measuring" on a line, measures for SECONDS, prints one line of JSON, exits.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import urlsplit

import aiohttp
import numpy as np

from dancenow.realtime.bench.rtc_client import Viewer
from dancenow.realtime.serve.http import is_loopback
from dancenow.realtime.serve.rtc import configure_ice


async def measure(url: str, n: int, seconds: float, settle: float = 2.0) -> dict:
    """Connect `n` viewers, let them settle, then their fps and stamp latencies over `seconds`."""
    configure_ice(is_loopback(urlsplit(url).hostname or ""), 1.0, 3)  # aioice leaves loopback out otherwise
    async with aiohttp.ClientSession() as session:
        # stamps read by the first only: converting every frame to RGB would double the others' cost
        viewers = [await Viewer(url, stamps=i == 0).connect(session) for i in range(n)]
        try:
            await asyncio.gather(*(v.wait_frames(10, timeout=60) for v in viewers))
            await asyncio.sleep(settle)
            for v in viewers:
                v.take_latencies()
            start = [v.frames for v in viewers]
            print("measuring", flush=True)
            t0 = time.monotonic()
            await asyncio.sleep(seconds)
            elapsed = time.monotonic() - t0
            fps = [(v.frames - s) / elapsed for v, s in zip(viewers, start, strict=True)]
            ms = [m for v in viewers for m in v.take_latencies()]
        finally:
            for v in viewers:
                await v.close(session=session)
    return {"viewers": n, "fps": [round(f, 2) for f in fps], "missed_first": viewers[0].missed,
            "latency_p50_ms": round(float(np.median(ms)), 1) if ms else None}


def main(argv: list[str]) -> int:
    url, n, seconds = argv[0], int(argv[1]), float(argv[2])
    print(json.dumps(asyncio.run(measure(url, n, seconds))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

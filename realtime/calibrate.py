"""`dancenow calibrate`: record the performer's body statistics once, reuse them in later runs.

Live calibration gathers the same statistics during the first seconds of every run; a recorded
file skips that warm-up and keeps the mapping fixed (`dancenow run --calibration FILE`).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from dancenow.errors import DanceNowError
from dancenow.files import write_atomic
from dancenow.realtime.live.sources import Source, open_source
from dancenow.realtime.pose.filter import PoseFilter
from dancenow.realtime.pose.normalize import OnlineStats, PoseStats


def calibrate(source: str | Source, out: str | Path, seconds: float = 10.0) -> PoseStats:
    """Track the performer for `seconds` (or until a finite source ends) and write their stats."""
    out = Path(out)
    if not out.parent.exists():
        raise DanceNowError(f"folder {out.parent} does not exist: create it or choose another -o")
    src = source if isinstance(source, Source) else open_source(source, paced=False)
    online = OnlineStats(window=100_000, refit_every=1)
    flt = PoseFilter()
    tracker = None
    after, seen, t0 = 0, 0, time.monotonic()
    src.start()
    try:
        src.check_ready()
        while time.monotonic() - t0 < seconds:
            got = src.frames.get(after, timeout=0.2)
            if got is None:
                if src.ended:
                    break
                continue
            after, cf = got
            seen += 1
            pose = cf.pose
            if pose is None:
                if tracker is None:
                    from dancenow.realtime.pose.tracker import PoseTracker

                    tracker = PoseTracker()
                pose = flt.apply(tracker.track(cf.image, cf.clock))
            if pose.detected and not pose.extras.get("held"):
                online.update(pose)
    finally:
        src.close()
        if tracker is not None:
            tracker.close()
    stats = online.stats()
    if stats is None:
        raise DanceNowError(
            f"only {online.frames} of {seen} frames showed the whole body (head to ankles): step back so "
            "your feet are in view and calibrate again"
        )
    write_atomic(out, (json.dumps(stats.to_dict(), indent=2) + "\n").encode())
    print(f"calibrated on {stats.frames} full-body frames ({stats.mode}); wrote {out}", file=sys.stderr)
    return stats

"""`dancenow bench`: its arguments and which benchmark each names.

The command line owns how a target name becomes a bundle (built-in demo targets live above this
floor), so it hands that in as `bundle_of`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from dancenow.engines.sizes import add_size_argument
from dancenow.realtime.bench.widths import parse_widths

WHAT = ("pose", "engines", "live", "web", "soak", "budgets", "desk")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number of at least 1")
    return int(text)


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("what", choices=WHAT)
    s.add_argument("clip", nargs="?", default=None, help="a video clip (default: one from ../shared/data)")
    s.add_argument("--target", default=None, help="target bundle (default: the built-in demo target)")
    add_size_argument(s)
    s.add_argument("--frames", type=int, default=None, help="frames or iterations to time")
    s.add_argument("--seconds", type=float, default=60.0, help="how long to stream (live, web)")
    s.add_argument("--minutes", type=float, default=30.0, help="how long to soak (soak: one performer, two viewers)")
    s.add_argument("--trace", action="store_true", help="soak: trace the Python heap (a diagnostic run, slower)")
    s.add_argument("--widths", type=parse_widths, default=(),
                   help="budgets: also time generator v2 at these ngf, or ngf x residual blocks (e.g. 8,16,12x9)")
    s.add_argument("--rounds", type=_positive, default=None,
                   help="budgets: interleaved rounds, the median reported (default 3); engines: alternating "
                        "passes the frames are split over (default 2)")
    s.add_argument("--keep", type=Path, default=None,
                   help="desk: keep the crops and the target's outputs in this folder (for contact sheets)")
    s.add_argument("--json", action="store_true", help="print the figures as JSON")


def run(a: argparse.Namespace, bundle_of: Callable[[str | None], Path]) -> dict:
    """Run the benchmark `a.what` names, print its table (or JSON) and return its figures."""
    if a.what == "pose":
        from dancenow.realtime.bench import pose as b

        result = b.run(a.clip, frames=a.frames)
    elif a.what == "engines":
        from dancenow.realtime.bench import engines as b

        result = b.run(bundle_of(a.target), iterations=a.frames, passes=a.rounds or b.PASSES,
                       size="full" if a.size == "auto" else a.size)
    elif a.what == "live":
        from dancenow.realtime.bench import live as b

        result = b.run(a.clip, bundle_of(a.target), seconds=a.seconds, size=a.size)
    elif a.what == "web":
        from dancenow.realtime.bench import web as b

        result = b.run(bundle_of(a.target), seconds=a.seconds, clip=a.clip, size=a.size)
    elif a.what == "desk":
        from dancenow.realtime.bench import desk as b

        result = b.run(a.clip, bundle_of(a.target), keep=a.keep, frames=a.frames)
    elif a.what == "budgets":
        from dancenow.realtime.bench import budgets as b

        result = b.run(a.widths, rounds=a.rounds or b.ROUNDS)
    else:
        from dancenow.realtime.bench import soak as b

        result = b.run(bundle_of(a.target), minutes=a.minutes, clip=a.clip, trace=a.trace)
    print(json.dumps(result, indent=2) if a.json else b.format_table(result))
    return result

"""`bench budgets --widths`: the generator sizes to time, as the command line gives them."""

from __future__ import annotations

import argparse


def parse_widths(text: str) -> tuple[int | tuple[int, int], ...]:
    """'8,16,12x9': ngf values, or ngf x residual blocks pairs."""
    out: list[int | tuple[int, int]] = []
    for item in (v.strip() for v in text.split(",") if v.strip()):
        parts = item.lower().split("x")
        if len(parts) > 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(f"{item!r}: give an ngf (16) or ngf x residual blocks (12x9), "
                                             "separated by commas, e.g. 8,16,12x9")
        out.append(int(parts[0]) if len(parts) == 1 else (int(parts[0]), int(parts[1])))
    if not out:
        raise argparse.ArgumentTypeError("give at least one width, e.g. 8,16,12x9")
    return tuple(out)

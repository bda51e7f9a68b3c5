"""What an export says as it goes: one line per step on stderr (stdout stays for results)."""

from __future__ import annotations

import sys


def say(msg: str) -> None:
    print(f"export: {msg}", file=sys.stderr, flush=True)

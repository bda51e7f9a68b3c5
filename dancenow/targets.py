"""Where named targets live, and what a target's name may be: on the ground floor, since
`make-target` (export) writes them and the server (serve) lists, switches to and deletes them."""

from __future__ import annotations

import os
import re
from pathlib import Path

from dancenow.errors import DanceNowError

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
WORK = ".work"  # prepared data, runs and reports, per target name
UPLOADS = ".uploads"  # the studio's recordings and uploaded videos


def targets_dir(targets: str | os.PathLike | None = None) -> Path:
    """`targets`, else $DANCENOW_TARGETS, else ~/.cache/dancenow/targets."""
    if targets is not None:
        return Path(targets)
    return Path(os.environ.get("DANCENOW_TARGETS") or Path.home() / ".cache" / "dancenow" / "targets")


def check_name(name: object, what: str = "target name") -> str:
    """A name that is a folder name and nothing else: 1 to 64 letters, digits, - and _, starting
    with a letter or digit (no path, no dot file, no traversal)."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise DanceNowError(f"{what} {str(name)[:80]!r}: use 1 to 64 letters, digits, - and _ "
                            "(starting with a letter or digit), e.g. alice")
    return name


def named_target(name: str, targets: str | os.PathLike | None = None) -> Path | None:
    """The bundle folder of the named target, or None when there is none by that name."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return None
    folder = targets_dir(targets) / name
    return folder if (folder / "manifest.json").is_file() else None

"""Small file helpers on the ground floor: every package may use them (training, export,
calibration, engines), so they live here and not in any one of those packages."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path


def sha256(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks (bundles hold files of tens of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write via a temporary file and rename, so a crash never leaves half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a written file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cache_dir() -> Path:
    """The user cache folder (DANCENOW_CACHE, else ~/.cache/dancenow): built bundles, engine choices."""
    return Path(os.environ.get("DANCENOW_CACHE") or Path.home() / ".cache" / "dancenow")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask

"""What an offer's ICE candidates must look like before aiortc sees them.

aiortc and aioice accept a candidate with port 65536 or 99999999999 and only fail when they send
to it: the socket raises OverflowError, asyncio logs a traceback at ERROR and closes that peer's
socket. Found by tests/test_fuzz_http.py; refused here with a 400 that names the line.
"""

from __future__ import annotations

from dancenow.realtime.serve.http import HTTPProblem

MAX_PORT = 65535


def _port(value: str) -> bool:
    return value.isascii() and value.isdigit() and int(value) <= MAX_PORT


def check_candidates(sdp: str) -> None:
    """HTTPProblem(400) for an m-line port or a candidate line (RFC 8839) that cannot be real."""
    for line in sdp.splitlines():
        if line.startswith("m="):
            fields = line[2:].split()
            if len(fields) < 2 or not _port(fields[1].split("/")[0]):
                raise HTTPProblem(400, f"malformed offer: bad port in {line[:80]!r}")
        elif line.startswith("a=candidate:"):
            if not _candidate(line[len("a=candidate:"):].split()):
                raise HTTPProblem(400, f"malformed offer: bad ICE candidate {line[:120]!r}")


def _candidate(f: list[str]) -> bool:
    """foundation component transport priority address port typ type [raddr A] [rport P] ..."""
    if len(f) < 8 or f[6] != "typ" or f[2].lower() not in ("udp", "tcp"):
        return False
    if not (f[1].isascii() and f[1].isdigit() and 1 <= int(f[1]) <= 256):
        return False
    if not (f[3].isascii() and f[3].isdigit() and int(f[3]) < 2**32) or not _port(f[5]):
        return False
    extensions = dict(zip(f[8::2], f[9::2], strict=False))
    return "rport" not in extensions or _port(extensions["rport"])

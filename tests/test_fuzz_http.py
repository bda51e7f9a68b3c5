"""Every HTTP endpoint of the real server, fuzzed with hypothesis over real sockets, while a real
aiortc viewer keeps streaming: each request gets a 4xx (or the answer it asked for), never a 500,
a traceback or a hang, and the viewer's frame count keeps rising throughout.

Requests go out as raw bytes (tests/raw_http.py): any header, any body, repeated fields. Requests
with the right token come from 127.0.0.3 and the others from 127.0.0.2, so the wrong-token limit
(429) does not stop the fuzzer from reaching the code behind the token.
Run longer: DANCENOW_FUZZ_EXAMPLES=2000 pytest -s tests/test_fuzz_http.py
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path

import aiohttp
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection
from hypothesis import given
from hypothesis import strategies as st

from dancenow.realtime.bench.rtc_client import Viewer
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

import raw_http
from fuzz_strategies import CASES, FUZZ, JSON, ODD_TEXT, dumps, json_texts

pytestmark = pytest.mark.slow
TOKEN = "fuzz-token-0123456789"
RIGHT, OTHER = "127.0.0.3", "127.0.0.2"  # client addresses: with the right token, and the rest
STATUSES: defaultdict[str, Counter[int]] = defaultdict(Counter)  # answers per endpoint, for the summary
MAX_STALL = 5.0  # seconds the viewer may go without a new frame (the server repeats a frame every 1 s)
KNOWN_TYPES = st.sampled_from([
    "application/json", "text/plain", "application/json; charset=utf-8", "application/json; charset=latin-1",
    "APPLICATION/JSON", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", ";;;",
    "application/json; charset=\udcff",
])
# mostly values the HTTP parser lets through to our code; odd text (often refused by aiohttp) a quarter of the time
CONTENT_TYPES = st.one_of(KNOWN_TYPES, KNOWN_TYPES, KNOWN_TYPES, ODD_TEXT)
HEADER_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


class Errors(logging.Handler):
    """ERROR records of any logger (aiohttp's "Error handling request", asyncio's lost exceptions)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class Served:
    """The server, one viewer streaming from it, and the watch on that stream."""

    def __init__(self, st_: ServerThread, viewer: Viewer, errors: Errors) -> None:
        self.st, self.viewer, self.errors = st_, viewer, errors
        self.port = st_.server.port
        self.seen, self.changed, self.max_stall = viewer.frames, time.monotonic(), 0.0

    def watch(self) -> None:
        now = time.monotonic()
        if self.viewer.frames > self.seen:
            self.seen, self.changed = self.viewer.frames, now
        self.max_stall = max(self.max_stall, now - self.changed)

    def send(self, endpoint: str, method: str, path: str | bytes, headers=(), body: bytes = b"",
             source: str = OTHER, **kw) -> raw_http.Response:
        CASES[endpoint] += 1
        r = raw_http.request(self.port, method, path, list(headers), body, source=source, **kw)
        STATUSES[endpoint][r.status] += 1
        check(r, path, method)
        if r.status == 200 and isinstance(r.json(), dict) and "sdp" in r.json():
            self.bye(r.json()["id"])  # an accepted fuzzed offer: free its place at once
        self.watch()
        return r

    def bye(self, pid: str) -> None:
        r = raw_http.request(self.port, "POST", "/api/bye", [("Content-Type", "application/json")],
                             json.dumps({"id": pid}).encode())
        assert r.status == 200 and r.json() == {"closed": True}, r


def check(r: raw_http.Response, path, method: str = "POST") -> None:
    """A clear answer: below 500 (or the peer cap's 503), no traceback, JSON errors on the API."""
    assert r.status != 0, f"no HTTP answer to {path!r}: {r.body[:200]!r}"
    capped = r.status == 503 and b"too many peers" in r.body
    assert r.status < 500 or capped, f"{r.status} for {path!r}: {r.body[:300]!r}"
    assert b"Traceback" not in r.body and b'File "' not in r.body, r.body[:300]
    api = (path if isinstance(path, str) else path.decode("latin-1")).startswith("/api/")
    if method.upper() == "HEAD":
        return  # no body to judge
    if r.status >= 400 and r.headers.get("content-type", "").startswith("text/plain"):
        # aiohttp's own answer (no route, wrong method, a request its parser refused): plain text
        assert r.status in (400, 404, 405, 413, 414, 431) and r.body.strip(), r
    elif api and r.status >= 400:
        err = (r.json() or {}).get("error")
        assert isinstance(err, str) and err, f"{r.status} without a JSON error: {r.body[:200]!r}"


@functools.cache
def real_offer() -> list[str]:
    """The lines of a real aiortc offer (video, recvonly), the seed of the SDP mutations."""
    async def make() -> str:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        await pc.setLocalDescription(await pc.createOffer())
        sdp = pc.localDescription.sdp
        await pc.close()
        return sdp

    return asyncio.run(make()).split("\r\n")


@st.composite
def sdps(draw) -> str:
    """A real offer with lines deleted, doubled, cut, replaced, or numbers made absurd; or junk."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from(["", "v=0", "v=0\r\nm=video ", "v=0\nm=video 9\n"])) + draw(ODD_TEXT)
    lines = list(real_offer())
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(["drop", "double", "cut", "junk", "number", "insert"]))
        if op == "drop" and i > 0:
            del lines[i]
        elif op == "double":
            lines.insert(i, lines[i])
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, max(0, len(lines[i]) - 1)))]
        elif op == "junk" and i > 0:
            lines[i] = lines[i][:2] + draw(ODD_TEXT)
        elif op == "number":
            n = draw(st.sampled_from(["-1", "0", "65536", "99999999999999999999", "1e9", "NaN", "\u0663"]))
            lines[i] = " ".join(n if w.isdigit() else w for w in lines[i].split(" "))
        elif op == "insert":
            lines.insert(max(1, i), draw(st.sampled_from(["a=", "m=video 9 UDP/TLS/RTP/SAVPF " + "96 " * 300,
                                                          "a=candidate:" + "x" * 2000, "m=audio 9 RTP/AVP 0"])))
    return draw(st.sampled_from(["\r\n", "\n"])).join(lines)


def offer_bodies(extra: dict | None = None) -> st.SearchStrategy[bytes]:
    """Offer bodies: well-shaped with a fuzzed SDP, shaped wrong, or JSON gone wrong."""
    optional = {k: v for k, v in {"sdp": sdps() | JSON, "type": st.just("offer") | JSON, "id": JSON,
                                  "token": JSON}.items() if k not in (extra or {})}
    shaped = st.fixed_dictionaries(extra or {}, optional=optional)
    good = st.fixed_dictionaries({"sdp": sdps(), "type": st.just("offer"), **(extra or {})})
    return st.one_of(st.builds(dumps, good, st.booleans()), st.builds(dumps, shaped, st.booleans()), json_texts())


@pytest.fixture(scope="module")
def served(live_bundle: Path):
    errors = Errors()
    logging.getLogger().addHandler(errors)
    cfg = ServeConfig(target=live_bundle, port=0, token=TOKEN, max_peers=4, backend="onnxruntime", max_body=64_000)
    viewer = Viewer("", stamps=False)

    async def start(server) -> None:
        viewer.url, viewer.session = server.url, aiohttp.ClientSession()
        await viewer.connect(viewer.session)
        await viewer.wait_frames(5)

    async def stop(server) -> None:
        await viewer.close(session=viewer.session)
        await viewer.session.close()

    try:
        with ServerThread(cfg) as st_:
            st_.call(start)
            yield Served(st_, viewer, errors)
            st_.call(stop)
            assert st_.call(lambda srv: len(srv.peers)) == 0
    finally:
        logging.getLogger().removeHandler(errors)


@pytest.fixture(autouse=True)
def still_streaming(served: Served, request: pytest.FixtureRequest):
    """Around each fuzz run: the viewer's frame count rose, it never stalled, nothing was logged as an error."""
    if request.node.name == "test_fuzz_summary":
        yield
        return
    before, served.max_stall, served.changed = served.viewer.frames, 0.0, time.monotonic()
    served.errors.records.clear()
    start = time.monotonic()
    yield
    took = time.monotonic() - start
    served.watch()
    after = served.viewer.frames
    name = request.node.name.removeprefix("test_fuzz_")
    print(f"\nfuzz {name}: viewer {before} -> {after} frames, longest stall {served.max_stall:.1f} s; "
          f"cases so far: {dict(CASES)}")
    assert after > before or took < 2.0, "the viewer stopped receiving frames"  # (a keep-alive frame each 1 s)
    assert served.max_stall < MAX_STALL, f"the viewer got no frame for {served.max_stall:.1f} s"
    assert not served.errors.records, [r.getMessage() for r in served.errors.records][:5]
    assert served.st.call(lambda s: s.peers.get(served.viewer.id) is not None), "the viewer was dropped"


def _token_headers(draw, body: dict) -> tuple[list, str]:
    """Headers and client address for a token case: right (header or body), wrong, missing, odd bytes."""
    kind = draw(st.sampled_from(["header", "body", "wrong", "missing", "bytes", "bearer-junk"]))
    if kind == "header":
        return [("Authorization", f"Bearer {TOKEN}")], RIGHT
    if kind == "body":
        body["token"] = TOKEN
        return [], RIGHT
    if kind == "wrong":
        body["token"] = draw(ODD_TEXT | JSON)
        return [], OTHER
    if kind == "bytes":
        return [(b"Authorization", b"Bearer " + draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b""))], OTHER
    if kind == "bearer-junk":
        return [("Authorization", draw(st.sampled_from(["Bearer", "Bearer ", "bearer  x", "Basic dG9rZW4=", "\udcff"])))], OTHER
    return [], OTHER


@given(body=offer_bodies(), ctype=CONTENT_TYPES)
@FUZZ
def test_fuzz_offer(served: Served, body: bytes, ctype: str) -> None:
    served.send("POST /api/offer", "POST", "/api/offer", [("Content-Type", ctype)], body)


@given(data=st.data())
@FUZZ
def test_fuzz_perform(served: Served, data: st.DataObject) -> None:
    body = data.draw(st.fixed_dictionaries({"sdp": sdps(), "type": st.just("offer")}, optional={"x": JSON}))
    headers, source = _token_headers(data.draw, body)
    raw = data.draw(st.just(dumps(body)) | offer_bodies({"token": st.just(TOKEN)}))
    ctype = data.draw(st.just("application/json") | CONTENT_TYPES)
    served.send("POST /api/perform", "POST", "/api/perform", [("Content-Type", ctype), *headers], raw, source=source)


@pytest.fixture(scope="module")
def odd_folders(tmp_path_factory: pytest.TempPathFactory, live_bundle: Path) -> list[str]:
    """Folders that look like bundles and are not: what a token holder could point /api/target at."""
    root = tmp_path_factory.mktemp("odd")
    (root / "dir-manifest" / "manifest.json").mkdir(parents=True)
    (root / "bad-json").mkdir()
    (root / "bad-json" / "manifest.json").write_bytes(b"{\xff")
    (root / "no-artifacts").mkdir()
    (root / "no-artifacts" / "manifest.json").write_text((live_bundle / "manifest.json").read_text())
    (root / "zero").mkdir()
    (root / "zero" / "manifest.json").symlink_to("/dev/zero")
    return [str(p) for p in sorted(root.iterdir())] + [str(live_bundle / "manifest.json")]


@given(data=st.data())
@FUZZ
def test_fuzz_target(served: Served, odd_folders: list[str], data: st.DataObject) -> None:
    paths = st.sampled_from([*odd_folders, "/", "/etc", "/proc/self", "~", "~root", "~nobody-here/x", "../../..",
                             "/dev/zero", "a\x00b", "~\x00a/b", "x" * 5000, "\udcff", "//", "file:///etc"]) | ODD_TEXT
    body = data.draw(st.fixed_dictionaries({}, optional={"target": paths | JSON, "x": JSON}))
    headers, source = _token_headers(data.draw, body)
    raw = data.draw(st.just(dumps(body)) | st.just(dumps(body, False)) | json_texts())
    ctype = data.draw(st.just("application/json") | CONTENT_TYPES)
    served.send("POST /api/target", "POST", "/api/target", [("Content-Type", ctype), *headers], raw, source=source)


@given(data=st.data())
@FUZZ
def test_fuzz_background(served: Served, data: st.DataObject) -> None:
    names = st.sampled_from(["plate", "green", "white", "/etc/passwd", "~", "GREEN", "", "plate\x00"]) | ODD_TEXT
    body = data.draw(st.fixed_dictionaries({}, optional={"background": names | JSON, "x": JSON}))
    headers, source = _token_headers(data.draw, body)
    raw = data.draw(st.just(dumps(body)) | json_texts())
    ctype = data.draw(st.just("application/json") | CONTENT_TYPES)
    served.send("POST /api/background", "POST", "/api/background", [("Content-Type", ctype), *headers], raw,
                source=source)


@given(body=st.builds(dumps, st.fixed_dictionaries({}, optional={"id": ODD_TEXT | JSON})) | json_texts(),
       ctype=st.just("text/plain") | CONTENT_TYPES)
@FUZZ
def test_fuzz_bye(served: Served, body: bytes, ctype: str) -> None:
    served.send("POST /api/bye", "POST", "/api/bye", [("Content-Type", ctype)], body)


PATHS = ["/", "/perform", "/static/viewer.js", "/static/style.css", "/static/", "/static/..", "/static/%2e%2e%2fserver.py",
         "/api/status", "/api/clock", "/metrics", "/healthz", "/favicon.ico", "/api/offer", "/api/bye", "/api/nope",
         "//api/status", "/api/status?x=1&x=2", "/static/viewer.js%00.html", "/%ff", "/" + "a" * 8000]


@given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "get", "BREW"]),
       path=st.sampled_from(PATHS) | ODD_TEXT.map(lambda t: "/" + t.encode("utf-8", "surrogatepass").hex()[:30])
       | st.binary(min_size=1, max_size=60).filter(lambda b: not set(b) & set(b" \r\n")).map(lambda b: b"/" + b),
       headers=st.lists(st.tuples(st.sampled_from(["Host", "Content-Type", "Accept", "Cookie", "X-Forwarded-For",
                                                   "Authorization", "Range", "If-None-Match", "Origin"]),
                                  st.one_of(HEADER_TEXT, HEADER_TEXT, HEADER_TEXT,
                                            ODD_TEXT.map(lambda t: t.replace("\r", "").replace("\n", "")))),
                        max_size=3))
@FUZZ
def test_fuzz_pages_and_methods(served: Served, method: str, path, headers: list) -> None:
    served.send("GET pages/status/metrics", method, path, headers)


@given(raw=st.one_of(
    st.binary(max_size=400),
    st.builds(lambda junk: b"POST /api/offer HTTP/1.1\r\n" + junk, st.binary(max_size=200)),
    st.sampled_from([b"GET / HTTP/9.9\r\n\r\n", b"GET /\r\n\r\n", b"POST /api/offer HTTP/1.1\r\nContent-Length: 5\r\n"
                     b"Content-Length: 6\r\n\r\nhello", b"POST /api/offer HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"zz\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n"]),
))
@FUZZ
def test_fuzz_raw_http(served: Served, raw: bytes) -> None:
    """Bytes that are barely HTTP: the server answers 400 or closes; the stream goes on."""
    import socket

    CASES["raw HTTP"] += 1
    with socket.create_connection(("127.0.0.1", served.port), timeout=5, source_address=(OTHER, 0)) as s:
        s.sendall(raw)
        s.shutdown(socket.SHUT_WR)
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    r = raw_http.parse(data)
    assert r.status == 0 or r.status < 500, data[:300]
    assert b"Traceback" not in data
    served.watch()


@given(body=st.builds(dumps, JSON), ctype=CONTENT_TYPES,
       size=st.sampled_from([64_001, 100_000, 1_000_000]), chunked=st.booleans())
@FUZZ
def test_fuzz_sizes(served: Served, body: bytes, ctype: str, size: int, chunked: bool) -> None:
    """Bodies over the limit, with and without a Content-Length: refused without reading them all."""
    big = body + b" " * max(0, size - len(body))
    if chunked:
        data = b"%x\r\n" % len(big) + big + b"\r\n0\r\n\r\n"
        headers = [("Content-Type", ctype), ("Transfer-Encoding", "chunked")]
        served.send("oversized bodies", "POST", "/api/offer", headers, data, length=False)
    else:
        served.send("oversized bodies", "POST", "/api/offer", [("Content-Type", ctype)], big)


@pytest.mark.parametrize("bad, named", [
    ("a=candidate:1 1 udp 2130706431 127.0.0.1 65536 typ host", "bad ICE candidate"),
    ("a=candidate:1 1 udp 2130706431 127.0.0.1 9 typ srflx raddr 0.0.0.0 rport 99999999999", "bad ICE candidate"),
    ("m=video 99999999999 UDP/TLS/RTP/SAVPF 96", "bad port"),
])
def test_found_impossible_ports_are_refused(served: Served, bad: str, named: str) -> None:
    """Found by test_fuzz_perform: a candidate on port 65536 made aioice's sendto raise OverflowError
    (a traceback at ERROR, the peer's socket closed); now a 400 naming the line."""
    lines = list(real_offer())
    at = next(i for i, line in enumerate(lines) if line.startswith("m=video"))
    if bad.startswith("m="):
        lines[at] = bad
    else:
        lines.insert(at + 1, bad)
    body = json.dumps({"type": "offer", "sdp": "\r\n".join(lines)}).encode()
    r = served.send("POST /api/offer", "POST", "/api/offer", [("Content-Type", "application/json")], body)
    assert r.status == 400 and named in r.json()["error"], r


def test_fuzz_summary(served: Served, capsys: pytest.CaptureFixture) -> None:
    """Print the count of cases per endpoint (the issue's note quotes them)."""
    total = sum(CASES.values())
    with capsys.disabled():
        print(f"\nHTTP fuzz cases: {total} in all; " + "; ".join(f"{k}: {v}" for k, v in sorted(CASES.items())))
        for endpoint, statuses in sorted(STATUSES.items()):
            print(f"  {endpoint} answered: " + ", ".join(f"{s} x{n}" for s, n in sorted(statuses.items())))
    assert total > 0

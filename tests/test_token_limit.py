"""Token guessing is limited per address (429 with Retry-After, even for the right token, other
addresses unaffected), and the peer cap answers 503: both against the real server over real
sockets, clients told apart by their loopback address (127.0.0.2 is another machine here)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from dancenow.realtime.bench.rtc_client import Refused, Viewer
from dancenow.realtime.serve.http import TokenGuard
from dancenow.realtime.serve.server import ServeConfig
from dancenow.realtime.serve.thread import ServerThread

import raw_http

TOKEN = "limit-token-0123456789"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def st(live_bundle: Path):
    with ServerThread(ServeConfig(target=live_bundle, port=0, token=TOKEN, max_peers=2, backend="onnxruntime")) as s:
        yield s


def _post(st: ServerThread, path: str, body: dict, source: str, token: str | None = None) -> raw_http.Response:
    headers = [("Content-Type", "application/json")] + ([("Authorization", f"Bearer {token}")] if token else [])
    return raw_http.request(st.server.port, "POST", path, headers, json.dumps(body).encode(), source=source)


def test_twenty_wrong_tokens_then_429_for_a_minute(st: ServerThread) -> None:
    clock = Clock()
    st.call(lambda s: setattr(s, "tokens", TokenGuard(clock=clock)))
    target = {"target": "/nonexistent"}
    right = _post(st, "/api/target", target, "127.0.0.2", TOKEN)
    assert right.status == 400 and "manifest" in right.json()["error"]  # past the token check
    for i in range(20):
        clock.now += 2.0  # 20 guesses within 40 s
        r = _post(st, "/api/target", {**target, "token": f"guess-{i:04d}"}, "127.0.0.2")
        assert r.status == 403 and r.json()["error"] == "wrong token", (i, r)
    for path, token in (("/api/target", "guess-x"), ("/api/target", TOKEN), ("/api/perform", TOKEN)):
        r = _post(st, path, {**target, "sdp": "v=0", "type": "offer"}, "127.0.0.2", token)
        assert r.status == 429, (path, token, r)
        assert "too many wrong tokens" in r.json()["error"] and r.headers["retry-after"] == "60"
    # another address is not affected, with the right token or a wrong one
    assert _post(st, "/api/target", target, "127.0.0.3", TOKEN).status == 400
    assert _post(st, "/api/target", target, "127.0.0.3", "guess-y").status == 403
    # a page that sends no token at all is told so, and is not counted as guessing
    for _ in range(25):
        assert _post(st, "/api/target", target, "127.0.0.4").status == 403
    assert _post(st, "/api/target", target, "127.0.0.4", TOKEN).status == 400
    clock.now += 30.0
    r = _post(st, "/api/target", target, "127.0.0.2", TOKEN)
    assert r.status == 429 and r.headers["retry-after"] == "30"
    clock.now += 31.0  # the block is over
    assert _post(st, "/api/target", target, "127.0.0.2", TOKEN).status == 400


def test_guesses_spread_over_more_than_a_minute_are_not_blocked(st: ServerThread) -> None:
    clock = Clock()
    st.call(lambda s: setattr(s, "tokens", TokenGuard(clock=clock)))
    for i in range(40):
        assert _post(st, "/api/target", {"target": "x", "token": f"slow-{i}"}, "127.0.0.5").status == 403
        clock.now += 3.5  # 18 guesses a minute
    assert _post(st, "/api/target", {"target": "/nonexistent"}, "127.0.0.5", TOKEN).status == 400


def test_the_guard_forgets_old_addresses() -> None:
    """Many addresses (IPv6 gives an attacker plenty) cannot grow its memory without bound."""
    clock = Clock()
    guard = TokenGuard(clock=clock, max_addresses=100)
    for i in range(1000):
        guard._count(f"10.0.{i // 256}.{i % 256}", clock())
        clock.now += 0.01
    assert len(guard._wrong) + len(guard._blocked) <= 101


def test_peer_cap_answers_503_and_frees_places(st: ServerThread) -> None:
    async def main(server) -> dict:
        async with aiohttp.ClientSession() as session:
            viewers = [await Viewer(server.url, stamps=False).connect(session) for _ in range(2)]
            with pytest.raises(Refused) as refused:
                await Viewer(server.url).connect(session)
            answers = []
            for path, headers in (("/api/offer", {}), ("/api/perform", {"Authorization": f"Bearer {TOKEN}"})):
                async with session.post(server.url + path, json={"type": "offer", "sdp": "v=0"}, headers=headers) as r:
                    answers.append((r.status, r.headers.get("Retry-After"), (await r.json())["error"]))
            await viewers[0].close(session=session)
            again = await Viewer(server.url, stamps=False).connect(session)  # the freed place is taken
            await again.wait_frames(3)
            for v in (viewers[1], again):
                await v.close(session=session)
            return {"refused": (refused.value.status, str(refused.value)), "answers": answers}

    got = st.call(main, timeout=120)
    assert got["refused"][0] == 503 and "at most 2" in got["refused"][1]
    for status, retry, error in got["answers"]:  # a performer is refused by the cap as well
        assert status == 503 and int(retry) > 0 and "too many peers" in error
    assert st.call(lambda s: len(s.peers)) == 0

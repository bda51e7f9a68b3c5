"""Browser tests: Debian's Chromium through Playwright, the real server, pipeline and demo bundle.

Run them inside a loopback-only network namespace (`make test` does):
`unshare -n sh -c 'ip link set lo up && .venv/bin/python -m pytest tests/e2e -q'`.
The fake camera is a Y4M file made here from a real clip, or from the built-in performer when the
footage is absent (never stored in the repository).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import pytest

from footage import DANCER_A


def make_y4m(clip: Path, out: Path, fps: int = 15, width: int = 320, seconds: float = 10.0) -> Path:
    """A Y4M camera file (C420, whole-number fps) from a real clip; Chromium loops it."""
    with av.open(str(clip)) as src:
        vs = src.streams.video[0]
        height = round(vs.height * width / vs.width / 2) * 2
        with av.open(str(out), "w", format="yuv4mpegpipe") as dst:
            st = dst.add_stream("wrapped_avframe", rate=fps)
            st.width, st.height, st.pix_fmt = width, height, "yuv420p"
            for i, frame in enumerate(src.decode(vs)):
                if i >= seconds * fps:
                    break
                f = frame.reformat(width, height, "yuv420p")
                f.pts, f.time_base = i, Fraction(1, fps)
                for packet in st.encode(f):
                    dst.mux(packet)
            for packet in st.encode(None):
                dst.mux(packet)
    return out


@pytest.fixture(scope="session")
def camera_y4m(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real dancer when ../shared/data is there, else the built-in performer (MediaPipe finds
    it too): the browser tests need a camera, not footage."""
    folder = tmp_path_factory.mktemp("camera")
    clip = DANCER_A
    if not clip.is_file():
        from dancenow.realtime.transfer import write_demo_performer

        clip = write_demo_performer(folder / "demo.mp4", seconds=10.0, fps=15.0, size=(360, 270))
    return make_y4m(clip, folder / "camera.y4m")

"""Browser tests: Debian's Chromium through Playwright, the real server, pipeline and demo bundle.

Run them inside a loopback-only network namespace (`make test` does):
`unshare -n sh -c 'ip link set lo up && .venv/bin/python -m pytest tests/e2e -q'`.
The fake camera is a Y4M file made here from a real clip, or from the built-in performer when the
footage is absent (never stored in the repository).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from footage import DANCER_A
from partial_clips import make_y4m


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

"""Shared test fixtures: real footage from ../shared/data, markers that skip with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
CLIPS = SHARED_DATA / "clips"
STILLS = SHARED_DATA / "stills"
DANCER_A = CLIPS / "dancer_a_yellow_top_full_body.mp4"
STREET = CLIPS / "street_multi_person_hard_case.mp4"
NO_DATA = f"real footage not found at {SHARED_DATA} (a clone without ../shared/data): skipping"


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_data = pytest.mark.skip(reason=NO_DATA) if not CLIPS.is_dir() else None
    skip_browser = None
    if chromium_path() is None:
        skip_browser = pytest.mark.skip(reason="Debian's chromium is not installed (apt-get install chromium)")
    else:
        try:
            import playwright  # noqa: F401
        except ImportError:
            skip_browser = pytest.mark.skip(reason="the playwright package is not installed (pip install -e .[dev])")
    skip_gpu = pytest.mark.skip(reason="needs an NVIDIA GPU with TensorRT; the project's machines have none")
    try:
        import tensorrt  # noqa: F401
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    for item in items:
        if skip_data and "data" in item.keywords:
            item.add_marker(skip_data)
        if skip_browser and "browser" in item.keywords:
            item.add_marker(skip_browser)
        if not has_gpu and "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def dancer_a() -> Path:
    if not DANCER_A.is_file():
        pytest.skip(NO_DATA)
    return DANCER_A


@pytest.fixture(scope="session")
def clips() -> list[Path]:
    if not CLIPS.is_dir():
        pytest.skip(NO_DATA)
    return sorted(CLIPS.glob("*.mp4"))


@pytest.fixture(scope="session")
def demo_bundle() -> Path:
    """The built-in demo target's bundle (exported from its committed checkpoint on first use, cached);
    DANCENOW_TEST_BUNDLE=path runs these tests against another bundle."""
    import os

    from dancenow.demo import assets

    if os.environ.get("DANCENOW_TEST_BUNDLE"):
        return Path(os.environ["DANCENOW_TEST_BUNDLE"])
    if not assets.DEMO_CHECKPOINT.is_file():
        pytest.skip(f"the demo checkpoint {assets.DEMO_CHECKPOINT} is not there yet")
    from dancenow.export.exporter import ensure_bundle

    return ensure_bundle(assets.DEMO_CHECKPOINT, assets.demo_bundle_dir())

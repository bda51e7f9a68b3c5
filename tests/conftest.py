"""Shared test fixtures: real footage from ../shared/data, markers that skip with a reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from footage import CLIPS, DANCER_A, NO_DATA, REPO, SHARED_DATA, STILLS, STREET  # noqa: F401


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


def _demo_bundle() -> Path | None:
    """DANCENOW_TEST_BUNDLE, else the built-in demo target's bundle (exported from its committed
    checkpoint on first use, cached); None while that checkpoint does not exist."""
    import os

    from dancenow.demo import assets

    if os.environ.get("DANCENOW_TEST_BUNDLE"):
        return Path(os.environ["DANCENOW_TEST_BUNDLE"])
    if not assets.DEMO_CHECKPOINT.is_file():
        return None
    from dancenow.export.bundle_cache import ensure_bundle

    return ensure_bundle(assets.DEMO_CHECKPOINT, assets.demo_bundle_dir())


@pytest.fixture(scope="session")
def demo_bundle() -> Path:
    """The trained demo target's bundle (tests that need a likeness: a person in the output)."""
    bundle = _demo_bundle()
    if bundle is None:
        pytest.skip("the demo checkpoint demo/assets/demo_checkpoint.pt is not there yet")
    return bundle


@pytest.fixture(scope="session")
def live_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle to stream: the demo one when its checkpoint exists, else one exported (fp32 ONNX)
    from an untrained cpu-realtime generator: same graph, size and speed, no likeness."""
    bundle = _demo_bundle()
    if bundle is not None:
        return bundle
    import torch

    from dancenow.export.exporter import ExportConfig, export
    from dancenow.realtime.pose.renderer import RenderConfig
    from dancenow.training.checkpoint import save_checkpoint
    from dancenow.training.networks import Generator
    from dancenow.training.profiles import cpu_realtime

    profile = cpu_realtime()
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("untrained")
    save_checkpoint(root / "checkpoint.pt", {
        "name": "untrained", "profile": profile.name, "resolution": list(profile.size),
        "generator_config": profile.generator.to_dict(), "generator": Generator(profile.generator).state_dict(),
        "plate": torch.full((*profile.size, 3), 128, dtype=torch.uint8),
        "renderer": RenderConfig().to_dict(), "pose_stats": None, "step": 0, "face_step": 0, "summary": {}})
    export(root / "checkpoint.pt", root / "bundle", ExportConfig(formats=("onnx",), calib_samples=2, parity_samples=2))
    return root / "bundle"

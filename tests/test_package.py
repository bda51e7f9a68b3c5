"""The package installs as one `dancenow` namespace, from a wheel and from the editable install."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_editable_install_imports_every_package() -> None:
    import dancenow.demo
    import dancenow.engines
    import dancenow.export
    import dancenow.realtime
    import dancenow.realtime.pose
    import dancenow.training  # noqa: F401

    assert Path(dancenow.realtime.__file__).resolve().parent == REPO / "realtime"


def test_cli_is_lazy() -> None:
    """`dancenow --help` must not load the trainer, torch or the server."""
    code = (
        "import sys; from dancenow import cli; p = cli.build_parser(); "
        "bad = [m for m in ('torch', 'dancenow.training.trainer', 'aiortc') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_wheel_installs_under_one_namespace(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(wheel_dir), str(REPO)], check=True)
    wheels = list(wheel_dir.glob("dancenow-*.whl"))
    assert len(wheels) == 1
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([py, "-m", "pip", "install", "-q", "--no-deps", str(wheels[0])], check=True)
    # find_spec locates each subpackage without running it (the wheel went in without its dependencies).
    names = ["realtime", "engines", "export", "training", "demo"]
    code = ("import importlib.util as u; "
            f"print('\\n'.join(u.find_spec('dancenow.' + n).origin for n in {names!r}))")
    r = subprocess.run([py, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    for name, origin in zip(names, r.stdout.split(), strict=True):
        assert f"site-packages/dancenow/{name}/__init__.py" in origin, origin
    site = next((env_dir / "lib").glob("python*/site-packages"))
    ours = {p.name for p in site.iterdir() if not p.name.startswith(("pip", "_", "setuptools", "pkg_resources", "distutils"))}
    assert ours == {"dancenow", wheels[0].name.split("-")[0] + "-0.1.0.dist-info"}, ours
    # The data the package needs at run time went in with it: the web pages and the demo target.
    pkg = site / "dancenow"
    for data in ("realtime/serve/web/index.html", "realtime/serve/web/perform.html", "realtime/serve/web/shell.html",
                 "realtime/serve/web/rtc.js", "realtime/serve/web/style.css", "demo/assets/demo_checkpoint.pt"):
        assert (pkg / data).is_file(), f"{data} is missing from the wheel"

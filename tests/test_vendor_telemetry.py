"""OpenVINO and NNCF report usage to Google Analytics at import unless declined, each report a
process forked from a thread pool (a full test run once froze on one: the child hung freeing a
thread's PyAV reformatter, and the fork stopped OpenBLAS's threads under the main thread's matrix
product). Importing dancenow declines it for the process. Run in fresh processes with their own
HOME, where the reports keep their client id; nothing is sent by either run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# asks the consent check the reports ask, without importing OpenVINO (which would report)
ASK = """
import json
from openvino_telemetry.utils.opt_in_checker import OptInChecker
print(json.dumps({"consent": OptInChecker().check(False, True).name}))
"""

# our import, then OpenVINO's converter on a one-node model and NNCF: what reported before
CONVERT = """
import json, multiprocessing, sys
from pathlib import Path
import dancenow
import nncf
import onnx
import openvino as ov
from onnx import TensorProto, helper
x, y = (helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in "xy")
graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
path = Path(sys.argv[1]) / "relu.onnx"
onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
ov.convert_model(str(path))
from openvino_telemetry import Telemetry
print(json.dumps({"consent": Telemetry().consent, "children": len(multiprocessing.active_children())}))
"""


def _run(code: str, home: Path) -> dict:
    home.mkdir()
    env = {**os.environ, "HOME": str(home)}
    env.pop("CI", None)  # the reports skip CI jobs: ask as a user's machine would
    out = subprocess.run([sys.executable, "-c", code, str(home)], env=env, capture_output=True, text=True,
                         timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_importing_dancenow_declines_openvinos_usage_reports(tmp_path: Path) -> None:
    stock = _run(ASK, tmp_path / "stock")
    if stock["consent"] not in ("NO_FILE", "ACCEPTED"):
        pytest.skip(f"this OpenVINO's telemetry would not report here ({stock['consent']}): nothing to decline")
    home = tmp_path / "ours"
    ours = _run(CONVERT, home)
    assert ours == {"consent": False, "children": 0}, ours
    assert not (home / "intel").exists(), sorted(p.name for p in (home / "intel").iterdir())  # no client id made

"""EDN's ablation: does temporal smoothing help, and does the face stage help?

Three targets from the same data, at equal steps and seed: (a) the plain pix2pixHD generator
(single frames, black previous frame), (b) with temporal smoothing, (c) temporal smoothing plus
the face stage. (c)'s generator stage is (b)'s: the trainer trains the face net after the
generator with the generator frozen, so (c) resumes from a copy of (b)'s checkpoint rather than
training the same generator twice; the two then differ only by the face stage. Each is scored by
`evaluate` on the held-out frames, and one table in EDN's layout compares them.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from dancenow.files import write_atomic
from dancenow.training.checkpoint import CHECKPOINT_NAME
from dancenow.training.evaluate import ROW_NAMES, TABLE_HEADER, EvalConfig, evaluate, table_row
from dancenow.training.profiles import Profile
from dancenow.training.trainer import train

log = logging.getLogger(__name__)

VARIANTS: dict[str, dict[str, bool]] = {
    "plain": {"temporal": False, "face": False},
    "temporal": {"temporal": True, "face": False},
    "temporal+face": {"temporal": True, "face": True},
}
REPORT_NAME = "ablation.json"


def run_ablation(data_dir: str | os.PathLike, out: str | os.PathLike, steps: int | None = None,
                 face_steps: int | None = None, profile: str | Profile = "cpu-realtime", seed: int = 0,
                 *, progress: bool = True, config: EvalConfig | None = None) -> dict:
    """Train and evaluate the three variants under `out` (each in its own run folder; finished
    runs are resumed, not retrained) and return {"variants": {name: report}, ...}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    reports = {}
    for name, kw in VARIANTS.items():
        run = out / name.replace("+", "_")
        if name == "temporal+face" and not (run / CHECKPOINT_NAME).is_file():
            run.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / "temporal" / CHECKPOINT_NAME, run / CHECKPOINT_NAME)
        log.info("ablation: training %s in %s", name, run)
        train(data_dir, run, profile=profile, steps=steps, face_steps=face_steps, seed=seed, progress=progress, **kw)
        reports[name] = evaluate(run, data_dir, run / "eval", config=config)
    result = {"data_dir": str(data_dir), "profile": profile if isinstance(profile, str) else profile.name,
              "steps": steps, "face_steps": face_steps, "seed": seed, "variants": reports}
    write_atomic(out / REPORT_NAME, json.dumps(result, indent=1).encode())
    return result


def format_table(result: dict) -> str:
    """The variants, then the baselines and the real frames (from the first variant's report)."""
    variants = result["variants"]
    first = next(iter(variants.values()))
    lines = [f"ablation on {first['heldout_frames']} held-out frames of {result['data_dir']} "
             f"({first['resolution'][0]}x{first['resolution'][1]}, {result['profile']}, "
             f"steps {result['steps']}, face steps {result['face_steps']}, seed {result['seed']})", TABLE_HEADER]
    lines += [table_row(name, r["methods"]["generated"]) for name, r in variants.items()]
    lines += [table_row(ROW_NAMES[k], first["methods"][k]) for k in ("nearest", "mean_frame", "real")]
    return "\n".join(lines)

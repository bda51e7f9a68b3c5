"""Where the real footage lives (../shared/data); one module so no test imports a conftest."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
CLIPS = SHARED_DATA / "clips"
STILLS = SHARED_DATA / "stills"
DANCER_A = CLIPS / "dancer_a_yellow_top_full_body.mp4"
STREET = CLIPS / "street_multi_person_hard_case.mp4"
NO_DATA = f"real footage not found at {SHARED_DATA} (a clone without ../shared/data): skipping"

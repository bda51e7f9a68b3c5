"""Where the real footage lives (../shared/data); one module so no test imports a conftest.

DANCENOW_SHARED_DATA points elsewhere: `DANCENOW_SHARED_DATA=/nonexistent make test` runs the suite
as a clone without the footage would (the footage-free tests run, the others skip saying why)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("DANCENOW_SHARED_DATA") or REPO.parent / "shared" / "data")
CLIPS = SHARED_DATA / "clips"
STILLS = SHARED_DATA / "stills"
DANCER_A = CLIPS / "dancer_a_yellow_top_full_body.mp4"
STREET = CLIPS / "street_multi_person_hard_case.mp4"
NO_DATA = f"real footage not found at {SHARED_DATA} (a clone without ../shared/data): skipping"

"""Parity figures between two backends' outputs (float frames in [-1, 1])."""

from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio

DATA_RANGE = 2.0  # outputs are tanh, in [-1, 1]
PSNR_CAP = 120.0  # reported for identical outputs (JSON has no infinity)


def parity(reference: list[np.ndarray], test: list[np.ndarray]) -> dict:
    """Max absolute error and PSNR (dB over all samples, PSNR_CAP when identical) of `test` against `reference`."""
    ref = np.concatenate([np.asarray(r, np.float32).ravel() for r in reference])
    out = np.concatenate([np.asarray(t, np.float32).ravel() for t in test])
    max_abs = float(np.max(np.abs(ref - out))) if ref.size else 0.0
    psnr = float(peak_signal_noise_ratio(ref, out, data_range=DATA_RANGE)) if max_abs > 0 else PSNR_CAP
    return {"max_abs": max_abs, "psnr_db": round(min(psnr, PSNR_CAP), 2), "samples": len(reference)}


def run_onnx(session, feeds: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    name = session.get_outputs()[0].name
    return [session.run([name], f)[0] for f in feeds]

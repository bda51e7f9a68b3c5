"""What CPU this is: benchmarks print it, and the engine choice is remembered per CPU.

The project's machines differ from session to session (an AVX2-only EPYC, a Xeon with AVX-512,
VNNI, BF16 and AMX), and figures from one are meaningless on the other without this.
"""

from __future__ import annotations

import os
import platform
from functools import lru_cache

# the instruction-set flags that change which kernels the inference runtimes pick
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")
# oneDNN ISA caps under which bf16 still compiles (measured with OpenVINO: AVX512_CORE, _VNNI,
# _BF16, _AMX and ALL compile; AVX2 fails with "object is not initialized")
BF16_CAPS = ("AVX512", "AVX10", "ALL")


def bf16_cap() -> str | None:
    """The ONEDNN_MAX_CPU_ISA cap when it rules bf16 out (an AVX-512 host made to show the AVX2
    picture must also choose what an AVX2 host chooses), else None."""
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or "").upper()
    return cap if cap and not cap.startswith(BF16_CAPS) else None


@lru_cache(maxsize=1)
def cpu_info() -> dict:
    """{"model", "cores", "flags": [...the ISA_FLAGS present...], "bf16": bool, "bf16_usable": bool,
    "isa_cap": ...}. bf16: the CPU has it; bf16_usable: and no ISA cap rules it out."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.machine(), platform.processor()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    present = [f for f in ISA_FLAGS if f in flags]
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return {
        "model": model,
        "cores": os.cpu_count() or 1,
        "flags": present,
        "bf16": bf16,
        "bf16_usable": bf16 and bf16_cap() is None,
        # oneDNN (OpenVINO, PyTorch) honours this cap: an AVX-512 host then shows the AVX2 picture
        "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
    }


def describe_cpu() -> str:
    """One line for a benchmark's header."""
    c = cpu_info()
    cap = f", capped at {c['isa_cap']}" if c["isa_cap"] else ""
    return f"{c['model']}, {c['cores']} cores, flags {' '.join(c['flags']) or 'none of ' + '/'.join(ISA_FLAGS)}{cap}"

"""What every benchmark prints about the machine: the CPU model, its cores and the SIMD level
the Rust kernels use."""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_info() -> str:
    """The CPU model, its logical CPUs and the SIMD level used (``HYBRIDRS_SIMD`` caps it)."""
    from hybridrs import _core

    return f"{cpu_model()}, {os.cpu_count()} logical CPUs, SIMD level {_core.simd_level()}"

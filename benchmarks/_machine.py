"""What the benchmark scripts record about the machine they ran on (shared by all of them)."""

from __future__ import annotations

import contextlib
import os
import platform
from typing import Any

import numpy as np


def machine_info(**versions: Any) -> dict[str, Any]:
    """CPU, core count, load, platform and versions, for the header of a benchmark report.

    Parameters
    ----------
    **versions
        Further entries, e.g. ``flowkit=flowkit.__version__``, appended in order.

    Returns
    -------
    dict
        JSON-safe description of the machine.
    """
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:
        nproc = os.cpu_count() or 0
    # other work on the machine skews timings; say how busy it was
    load = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    return {
        "nproc": nproc,
        "cpu": cpu,
        "loadavg_1min": load,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        **versions,
    }

"""Machine facts recorded with every benchmark result."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch


def machine_facts() -> str:
    """CPU model, core count, library versions and torch's thread count, in one line."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, numpy {np.__version__}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")

"""Machine facts, commit and the results file every benchmark records into."""

from __future__ import annotations

import os
import platform
import subprocess
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


RESULTS = Path(__file__).with_name("RESULTS.md")


def git_commit() -> str:
    """The checkout's short commit, or 'unknown' outside a git checkout."""
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=RESULTS.parent, capture_output=True, text=True)
    return done.stdout.strip() or "unknown"


def append_results(block: str) -> None:
    """Append one Markdown block, separated by a blank line, to benchmarks/RESULTS.md."""
    with RESULTS.open("a", encoding="utf-8") as stream:
        stream.write("\n" + block.strip("\n") + "\n")

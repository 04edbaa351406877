"""Where merc-bench keeps what it may reuse between runs."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """The one cache folder (teachers, seeds, text embeddings): ``$MERC_BENCH_CACHE``, else
    ``$XDG_CACHE_HOME/merc-bench``, else ``~/.cache/merc-bench``."""
    if os.environ.get("MERC_BENCH_CACHE"):
        return Path(os.environ["MERC_BENCH_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "merc-bench"

"""How much memory this process may still take, and sizes as people write them ("8G").

One answer for every guard that must stop before allocating — the pickle loader's budget
(:mod:`merc_bench.safe_pickle`), the ``.npy``/``.npz`` reader's (:mod:`merc_bench.safe_arrays`) and
the training-size check (:mod:`merc_bench.sizing`): the machine's available memory (psutil), or
less when an address-space limit (``RLIMIT_AS``, e.g. a test's or a batch system's cap) leaves less
room above what the process already maps. No torch import here: the loaders stay light.
"""

from __future__ import annotations

import math
import re

try:
    import resource
except ImportError:  # not on every platform; then only the machine's memory counts
    resource = None

from merc_bench.errors import UserError

__all__ = ["available_memory", "parse_size", "format_size"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)(?:i?b)?\s*", re.IGNORECASE)


def available_memory() -> int:
    """Bytes this process can still allocate: the smaller of available RAM and its address-space room."""
    import psutil

    limits = [int(psutil.virtual_memory().available)]
    if resource is not None:
        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(max(soft - _mapped_bytes(), 0))
    return min(limits)


def _mapped_bytes() -> int:
    """The process's current virtual size (what ``RLIMIT_AS`` counts), 0 where /proc is missing."""
    try:
        with open("/proc/self/status") as stream:
            return next((int(line.split()[1]) * 1024 for line in stream if line.startswith("VmSize:")), 0)
    except (OSError, ValueError, IndexError):
        return 0


def parse_size(text: str, *, where: str, minimum: int = 1 << 20) -> int:
    """Bytes from ``"8G"``, ``"512M"``, ``"1.5GiB"``, ``"64gb"`` or a plain byte count (binary units).

    ``where`` names the option or variable in the error; sizes below ``minimum`` are refused.
    """
    match = _SIZE.fullmatch(str(text))
    value = float(match.group(1)) * _UNITS[match.group(2).lower()] if match else 0.0
    if not match or not math.isfinite(value) or value < minimum:
        shown = str(text) if len(str(text)) <= 40 else str(text)[:37] + "..."
        raise UserError(f"{where} {shown!r} is not a memory size of at least {format_size(minimum)}: use a number "
                        "with an optional unit K, M, G or T (binary, e.g. 8G = 8 GiB; GB and GiB are read the same).")
    return int(value)


def format_size(size: float) -> str:
    """Bytes as GiB with two decimals (MiB below 1 GiB)."""
    return f"{size / 2**30:,.2f} GiB" if size >= 2**30 else f"{size / 2**20:,.1f} MiB"

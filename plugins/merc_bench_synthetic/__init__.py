"""The ``synthetic`` dataset: seeded MELD- or IEMOCAP-shaped conversations with planted structure.

Registered through merc-bench's public plugin hook, like any third-party dataset. See
:mod:`merc_bench_synthetic.dataset` for the generative process.
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_synthetic import dataset
from merc_bench_synthetic.dataset import SyntheticConfig, SyntheticDataset

__all__ = ["SyntheticConfig", "SyntheticDataset", "merc_bench_register"]


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(dataset)

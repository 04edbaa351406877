"""merc-bench: Multimodal Emotion Recognition in Conversations, one core, components as plugins.

The public API, for notebooks and scripts (see README, "From Python") and for plugin authors
(see CONTRIBUTING). Everything but ``hookimpl``, ``UserError`` and ``__version__`` is imported on
first use (PEP 562), so ``import merc_bench`` and ``merc-bench --help`` do not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from merc_bench.errors import UserError
from merc_bench.hookspecs import hookimpl

__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    # running things
    "run": "merc_bench.api", "compare": "merc_bench.api", "ablate": "merc_bench.api",
    "tune": "merc_bench.api", "load_results": "merc_bench.api", "predict": "merc_bench.api",
    "Comparison": "merc_bench.api", "Ablation": "merc_bench.api", "Study": "merc_bench.api",
    "LoadedResults": "merc_bench.api", "RunResult": "merc_bench.pipeline",
    # data
    "Batch": "merc_bench.data", "Corpus": "merc_bench.data", "DatasetInfo": "merc_bench.data",
    "Dialogue": "merc_bench.data",
    # writing plugins
    "component": "merc_bench.registry", "BuildContext": "merc_bench.registry",
    "Recipe": "merc_bench.recipes", "AblationGrid": "merc_bench.ablation",
    "MixerOutput": "merc_bench.model", "FuserOutput": "merc_bench.model", "ModelOutput": "merc_bench.model",
    "get_registry": "merc_bench.plugins",
}

__all__ = ["hookimpl", "UserError", "__version__", "PUBLIC_MODULES", *_LAZY]

#: The modules a plugin may import: this package's top-level names (``__all__``) and these modules,
#: nothing else of the core and no other plugin (docs/architecture.md, "Layers"; a test scans every
#: plugin's imports, function-level ones included).
PUBLIC_MODULES = (
    "merc_bench",  # hookimpl, component, BuildContext, Recipe, the data and output types, UserError, ...
    "merc_bench.layers",  # building blocks several papers share: masked attention, gated fusion, positions, graphs
    "merc_bench.losses",  # masked cross-entropy and KL divergence
    "merc_bench.class_weights",  # published class weights (dataset facts)
    "merc_bench.data",  # Dialogue, Corpus, DatasetInfo, Batch, collate, MODALITIES
    "merc_bench.errors",  # UserError and the helpers that quote user input in messages
    "merc_bench.testing",  # the contract-test kit
    # for dataset plugins: hostile input read safely, within memory bounds
    "merc_bench.safe_pickle", "merc_bench.safe_arrays", "merc_bench.feature_store",
    "merc_bench.prepare",  # text encoders and the embedding cache (features from text)
    "merc_bench.media", "merc_bench.media_features",  # decoding media with ffmpeg; audio/visual features, cached
    "merc_bench.data_sources",  # what `data prepare` / `data convert` sources declare (PreparableDataset, FeatureFormat)
)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'merc_bench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

"""merc-bench: Multimodal Emotion Recognition in Conversations, one core, components as plugins."""

from merc_bench.hookspecs import hookimpl
from merc_bench.data import Batch, Corpus, DatasetInfo, Dialogue
from merc_bench.errors import UserError
from merc_bench.recipes import Recipe
from merc_bench.plugins import get_registry

__version__ = "0.1.0"

__all__ = ["hookimpl", "Batch", "Corpus", "DatasetInfo", "Dialogue", "Recipe", "UserError", "get_registry", "__version__"]

"""Typed run configuration and ``--set key=value`` overrides.

A run is described by one :class:`RunConfig`: which dataset and components (each a
:class:`ComponentChoice` of a registered name plus that component's own options), the model-wide
sizes, and the training settings. A recipe supplies the defaults for a dataset family; ``--set``
changes them; the registry's pydantic configs validate every component's options, so a typo is an
error instead of a silently ignored key.
"""

from __future__ import annotations

import copy
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from merc_bench.errors import UserError, preview, unknown_name_message

__all__ = [
    "ComponentChoice",
    "ModelConfig",
    "TrainingConfig",
    "RunConfig",
    "COMPONENT_SLOTS",
    "parse_override",
    "apply_overrides",
    "apply_flags",
    "deep_merge",
]

#: The component slots of a run, in data-flow order.
COMPONENT_SLOTS = ("dataset", "encoder", "mixer", "fuser", "distiller")

#: The largest seed: the trainer also seeds numpy's global generator, which takes at most 2**32 - 1.
MAX_SEED = 2**32 - 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ComponentChoice(_Strict):
    """A registered component's name and its options (validated by that component's config)."""

    name: str
    config: dict[str, Any] = Field(default_factory=dict)


class ModelConfig(_Strict):
    """Model-wide settings every component shares."""

    hidden_size: int = Field(1024, gt=0, le=65536, description="H: size of every encoder, mixer and fuser output")
    head_dropout: float = Field(0.5, ge=0.0, lt=1.0, description="dropout before each per-modality head")
    modality_heads: bool = Field(True, description="add one classifier per modality (SDT's unimodal heads)")
    prediction: Literal["fused", "modality_average"] = Field(
        "fused",
        description="predict from the fused representation's head, or average the modality heads' "
        "probabilities (late fusion; needs modality_heads)",
    )


class TrainingConfig(_Strict):
    """Optimiser, schedule and selection settings."""

    # Bounds: a learning rate above 10 or a weight decay above 10 only ever diverges; the size limits
    # are far above any published setting and keep a typo from asking for an absurd run.
    lr: float = Field(1e-4, gt=0, le=10, allow_inf_nan=False)
    weight_decay: float = Field(1e-5, ge=0, le=10, allow_inf_nan=False,
                                description="Adam's coupled L2 weight decay, as in SDT")
    batch_size: int = Field(16, gt=0, le=100_000, description="dialogues per batch")
    epochs: int = Field(10, gt=0, le=100_000)
    class_weights: Literal["none", "inverse_frequency"] | list[Annotated[float, Field(
        ge=0, le=1e6, allow_inf_nan=False)]] = Field(
        "none", max_length=10_000,
        description="weights of the cross-entropy terms: none, 1/train class frequency, or explicit"
    )
    seed: int = Field(0, ge=0, le=MAX_SEED, description="first seed; --seeds N uses seed, seed+1, ...")
    selection_metric: Literal["weighted_f1", "accuracy", "macro_f1"] = "weighted_f1"
    precision: Literal["fp32", "bf16"] = Field("fp32", description="bf16 autocast with fp32 weights (CUDA, or a CPU "
                                               "with native bf16: avx512_bf16/amx_bf16)")
    compile: bool = Field(
        False,
        description="torch.compile the model for training steps (dynamic shapes): fewer, fused kernels for "
        "launch-bound GPU runs, at the price of compiling first; evaluation stays eager",
    )
    save_checkpoint: bool = Field(True, description="write the selected epoch's weights to the output folder")
    standardize_features: bool = Field(
        False, description="z-score every feature dimension with the train split's mean and std (all splits)"
    )


class RunConfig(_Strict):
    """Everything that determines a run's result (plus where it runs)."""

    recipe: str
    dataset: ComponentChoice
    modalities: list[Annotated[str, Field(max_length=100)]] | None = Field(
        None, max_length=100, description="None: all of the dataset's modalities")
    encoder: ComponentChoice
    mixer: ComponentChoice
    fuser: ComponentChoice
    distiller: ComponentChoice
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    protocol: Literal["clean", "paper", "holdout"] = "clean"
    seeds: int = Field(1, gt=0, le=10_000)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _seeds_in_range(self) -> RunConfig:
        last = self.training.seed + self.seeds - 1
        if last > MAX_SEED:
            raise ValueError(f"seeds {self.training.seed}…{last} go past the largest seed {MAX_SEED} (2**32 - 1); "
                             "lower training.seed or --seeds")
        return self

    def cache_description(self) -> dict[str, Any]:
        """The configuration as JSON without what only labels a run or chooses what is written.

        The seed and teacher caches key on this: the recipe's name, the number of seeds, the first
        seed of a range (each cached seed is keyed by its own seed, so ``--set training.seed=3
        --seeds 2`` reuses seeds 3 and 4 of an earlier ``--seeds 5``) and checkpoint writing do not
        change what a seed learns.
        """
        described = self.model_dump(mode="json")
        for name in ("recipe", "seeds"):
            described.pop(name)
        for name in ("seed", "save_checkpoint"):
            described["training"].pop(name)
        return described


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``base`` with ``update`` merged in recursively (dicts merge, other values replace)."""
    merged = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``key.path=value``; the value is read as JSON when it parses (numbers, booleans, lists).

    Anything else stays a string, including JSON that Python refuses to read (nested too deeply for
    the parser, an integer of more than 4300 digits): the typed field then rejects it by name.
    """
    if "=" not in text:
        raise UserError(f"--set {preview(text)} is not of the form key=value (for example --set training.lr=1e-4).")
    key, raw = text.split("=", 1)
    path = [part for part in key.strip().split(".") if part]
    if not path:
        raise UserError(f"--set {preview(text)} has an empty key.")
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError; so is the int digit limit
        value = raw
    return path, value


def apply_flags(config: dict[str, Any], flags: dict[str, Any]) -> dict[str, Any]:
    """Set explicit command-line flags (``{"training.epochs": 3, "seeds": None, ...}``); None means unset."""
    config = copy.deepcopy(config)
    for key, value in flags.items():
        if value is None:
            continue
        section, _, field = key.rpartition(".")
        (config.setdefault(section, {}) if section else config)[field] = value
    return config


def apply_overrides(config: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a run-config dict.

    ``mixer=bigru`` swaps a component (its options reset to the new component's defaults);
    ``mixer.heads=4`` sets one option; ``training.lr=1e-4`` and ``model.hidden_size=256`` set typed
    fields (validated when the :class:`RunConfig` is built).
    """
    config = copy.deepcopy(config)
    for text in overrides:
        path, value = parse_override(text)
        head = path[0]
        if head not in RunConfig.model_fields:
            raise UserError(f"--set {preview(text)}: " + unknown_name_message("setting", head, RunConfig.model_fields))
        if head in COMPONENT_SLOTS:
            choice = config.setdefault(head, {"name": "", "config": {}})
            if len(path) == 1:
                if not isinstance(value, str):
                    raise UserError(f"--set {preview(text)}: a component is chosen by name, got {preview(value)}.")
                if value != choice.get("name"):
                    config[head] = {"name": value, "config": {}}
                continue
            _set_path(choice.setdefault("config", {}), path[1:], value, text)
            continue
        if head == "modalities" and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        _set_path(config, path, value, text)
    return config


def _set_path(target: dict[str, Any], path: list[str], value: Any, text: str) -> None:
    """``target[path[0]]...[path[-1]] = value``, making groups on the way; a value is not a group."""
    for part in path[:-1]:
        if not isinstance(target.setdefault(part, {}), dict):
            raise UserError(f"--set {preview(text)}: {preview(part)} is a value, not a group of settings.")
        target = target[part]
    target[path[-1]] = value

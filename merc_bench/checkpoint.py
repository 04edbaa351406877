"""Self-describing checkpoints: the selected weights with everything needed to predict with them.

A run folder's ``checkpoint-seed{S}.pt`` holds, beside the weights of the epoch the protocol
selected, what a model cannot be used without: the resolved run configuration, the dataset facts
the model was built for (classes in index order, the modalities it reads and their sizes, the
number of speaker slots), the per-dimension standardisation statistics when the run standardised
its features (``training.standardize_features``; computed on train only), where the features came
from (the corpus fingerprint and the feature folder's provenance: text encoder, its version, a
fine-tuning report) and the code that trained it (merc-bench's and every component plugin's
distribution, version and source digest, :func:`merc_bench.code_fingerprint.code_parts`).

The file is read with ``torch.load(weights_only=True)`` — PyTorch's restricted unpickler, which
builds tensors and plain containers only — and everything else is stored as one JSON string, so a
checkpoint from a stranger's drive can neither run code nor smuggle in objects; its header is then
validated field by field. :func:`load_checkpoint` refuses, each with one paragraph naming the file:
a file that is not a merc-bench checkpoint (a bare ``state_dict`` of merc-bench < 0.2 included), an
unknown format version, a configuration this installation cannot build (a component no plugin
registers), and weights that do not fit the model the configuration builds (a plugin changed its
architecture). Code that changed since the checkpoint was written is reported, not refused: the
weights still fit, and :func:`code_changes` says what differs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
import torch
from pydantic import BaseModel, ConfigDict, Field

from merc_bench.code_fingerprint import changed_parts, code_parts
from merc_bench.config import RunConfig
from merc_bench.data import DatasetInfo
from merc_bench.errors import UserError
from merc_bench.registry import Registry, describe_validation_error
from merc_bench.report import atomic_write

__all__ = ["CHECKPOINT_FORMAT", "Checkpoint", "build_checkpoint", "save_checkpoint", "load_checkpoint",
           "find_checkpoint", "code_changes", "with_config", "build_model_from"]

CHECKPOINT_FORMAT = "merc-bench checkpoint"
_VERSION = 1
#: Larger files are refused before anything is read (a 465 M-parameter SUMMER is 1.9 GB in fp32).
_MAX_BYTES = 8 << 30


class _DatasetFacts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=1000)
    family: str = Field(max_length=100)
    classes: list[str] = Field(min_length=2, max_length=1000)
    feature_dims: dict[str, int]  # every modality of the training data, modality -> D_m
    modalities: list[str] = Field(min_length=1)  # the ones the model reads
    num_speakers: int = Field(ge=1, le=100_000)
    fingerprint: str = Field(max_length=100)


class _Header(BaseModel):
    """Everything but the weights, as stored in the checkpoint's ``header`` JSON string."""

    model_config = ConfigDict(extra="forbid")

    format: str
    format_version: int
    seed: int
    selected_epoch: int
    dev: dict[str, Any]
    config: dict[str, Any]
    dataset: _DatasetFacts
    standardized: list[str]  # modalities whose statistics are in the payload's ``scales``
    features: dict[str, Any]  # the training corpus's provenance (feature folder, text encoder, ...)
    code: dict[str, dict[str, str]]
    merc_bench_version: str


@dataclass
class Checkpoint:
    """A loaded checkpoint: the configuration and dataset facts, the weights, the statistics."""

    path: Path
    config: RunConfig
    info: DatasetInfo
    modalities: tuple[str, ...]
    state: dict[str, torch.Tensor]
    model: torch.nn.Module | None  # built from the configuration, the weights loaded, in eval mode
    #: modality -> (mean, std), float64 (D_m,), when the run standardised its features; else empty
    scales: dict[str, tuple[np.ndarray, np.ndarray]]
    header: dict[str, Any]

    @property
    def features(self) -> dict[str, Any]:
        """The provenance of the features the model trained on (``Corpus.provenance``)."""
        return self.header["features"]


def build_checkpoint(*, state: dict[str, torch.Tensor], config: RunConfig, info: DatasetInfo,
                     modalities: tuple[str, ...], scales: dict[str, tuple[np.ndarray, np.ndarray]] | None,
                     provenance: dict[str, Any], fingerprint: str, seed: int, selected_epoch: int,
                     dev: dict[str, Any], registry: Registry) -> dict[str, Any]:
    """What :func:`save_checkpoint` writes for one trained seed."""
    from merc_bench import __version__

    header = {
        "format": CHECKPOINT_FORMAT, "format_version": _VERSION, "seed": seed, "selected_epoch": selected_epoch,
        "dev": dev, "config": config.model_dump(mode="json"),
        "dataset": {"name": info.name, "family": info.family, "classes": list(info.classes),
                    "feature_dims": dict(info.feature_dims), "modalities": list(modalities),
                    "num_speakers": info.num_speakers, "fingerprint": fingerprint},
        "standardized": sorted(scales or {}),
        "features": json.loads(json.dumps(provenance, default=str)),
        "code": code_parts([config], registry),
        "merc_bench_version": __version__,
    }
    tensors = {f"{m}.{part}": torch.from_numpy(np.asarray(values, dtype=np.float64))
               for m, pair in (scales or {}).items() for part, values in zip(("mean", "std"), pair)}
    return {"header": json.dumps(header, default=_plain), "state": state, "scales": tensors}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (:func:`build_checkpoint`) to ``path`` atomically; ``path``."""
    atomic_write(path, lambda stream: torch.save(payload, stream))
    return path


def with_config(payload: dict[str, Any], config: RunConfig) -> dict[str, Any]:
    """``payload`` describing ``config`` instead (a cached seed reused under another display name)."""
    header = json.loads(payload["header"])
    header["config"] = config.model_dump(mode="json")
    return dict(payload, header=json.dumps(header, default=_plain))


def load_checkpoint(path: Path, registry: Registry) -> Checkpoint:
    """The checkpoint at ``path``, checked: a clear :class:`UserError` for anything unusable."""
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    payload = _read(path, where)
    try:
        header = _Header.model_validate(json.loads(payload["header"]))
    except (ValueError, TypeError, KeyError) as error:
        detail = describe_validation_error(error, where) if isinstance(error, pydantic.ValidationError) else str(error)
        raise UserError(f"{where} has an unreadable header ({detail}); it was not written by this merc-bench.") from None
    if header.format != CHECKPOINT_FORMAT or header.format_version != _VERSION:
        raise UserError(f"{where} is a {header.format!r} file of format version {header.format_version}; this "
                        f"merc-bench reads {CHECKPOINT_FORMAT!r} version {_VERSION}. Retrain, or use the merc-bench "
                        f"version that wrote it ({header.merc_bench_version}).")
    config = _config(header, where, registry)
    facts = header.dataset
    info = DatasetInfo(name=facts.name, family=facts.family, classes=tuple(facts.classes),
                       feature_dims=dict(facts.feature_dims), num_speakers=facts.num_speakers)
    checkpoint = Checkpoint(path=path, config=config, info=info, modalities=tuple(facts.modalities),
                            state=_state(payload, where), model=None, scales=_scales(payload, header, where),
                            header=header.model_dump())
    checkpoint.model = build_model_from(checkpoint, registry)  # the weights must fit that model
    return checkpoint


def build_model_from(checkpoint: Checkpoint, registry: Registry) -> torch.nn.Module:
    """The model ``checkpoint``'s configuration builds, with its weights loaded, in eval mode."""
    from merc_bench.model import build_model

    model, _ = build_model(checkpoint.config, checkpoint.info, registry)
    own = model.state_dict()
    missing = sorted(set(own) - set(checkpoint.state))
    unexpected = sorted(set(checkpoint.state) - set(own))
    misshapen = sorted(k for k in set(own) & set(checkpoint.state) if own[k].shape != checkpoint.state[k].shape)
    if missing or unexpected or misshapen:
        changes = code_changes(checkpoint, registry)
        parts = [f"{len(names)} {what} (first: {names[0]})" for what, names in
                 (("missing weight(s)", missing), ("unexpected weight(s)", unexpected),
                  ("weight(s) of another shape", misshapen)) if names]
        raise UserError(f"checkpoint {str(checkpoint.path)!r} does not fit the model its configuration builds "
                        f"with the installed components: {'; '.join(parts)}. "
                        + (f"The code changed since it was written: {'; '.join(changes)}. " if changes else "")
                        + "Install the versions that trained it, or retrain.")
    model.load_state_dict(checkpoint.state)
    return model.eval()


def code_changes(checkpoint: Checkpoint, registry: Registry) -> list[str]:
    """How the installed code differs from the code that trained ``checkpoint`` (empty: identical)."""
    return changed_parts(checkpoint.header["code"], code_parts([checkpoint.config], registry))


def find_checkpoint(source: Path, seed: int | None = None) -> Path:
    """The checkpoint file ``source`` names: the file itself, or a run folder's seed ``seed`` (default:
    its first seed that has one)."""
    source = Path(source)
    if source.is_file():
        return source
    results = source / "results.json"
    if not source.is_dir() or not results.is_file():
        raise UserError(f"{str(source)!r} is neither a checkpoint file nor a run folder (a folder holding "
                        "results.json and checkpoint-seed*.pt, as `merc-bench run` writes).")
    try:
        runs = json.loads(results.read_text(encoding="utf-8"))["runs"]
        available = {int(r["seed"]): r.get("checkpoint") for r in runs}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"run folder {str(source)!r}: results.json is unreadable ({error}).") from None
    with_file = [s for s, name in available.items() if name]
    if seed is None and not with_file:
        raise UserError(f"run folder {str(source)!r} has no checkpoint (the run had "
                        "training.save_checkpoint=false); run it again to write one.")
    chosen = with_file[0] if seed is None else seed
    if chosen not in available or not available[chosen]:
        raise UserError(f"run folder {str(source)!r} has no checkpoint of seed {chosen}; seeds with one: "
                        f"{', '.join(map(str, with_file)) or 'none'}.")
    name = Path(str(available[chosen])).name  # a name inside the folder, never a path out of it
    return source / name


# -- reading ----------------------------------------------------------------------------------------
def _read(path: Path, where: str) -> dict[str, Any]:
    try:
        size = path.stat().st_size
    except OSError as error:
        raise UserError(f"cannot read {where}: {error.strerror or error}.") from None
    if size > _MAX_BYTES:
        raise UserError(f"{where} is {size / 2**30:.1f} GiB, more than the {_MAX_BYTES >> 30} GiB a checkpoint may "
                        "be; it is not one merc-bench wrote.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - the restricted unpickler raises many kinds on a foreign file
        raise UserError(f"{where} is not a readable checkpoint ({type(error).__name__}: "
                        f"{str(error).splitlines()[0][:200] if str(error) else 'no detail'}).") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("header"), str):
        hint = (" It looks like a bare state_dict, as merc-bench before 0.2 wrote: it lacks the configuration, "
                "classes and feature statistics needed to predict; retrain to get a self-describing checkpoint."
                if isinstance(payload, dict) and payload and all(isinstance(v, torch.Tensor) for v in payload.values())
                else "")
        raise UserError(f"{where} is not a merc-bench checkpoint (no header).{hint}")
    return payload


def _config(header: _Header, where: str, registry: Registry) -> RunConfig:
    try:
        config = RunConfig.model_validate(header.config)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, f"{where}: its configuration")) from None
    for kind in ("encoder", "mixer", "fuser", "distiller"):
        choice = getattr(config, kind)
        registry.get(kind, choice.name).make_config(choice.config, where=f"{where}: {kind}")
    return config


def _state(payload: dict[str, Any], where: str) -> dict[str, torch.Tensor]:
    state = payload.get("state")
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"{where}: its weights are not a mapping of names to tensors.")
    return state


def _scales(payload: dict[str, Any], header: _Header, where: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    tensors = payload.get("scales")
    scales = {}
    for modality in header.standardized:
        dim = header.dataset.feature_dims.get(modality)
        pair = tuple(tensors.get(f"{modality}.{part}") if isinstance(tensors, dict) else None for part in ("mean", "std"))
        if dim is None or not all(isinstance(t, torch.Tensor) and t.shape == (dim,) for t in pair):
            raise UserError(f"{where}: the standardisation statistics of {modality!r} are missing or not "
                            f"({dim},) vectors.")
        mean, std = (t.double().numpy() for t in pair)
        if not (np.isfinite(mean).all() and np.isfinite(std).all() and (std > 0).all()):
            raise UserError(f"{where}: the standardisation statistics of {modality!r} are not finite and positive.")
        scales[modality] = (mean, std)
    return scales


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a checkpoint header")

"""Model assembly: encoder → mixer (one per modality) → fuser → classifier heads.

The component outputs are small dataclasses so a new component can add auxiliary losses or
metrics without changing the core:

* a mixer returns a tensor (B, L, H) or a :class:`MixerOutput` with ``aux_losses``/``metrics``;
* a fuser returns a :class:`FuserOutput` (fused (B, L, H) and per-modality (B, L, H));
* :class:`MERCModel` returns a :class:`ModelOutput`.

Mixers and fusers that model who speaks (DialogueRNN's party states, DialogueGCN's speaker
relations) ask for it by giving ``forward`` a ``speakers`` keyword parameter; they then receive the
batch's speaker indices (B, L). Components without that parameter never see it, so the common
contract stays ``mixer(hidden, mask)`` and ``fuser(mixed=, encoded=, mask=)``.

The heads follow SDT (reference-models.md §2, item 7): a linear head on the fused representation
(its argmax is the prediction) and, when ``model.modality_heads`` is on, one
``ReLU → Dropout → Linear`` head per modality for distillers that supervise each modality.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from merc_bench.config import RunConfig
from merc_bench.data import Batch, DatasetInfo
from merc_bench.errors import UserError
from merc_bench.registry import BuildContext, Registry

__all__ = ["MixerOutput", "FuserOutput", "ModelOutput", "MERCModel", "build_model", "build_context", "select_modalities", "wants_speakers"]


@dataclass
class MixerOutput:
    hidden: torch.Tensor  # (B, L, H)
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class FuserOutput:
    fused: torch.Tensor  # (B, L, H)
    per_modality: dict[str, torch.Tensor]  # modality -> (B, L, H)
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class ModelOutput:
    logits: torch.Tensor  # (B, L, C) from the fused representation: the prediction
    modality_logits: dict[str, torch.Tensor]  # modality -> (B, L, C); empty without modality heads
    hidden: torch.Tensor  # (B, L, H) fused representation (for t-SNE, distillation)
    modality_hidden: dict[str, torch.Tensor]  # modality -> (B, L, H)
    aux_losses: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class MERCModel(nn.Module):
    """encoder → per-modality mixers → fuser → heads, for one dataset's modalities."""

    def __init__(
        self,
        *,
        encoder: nn.Module,
        mixers: dict[str, nn.Module],
        fuser: nn.Module,
        hidden_size: int,
        num_classes: int,
        head_dropout: float,
        modality_heads: bool,
        prediction: str = "fused",
    ) -> None:
        super().__init__()
        if prediction == "modality_average" and not modality_heads:
            raise UserError("model.prediction = 'modality_average' needs model.modality_heads = true.")
        self.modalities = tuple(mixers)
        self.encoder = encoder
        self.mixers = nn.ModuleDict(mixers)
        self.fuser = fuser
        self.prediction = prediction
        # Late fusion predicts from the modality heads alone, so it has no fused head to train.
        self.head = nn.Linear(hidden_size, num_classes) if prediction == "fused" else None
        self._mixer_wants_speakers = {m: wants_speakers(mixer) for m, mixer in mixers.items()}
        self._fuser_wants_speakers = wants_speakers(fuser)
        self.modality_heads = nn.ModuleDict(
            {
                m: nn.Sequential(nn.ReLU(), nn.Dropout(head_dropout), nn.Linear(hidden_size, num_classes))
                for m in self.modalities
            }
            if modality_heads
            else {}
        )

    def forward(self, batch: Batch) -> ModelOutput:
        mask = batch.mask  # (B, L)
        encoded = self.encoder(
            features={m: batch.features[m] for m in self.modalities}, speakers=batch.speakers, mask=mask
        )  # modality -> (B, L, H)
        aux_losses: dict[str, torch.Tensor] = {}
        metrics: dict[str, torch.Tensor] = {}
        mixed = {}
        for modality, mixer in self.mixers.items():
            if self._mixer_wants_speakers[modality]:
                out = mixer(encoded[modality], mask, speakers=batch.speakers)
            else:
                out = mixer(encoded[modality], mask)
            if isinstance(out, MixerOutput):
                aux_losses.update({f"{modality}.{k}": v for k, v in out.aux_losses.items()})
                metrics.update({f"{modality}.{k}": v for k, v in out.metrics.items()})
                out = out.hidden
            mixed[modality] = out  # (B, L, H)
        speakers = {"speakers": batch.speakers} if self._fuser_wants_speakers else {}
        fused = self.fuser(mixed=mixed, encoded=encoded, mask=mask, **speakers)
        aux_losses.update(fused.aux_losses)
        metrics.update(fused.metrics)
        modality_logits = {m: head(fused.per_modality[m]) for m, head in self.modality_heads.items()}
        if self.head is not None:
            logits = self.head(fused.fused)  # (B, L, C)
        else:
            # Late fusion: the average of the modalities' class probabilities, returned as log-probabilities
            # so that argmax and cross-entropy keep their meaning.
            probabilities = torch.stack([x.float().softmax(-1) for x in modality_logits.values()]).mean(0)
            logits = probabilities.clamp_min(1e-12).log()  # (B, L, C)
        return ModelOutput(
            logits=logits,
            modality_logits=modality_logits,
            hidden=fused.fused,
            modality_hidden=fused.per_modality,
            aux_losses=aux_losses,
            metrics=metrics,
        )


def wants_speakers(module: nn.Module) -> bool:
    """Whether a mixer's or fuser's ``forward`` takes the speaker indices (a ``speakers`` parameter)."""
    return "speakers" in inspect.signature(module.forward).parameters


def select_modalities(info: DatasetInfo, requested: list[str] | None) -> tuple[str, ...]:
    """The run's modalities: all of the dataset's, or a validated non-empty subset in dataset order."""
    if requested is None:
        return info.modalities
    if not requested:
        raise UserError("--modalities is empty: name at least one of " + ", ".join(info.modalities) + ".")
    missing = [m for m in requested if m not in info.feature_dims]
    if missing:
        shown = missing[0] if len(missing[0]) <= 40 else missing[0][:37] + "..."
        raise UserError(
            f"modality {shown!r} is not in dataset {info.name!r}, which has: {', '.join(info.modalities)}."
        )
    return tuple(m for m in info.modalities if m in requested)


def build_context(config: RunConfig, info: DatasetInfo) -> BuildContext:
    """The build-context values constructors may ask for by name (:class:`~merc_bench.registry.BuildContext`).

    Also where a configuration meets the dataset, so settings that depend on it are checked here,
    before any training: the modality subset and explicit class weights (one per class).
    """
    modalities = select_modalities(info, config.modalities)
    weights = config.training.class_weights
    if isinstance(weights, list) and len(weights) != info.num_classes:
        raise UserError(f"training.class_weights has {len(weights)} values, but dataset {info.name!r} has "
                        f"{info.num_classes} classes ({', '.join(info.classes)}).")
    return BuildContext(**{
        "hidden_size": config.model.hidden_size,
        "modalities": modalities,
        "feature_dims": {m: info.feature_dims[m] for m in modalities},
        "num_speakers": info.num_speakers,
        "num_classes": info.num_classes,
        "family": info.family,
        "data_dir": None,
    })


def build_component(registry: Registry, kind: str, choice: Any, context: BuildContext) -> Any:
    entry = registry.get(kind, choice.name)
    return entry.build(entry.make_config(choice.config, where=kind), context)


def build_model(config: RunConfig, info: DatasetInfo, registry: Registry, *,
                check_size: bool = True) -> tuple[MERCModel, nn.Module]:
    """Build the model and the distiller for ``config`` on a dataset described by ``info``.

    With ``check_size`` the two are first built on the ``meta`` device (shapes only, nothing
    allocated, the random state untouched) and weights that would not fit the memory limit of
    :mod:`merc_bench.sizing` are refused before they are allocated.
    """
    if check_size and torch.get_default_device().type != "meta":
        from merc_bench.sizing import check_weights_fit

        with torch.random.fork_rng(devices=[]), torch.device("meta"):
            model, distiller = build_model(config, info, registry, check_size=False)
        parameters = sum(p.numel() for module in (model, distiller) for p in module.parameters())
        buffers = sum(b.numel() for module in (model, distiller) for b in module.buffers())
        device = "cuda" if config.device != "cpu" and torch.cuda.is_available() else "cpu"
        check_weights_fit(parameters, buffers, device, f"recipe {config.recipe!r}")
    context = build_context(config, info)
    mixers = {m: build_component(registry, "mixer", config.mixer, context) for m in context["modalities"]}
    model = MERCModel(
        encoder=build_component(registry, "encoder", config.encoder, context),
        mixers=mixers,
        fuser=build_component(registry, "fuser", config.fuser, context),
        hidden_size=config.model.hidden_size,
        num_classes=info.num_classes,
        head_dropout=config.model.head_dropout,
        modality_heads=config.model.modality_heads,
        prediction=config.model.prediction,
    )
    distiller = build_component(registry, "distiller", config.distiller, context)
    return model, distiller


def count_parameters(*modules: nn.Module) -> tuple[int, int]:
    """(total, trainable) parameter counts."""
    params = [p for module in modules for p in module.parameters()]
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)

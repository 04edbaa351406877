"""One training loop for every recipe.

Loss = task loss (class-weighted cross-entropy of the fused prediction) + every term the distiller
returns + every auxiliary loss the mixers and fuser return. Adam with coupled weight decay (SDT's
``optim.Adam(weight_decay=...)``), no scheduler, no clipping.

Protocols (design.md, "Protocols and results"):

* ``clean`` — train on train, evaluate dev after every epoch, keep the first epoch reaching the
  best dev ``selection_metric``, evaluate test once with it.
* ``paper`` — train on train + dev (all labelled non-test data, as the SDT/MMGCN files do), evaluate
  test after every epoch and report the first epoch reaching the best test score (SDT's tie rule).
  Dev metrics are then computed on data the model trained on; results say so.

A fixed seed gives the same numbers on CPU: parameters, dropout and batch order all draw from
generators seeded with it.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from merc_bench.checkpoint import build_checkpoint, save_checkpoint
from merc_bench.config import RunConfig
from merc_bench.data import Batch, Corpus, Dialogue, batches
from merc_bench.errors import TrainingDiverged, UserError
from merc_bench.events import EpochEnded
from merc_bench.losses import masked_cross_entropy
from merc_bench.metrics import classification_metrics
from merc_bench.model import MERCModel, build_context, build_model
from merc_bench.registry import Registry

__all__ = ["SeedResult", "Trainer", "resolve_device", "seed_everything", "bf16_problem"]


@dataclass
class SeedResult:
    """What one seed's training produced."""

    seed: int
    selected_epoch: int
    dev: dict[str, Any]
    test: dict[str, Any]
    history: list[dict[str, float]]
    seconds: float
    checkpoint: Path | None = None
    test_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_predictions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    teacher: dict[str, Any] | None = None  # for distillers with a teacher: status, fingerprint, dev/test metrics
    model: Any = None  # the selected model (kept in memory; not written to results)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA GPU here; use --device cpu or auto.")
    return torch.device(name)


#: CPU flags of native bf16 arithmetic (Intel AVX512-BF16 on Cooper Lake and later, AMX on Sapphire Rapids;
#: AMD Zen 4 reports avx512_bf16 too). Without them bf16 autocast on the CPU is emulated, slower than fp32.
_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def _cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            return {flag for line in info if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    except OSError:  # not Linux: trust torch's own check below
        return set()


def bf16_problem(device: torch.device) -> str | None:
    """Why ``training.precision=bf16`` cannot run on ``device`` (None: it can)."""
    if device.type == "cuda":
        if not torch.cuda.is_bf16_supported():
            return "training.precision=bf16: this GPU has no native bf16 (it needs compute capability 8.0, Ampere, " \
                   "or later); use fp32."
        return None
    flags = _cpu_flags()
    if flags and not flags.intersection(_CPU_BF16_FLAGS):
        return ("training.precision=bf16 on the CPU needs native bf16 instructions (the CPU flag avx512_bf16 or "
                "amx_bf16), which this CPU lacks: bf16 would be emulated, slower than fp32. Use fp32 (the default).")
    if not flags and not getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)():
        return "training.precision=bf16: torch finds no native bf16 support on this CPU; use fp32."
    return None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def class_weight_tensor(config: RunConfig, corpus: Corpus, device: torch.device) -> torch.Tensor | None:
    setting = config.training.class_weights
    if setting == "none":
        return None
    if setting == "inverse_frequency":
        counts = corpus.class_counts("train").astype(np.float64)
        weights = counts.sum() / np.maximum(counts, 1.0)
    else:  # one per class: build_context checked the length
        weights = np.asarray(setting, dtype=np.float64)
    return torch.tensor(weights, dtype=torch.float32, device=device)


def _snapshot(model: torch.nn.Module, buffers: dict[str, torch.Tensor] | None) -> dict[str, torch.Tensor]:
    """Copy the model's state into ``buffers`` (allocated on first use) instead of a fresh deepcopy."""
    state = model.state_dict()
    if buffers is None:
        return {name: tensor.detach().clone() for name, tensor in state.items()}
    for name, tensor in state.items():
        buffers[name].copy_(tensor)
    return buffers


#: What ``bad_what`` codes in :meth:`Trainer.fit` name.
_BAD_PART = {1: "training loss", 2: "gradients", 3: "weights after the optimiser step"}


def _finite(gradients: list[torch.Tensor], weights: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Two device-side booleans, no host sync: all gradients finite, all weights finite.

    One fused kernel computes every tensor's 2-norm, which is finite exactly when its elements are,
    except that values beyond about 1e19 overflow the float32 sum of squares: weights or gradients
    that large have diverged too. (The max-norm cannot overflow but is several times slower on CPUs.)
    """
    norms = torch._foreach_norm([t.detach() for t in gradients + weights]) if gradients or weights else []
    finite = torch.isfinite(torch.stack(norms)) if norms else torch.ones(0, dtype=torch.bool)
    return finite[: len(gradients)].all(), finite[len(gradients):].all()


#: Receives every epoch's event; may return extra metrics for the epoch's row (or raise to stop, as a pruner does).
EpochCallback = Callable[[EpochEnded], dict[str, float] | None]


class Trainer:
    """Trains one configuration on one corpus, one seed at a time.

    It shows and records nothing itself: each epoch becomes an :class:`~merc_bench.events.EpochEnded`
    for ``on_epoch`` (the pipeline's subscribers), and what a component needs before training (a
    distiller's teacher) comes in through ``fit``'s ``setup`` step.
    """

    def __init__(
        self,
        *,
        config: RunConfig,
        corpus: Corpus,
        registry: Registry,
        device: torch.device | None = None,
        on_epoch: EpochCallback | None = None,
        label: str = "",
        run: dict[str, Any] | None = None,
    ) -> None:
        self.config = config
        self.label = label  # prefixes errors, e.g. "the teacher's " for a distiller's teacher
        self.source = corpus  # as loaded: its fingerprint identifies the data in checkpoints
        if config.protocol == "holdout":  # dev = the first 10 % of train + dev (COGMEN's and CORECT's rule)
            corpus = corpus.with_holdout_dev()
        # Kept for the checkpoint, so that new dialogues are standardised as the training data was.
        self.scales = corpus.standardization() if config.training.standardize_features else None
        self.corpus = corpus.standardized(self.scales) if self.scales is not None else corpus
        self.registry = registry
        self.device = device or resolve_device(config.device)
        self.modalities = build_context(config, corpus.info)["modalities"]  # checks the config against the data
        self.on_epoch = on_epoch
        self.role = "teacher" if label else "model"
        self.run = run or {}  # described in every event: recipe, dataset, protocol
        if config.training.precision == "bf16" and (problem := bf16_problem(self.device)):
            raise UserError(problem)
        self.class_weights = class_weight_tensor(config, corpus, self.device)
        # Train on the same (possibly standardised) features that dev and test are evaluated on.
        if config.protocol == "paper":
            self.train_split = self.corpus.train + self.corpus.dev
            self.select_split = "test"
        else:
            self.train_split = self.corpus.train
            self.select_split = "dev"
        if not self.train_split:  # nothing to learn from: a loss of 0.000 and chance scores otherwise
            raise UserError(f"dataset {corpus.info.name!r} has no training dialogues; a model cannot be trained.")
        if not corpus.dev and config.protocol == "clean":
            raise UserError(f"dataset {corpus.info.name!r} has no dev split, which the clean protocol selects on.")
        self._eval_batches: dict[str, list[Batch]] = {}

    # -- building blocks --------------------------------------------------------------------------
    def build(self) -> tuple[MERCModel, torch.nn.Module]:
        model, distiller = build_model(self.config, self.corpus.info, self.registry)
        return model.to(self.device), distiller.to(self.device)

    def _batches(self, dialogues: list[Dialogue], generator: np.random.Generator | None) -> list[Batch]:
        return batches(
            dialogues,
            batch_size=self.config.training.batch_size,
            modalities=self.modalities,
            num_speakers=self.corpus.info.num_speakers,
            generator=generator,
        )

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.config.training.precision == "bf16":  # fp32 weights and optimiser state; losses cast to fp32
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def loss(self, model: MERCModel, distiller: torch.nn.Module, batch: Batch) -> tuple[torch.Tensor, dict, Any]:
        with self._autocast():
            output = model(batch)
            terms = {}
            if not getattr(distiller, "replaces_task_loss", False):
                terms["task"] = masked_cross_entropy(output.logits, batch.labels, batch.mask, self.class_weights)
            terms.update(distiller(output=output, batch=batch, class_weights=self.class_weights))
            terms.update(output.aux_losses)
        total = sum(terms.values())
        return total, terms, output

    def evaluate(self, model: MERCModel, split: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
        """Metrics on a split, plus its flat labels and predictions (real utterances only)."""
        if split not in self._eval_batches:
            self._eval_batches[split] = [b.to(self.device) for b in self._batches(self.corpus.split(split), None)]
        model.eval()
        labels, predictions = [], []
        with torch.inference_mode(), self._autocast():
            for batch in self._eval_batches[split]:
                logits = model(batch).logits[batch.mask]  # (N, C)
                predictions.append(logits.argmax(dim=-1))
                labels.append(batch.real_labels())
        labels_np = torch.cat(labels).cpu().numpy()
        predictions_np = torch.cat(predictions).cpu().numpy()
        return classification_metrics(labels_np, predictions_np, self.corpus.info.classes), labels_np, predictions_np

    def embed(self, model: MERCModel, split: str) -> np.ndarray:
        """The fused representation (N, H) of every real utterance of a split, in corpus order."""
        if split not in self._eval_batches:
            self._eval_batches[split] = [b.to(self.device) for b in self._batches(self.corpus.split(split), None)]
        model.eval()
        with torch.inference_mode(), self._autocast():
            hidden = [model(batch).hidden[batch.mask].float() for batch in self._eval_batches[split]]  # (N_b, H)
        return torch.cat(hidden).cpu().numpy()

    # -- one seed ---------------------------------------------------------------------------------
    def fit(self, seed: int, *, checkpoint_dir: Path | None = None, evaluate_test: bool = True,
            setup: Callable[[MERCModel, torch.nn.Module], None] | None = None) -> SeedResult:
        """Train one seed; ``evaluate_test=False`` leaves test unread (an Optuna study selects on dev only).

        ``setup(model, distiller)`` runs after the model is built and before the optimiser collects
        the parameters (a teacher attached there may add trainable ones).
        """
        started = time.perf_counter()
        seed_everything(seed)
        model, distiller = self.build()
        if setup is not None:
            setup(model, distiller)
        # The compiled wrapper shares the model's parameters; evaluation and snapshots use the model itself.
        step_model = torch.compile(model, dynamic=True) if self.config.training.compile else model
        parameters = [p for p in list(model.parameters()) + list(distiller.parameters()) if p.requires_grad]
        # fused=True: one kernel for all parameters instead of a Python loop over 100+ tensors; same update.
        optimizer = torch.optim.Adam(
            parameters, lr=self.config.training.lr, weight_decay=self.config.training.weight_decay, fused=True
        )
        shuffle = np.random.default_rng(seed)
        metric = self.config.training.selection_metric
        best_score, best_epoch, best_state = -1.0, 0, None
        history: list[dict[str, float]] = []
        epochs = self.config.training.epochs
        for epoch in range(1, epochs + 1):
            row = self._train_epoch(step_model, model, distiller, optimizer, parameters, shuffle, seed, epoch)
            selected, _, _ = self.evaluate(model, self.select_split)
            row.update({f"{self.select_split}_{k}": selected[k] for k in ("accuracy", "weighted_f1", "macro_f1")})
            if selected[metric] > best_score:  # strict: the first epoch reaching the maximum wins
                best_score, best_epoch = selected[metric], epoch
                best_state = _snapshot(model, best_state)
            if self.on_epoch is not None:
                event = EpochEnded(seed=seed, epoch=epoch, epochs=epochs, metrics=dict(row), split=self.select_split,
                                   best_score=best_score, best_epoch=best_epoch, role=self.role,
                                   run=self.run | {"seed": seed})
                row.update(self.on_epoch(event) or {})
            history.append(row)
        assert best_state is not None
        model.load_state_dict(best_state)
        dev, _, _ = self.evaluate(model, "dev") if self.corpus.dev else ({}, None, None)
        checkpoint = self._checkpoint(checkpoint_dir, best_state, seed, best_epoch, dev)
        test, test_labels, test_predictions = (
            self.evaluate(model, "test") if evaluate_test else ({}, np.zeros(0, np.int64), np.zeros(0, np.int64))
        )  # the one evaluation of test (clean)
        return SeedResult(
            seed=seed,
            selected_epoch=best_epoch,
            dev=dev,
            test=test,
            history=history,
            seconds=time.perf_counter() - started,
            checkpoint=checkpoint,
            test_labels=test_labels,
            test_predictions=test_predictions,
            model=model,
        )

    def _checkpoint(self, folder: Path | None, state: dict[str, torch.Tensor], seed: int, epoch: int,
                    dev: dict[str, Any]) -> Path | None:
        """The selected epoch's self-describing checkpoint in ``folder`` (:mod:`merc_bench.checkpoint`)."""
        if folder is None or not self.config.training.save_checkpoint:
            return None
        return save_checkpoint(folder / f"checkpoint-seed{seed}.pt", build_checkpoint(
            state=state, config=self.config, info=self.corpus.info, modalities=self.modalities, scales=self.scales,
            provenance=self.corpus.provenance, fingerprint=self.source.fingerprint(), seed=seed, selected_epoch=epoch,
            dev=dev, registry=self.registry))

    def _train_epoch(self, step_model: torch.nn.Module, model: MERCModel, distiller: torch.nn.Module,
                     optimizer: torch.optim.Optimizer, parameters: list[torch.Tensor], shuffle: np.random.Generator,
                     seed: int, epoch: int) -> dict[str, float]:
        """One pass over the training split; the epoch's row (loss, model metrics), or TrainingDiverged.

        Sums stay on the device and are read once per epoch: a float()/int()/if on a CUDA tensor
        inside the loop would wait for the GPU at every step (issue 4: no host syncs). Divergence is
        tracked the same way: ``first_bad`` holds the first step whose loss, gradients or updated
        weights were not finite (0: none), read once at the epoch's end.
        """
        model.train()
        distiller.train()
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        first_bad = torch.zeros((), dtype=torch.int64, device=self.device)
        bad_what = torch.zeros((), dtype=torch.int64, device=self.device)
        utterances, batch_count = 0, 0
        model_metrics: dict[str, torch.Tensor] = {}
        for batch in self._batches(self.train_split, shuffle):
            count = int(batch.mask.sum())  # counted on the host copy, before the transfer
            batch = batch.to(self.device)
            optimizer.zero_grad(set_to_none=True)
            total, _, output = self.loss(step_model, distiller, batch)
            for name, value in output.metrics.items():  # e.g. SDMoE's active experts per utterance
                model_metrics[name] = model_metrics.get(name, 0.0) + torch.as_tensor(value).detach().float()
            batch_count += 1
            total.backward()
            loss_ok = torch.isfinite(total.detach())
            optimizer.step()  # leaves .grad as it was, so gradients and new weights are checked together
            grads_ok, weights_ok = _finite([p.grad for p in parameters if p.grad is not None], parameters)
            # 1: loss, 2: gradients, 3: weights after the update — the first failure of the first bad step.
            what = torch.where(~loss_ok, 1, torch.where(~grads_ok, 2, torch.where(~weights_ok, 3, 0)))
            is_first = (what > 0) & (first_bad == 0)
            first_bad = torch.where(is_first, batch_count, first_bad)
            bad_what = torch.where(is_first, what, bad_what)
            loss_sum += total.detach().double() * count
            utterances += count
        if int(first_bad):  # the weights of a diverged epoch are never evaluated, kept or saved
            raise TrainingDiverged(
                f"{self.label}training diverged in seed {seed}, epoch {epoch}, step {int(first_bad)} of "
                f"{batch_count}: the {_BAD_PART[int(bad_what)]} became non-finite (NaN or inf). The seed "
                "produced no metrics and no checkpoint. Lower training.lr (now "
                f"{self.config.training.lr:g}) or check the features for NaN/inf values."
            )
        row = {"epoch": epoch, "train_loss": float(loss_sum) / max(utterances, 1)}
        row.update({f"train_{name}": float(value) / max(batch_count, 1) for name, value in model_metrics.items()})
        return row

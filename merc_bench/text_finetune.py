"""Fine-tuned text features for ``merc-bench data prepare --finetune``.

Frozen sentence embeddings lag behind the text features the conversation models of the literature
use, which come from a transformer fine-tuned on the corpus's own utterances for emotion
classification (RoBERTa features of COSMIC, Ghosal et al., Findings of EMNLP 2020; EmoBERTa, Kim &
Vossen, 2021, with the preceding turns as context). This module does that for any registered text
encoder that can be trained (one with a ``trainable(...)`` method, e.g. ``minilm``):

1. **Inputs.** Each utterance becomes ``(context, target)``: ``target`` is ``"speaker: utterance"``
   and ``context`` the ``context_turns`` preceding turns of the same dialogue, each
   ``"speaker: utterance"``, oldest first (``""`` with ``context_turns=0`` or for a dialogue's first
   utterance). The encoder reads them as a pair, context then target after a separator, so the
   target is last; its pooled vector is the mean over the target's tokens only (see the encoder).
2. **Training** on the train split only: a linear head on the pooled last layer, cross-entropy,
   AdamW, ``epochs`` epochs; after each epoch the dev split is classified and its utterance-level
   weighted F1 and accuracy recorded. The epoch with the best dev weighted F1 (the first on a tie)
   is selected. The test split is never passed to this step (:func:`_fit` refuses it).
3. **Extraction** of every split with the selected weights: the pooled last layer is the ``text``
   feature; with ``layers=K`` the pooled vectors of the last K layers are returned too.

Resumable: after every epoch the model, optimiser and random states go to
``work_dir/last.pt`` (and the best epoch's weights to ``best.pt``), each written atomically; the
work folder is named by a digest of everything that changes the result (encoder version, weights
hash, the raw files, this configuration), so a rerun of the same command continues after the last
finished epoch and another configuration never reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from merc_bench.errors import UserError

__all__ = ["FinetuneConfig", "FinetuneResult", "finetune_config", "finetune_key", "finetune_and_extract",
           "dialogue_inputs", "TRAINING_SPLITS", "finetuned_text_features"]

#: The only splits the fine-tuning step may see (test is extracted afterwards, never trained on or selected by).
TRAINING_SPLITS = ("train", "dev")


class FinetuneConfig(BaseModel):
    """Options of ``data prepare --finetune`` (CLI ``--finetune-<name>``, dashes for underscores).

    The defaults are the usual settings for fine-tuning small BERT-style encoders on utterance
    classification. ``context_turns`` was chosen on MELD's dev split (benchmarks/RESULTS.md, 2026-12-03):
    two turns of context raise the fine-tuned head's own dev w-F1 (57.37 vs 56.65) but not SDT's on the
    resulting features (59.07 vs 59.29, inside the seed spread), and cost 3× per epoch, so none is the
    default. lr and epochs have not been swept.
    """

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(3, ge=1, le=100, description="training epochs over the train split; the best on dev is kept")
    lr: float = Field(5e-5, gt=0, le=1.0, allow_inf_nan=False, description="AdamW learning rate")
    weight_decay: float = Field(0.01, ge=0, le=1.0, allow_inf_nan=False, description="AdamW weight decay")
    batch_size: int = Field(32, ge=1, le=4096, description="utterances per optimisation step")
    max_tokens: int = Field(128, ge=8, le=512, description="word pieces per input (context + target), truncated "
                            "from the left so the oldest context goes first")
    context_turns: int = Field(0, ge=0, le=64, description="preceding turns of the same dialogue given as context "
                               "(0: the utterance alone)")
    layers: int = Field(1, ge=1, le=64, description="also keep the pooled vectors of the last N layers "
                        "(text_layers/<split>.npz); the text feature is always the last layer")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="seed of the head, the shuffling and dropout")
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d+)?|mps)$", description="torch device: cpu, cuda, cuda:N or mps")


def finetune_config(values: dict[str, Any]) -> FinetuneConfig:
    """Validate ``values``; a bad one is a :class:`UserError` naming its ``--finetune-*`` option."""
    try:
        config = FinetuneConfig.model_validate(values)
    except pydantic.ValidationError as error:
        problems = []
        for item in error.errors():
            field = str(item["loc"][0]) if item["loc"] else "?"
            option = "--device" if field == "device" else "--finetune-" + field.replace("_", "-")
            hint = FinetuneConfig.model_fields[field].description if field in FinetuneConfig.model_fields else ""
            problems.append(f"{option} {str(item.get('input'))[:40]!r}: {item['msg']} ({hint})")
        raise UserError("bad fine-tuning option: " + "; ".join(problems) + ".") from None
    if config.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise UserError(f"--device {config.device}: this machine has no usable CUDA device (torch "
                            f"{torch.__version__}); use --device cpu.")
    return config


# -- inputs -------------------------------------------------------------------------------------------

def _speaker_names(dialogue: Any) -> list[str]:
    names = getattr(dialogue, "speaker_names", None)
    if names and len(names) == len(dialogue.texts):
        return [str(name) for name in names]
    # Sources that only give speaker slots: a stable placeholder per slot.
    return [f"speaker {int(s) + 1}" for s in np.asarray(dialogue.speakers)]


def dialogue_inputs(dialogue: Any, context_turns: int) -> list[tuple[str, str]]:
    """``(context, target)`` per utterance: the k preceding "speaker: utterance" turns, then the utterance."""
    names = _speaker_names(dialogue)
    turns = [f"{name}: {text}" for name, text in zip(names, dialogue.texts)]
    return [(" ".join(turns[max(0, i - context_turns) : i]) if context_turns else "", turns[i])
            for i in range(len(turns))]


@dataclass(frozen=True)
class Examples:
    """Labelled inputs of one split, with the split's name so the training step can check it."""

    split: str
    inputs: list[tuple[str, str]]
    labels: np.ndarray  # (N,) int64
    utterance_ids: list[str]  # "<dialogue id>/<index>", to trace what the training step sees


def _examples(split: str, dialogues: Sequence[Any], context_turns: int) -> Examples:
    inputs, labels, ids = [], [], []
    for dialogue in dialogues:
        inputs += dialogue_inputs(dialogue, context_turns)
        labels += [int(label) for label in np.asarray(dialogue.labels)]
        ids += [f"{dialogue.id}/{i}" for i in range(len(dialogue.texts))]
    return Examples(split=split, inputs=inputs, labels=np.asarray(labels, dtype=np.int64), utterance_ids=ids)


# -- identity, checkpoints ---------------------------------------------------------------------------

def finetune_key(*, encoder: Any, config: FinetuneConfig, source_sha256: dict[str, str], num_classes: int,
                 limit_dialogues: int | None) -> str:
    """Digest of everything that changes the fine-tuned vectors (names the work folder and the cache files)."""
    identity = {
        "encoder": encoder.name, "version": str(encoder.version), "weights_sha256": encoder.weights_sha256,
        "config": config.model_dump(exclude={"device"}),  # the device changes speed, not the recipe
        "train_dev_sha256": [source_sha256[s] for s in TRAINING_SPLITS], "num_classes": num_classes,
        "limit_dialogues": limit_dialogues,
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]


def _atomic_save(obj: Any, path: Path) -> None:
    import torch

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
        os.replace(temporary, path)  # a kill mid-write leaves the previous checkpoint intact
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _rng_state() -> dict[str, Any]:
    import torch

    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict[str, Any]) -> None:
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


# -- training and extraction -------------------------------------------------------------------------

@dataclass
class FinetuneResult:
    """What the manifest records about the fine-tuning, plus the extracted vectors."""

    vectors: dict[str, np.ndarray]  # split -> (N, layers, D) float32; [:, 0] is the last layer
    report: dict[str, Any]


# Batches drawn from pools of this many batches sorted by length: a transformer pads a batch to its
# longest input, and on CPUs the padding is most of the work with random batches of MELD's short
# utterances (measured: about 2x fewer tokens per step); pools keep the batches random enough.
_POOL_BATCHES = 50


def _lengths(examples: Examples) -> np.ndarray:
    return np.asarray([len(context) + len(target) for context, target in examples.inputs])


def _batches(lengths: np.ndarray, batch_size: int, generator: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches of similar length: shuffled pools (training) or all sorted (``generator=None``)."""
    if generator is None:
        order = np.argsort(lengths, kind="stable")
        return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    order = generator.permutation(len(lengths))
    batches = []
    pool = batch_size * _POOL_BATCHES
    for start in range(0, len(order), pool):
        chunk = order[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in generator.permutation(len(batches))]


def _predict(model: Any, examples: Examples, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(predicted classes (N,), pooled vectors (N, layers, D)) in evaluation mode, no gradients."""
    import torch

    model.eval()
    batches = _batches(_lengths(examples), batch_size, None)
    predictions, pooled = [], []
    with torch.no_grad():
        for index in batches:
            logits, layers = model([examples.inputs[i] for i in index])
            predictions.append(logits.argmax(-1).cpu().numpy())
            pooled.append(layers.float().cpu().numpy())
    order = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
    sorted_predictions, sorted_pooled = np.concatenate(predictions), np.concatenate(pooled)
    restored_predictions, restored_pooled = np.empty_like(sorted_predictions), np.empty_like(sorted_pooled)
    restored_predictions[order], restored_pooled[order] = sorted_predictions, sorted_pooled  # the caller's order
    return restored_predictions, restored_pooled


def _scores(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"weighted_f1": float(f1_score(labels, predictions, average="weighted", zero_division=0)),
            "accuracy": float(accuracy_score(labels, predictions))}


def _fit(model: Any, train: Examples, dev: Examples, config: FinetuneConfig, work_dir: Path,
         progress: Any) -> dict[str, Any]:
    """Train on ``train``, score each epoch on ``dev``, keep the best; resume from ``work_dir/last.pt``."""
    import torch

    # The one guard against test leakage: nothing but train and dev reaches the training step.
    if (train.split, dev.split) != TRAINING_SPLITS:
        raise RuntimeError(f"fine-tuning got splits {train.split!r}/{dev.split!r}; only train and dev may be used")
    # fused: one kernel over all tensors instead of a loop per tensor (MiniLM has ~100 of them, the
    # word embeddings alone 11.7M values), same update; available on CPU and CUDA in torch >= 2.4.
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr,
                                  weight_decay=config.weight_decay, fused=config.device.split(":")[0] in ("cpu", "cuda"))
    history: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    start = 0
    last = work_dir / "last.pt"
    if last.is_file():
        state = torch.load(last, map_location=config.device, weights_only=False)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        _set_rng_state(state["rng"])
        history, best, start = state["history"], state["best"], state["epoch"]
    lengths = _lengths(train)
    steps = len(_batches(lengths, config.batch_size, np.random.default_rng(0)))
    task = progress.add_task(f"fine-tuning {config.epochs} epochs × {steps} steps", total=config.epochs * steps,
                             completed=start * steps)
    for epoch in range(start + 1, config.epochs + 1):
        started = time.perf_counter()
        generator = np.random.default_rng([config.seed, epoch])  # the epoch's order, whether resumed or not
        model.train()
        total = 0.0
        for index in _batches(lengths, config.batch_size, generator):
            logits, _ = model([train.inputs[i] for i in index])
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(train.labels[index], device=logits.device))
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            progress.advance(task)
        predictions, _ = _predict(model, dev, config.batch_size)
        scores = _scores(dev.labels, predictions)
        history.append({"epoch": epoch, "train_loss": total / max(1, len(train.inputs)), "dev": scores,
                        "seconds": round(time.perf_counter() - started, 2)})
        progress.console.print(f"fine-tuning epoch {epoch}/{config.epochs}: train loss {history[-1]['train_loss']:.4f}, "
                               f"dev w-F1 {scores['weighted_f1']:.4f} acc {scores['accuracy']:.4f}",
                               markup=False, highlight=False)
        if best is None or scores["weighted_f1"] > best["dev"]["weighted_f1"]:  # first epoch reaching the max
            best = {"epoch": epoch, "dev": scores}
            _atomic_save(model.state_dict(), work_dir / "best.pt")
        _atomic_save({"epoch": epoch, "model": model.state_dict(), "optimiser": optimiser.state_dict(),
                      "rng": _rng_state(), "history": history, "best": best}, last)
    assert best is not None
    model.load_state_dict(torch.load(work_dir / "best.pt", map_location=config.device, weights_only=True))
    return {"history": history, "selected_epoch": best["epoch"], "dev": best["dev"], "resumed_after_epoch": start}


def finetune_and_extract(encoder: Any, splits: dict[str, Sequence[Any]], *, config: FinetuneConfig,
                         num_classes: int, work_dir: Path, console: Any) -> FinetuneResult:
    """Fine-tune ``encoder`` on train (selected on dev), then pool every split with the selected weights."""
    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    if not callable(getattr(encoder, "trainable", None)):
        raise UserError(f"--finetune: the text encoder {encoder.name!r} cannot be fine-tuned (it has no trainable "
                        "model); use --text-encoder minilm.")
    started = time.perf_counter()
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)  # the head's initial weights and dropout
    model = encoder.trainable(num_classes=num_classes, max_tokens=config.max_tokens, layers=config.layers,
                              device=config.device)
    work_dir.mkdir(parents=True, exist_ok=True)  # after the model built: a refused option leaves no folder
    examples = {split: _examples(split, splits[split], config.context_turns) for split in splits}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        fitted = _fit(model, examples["train"], examples["dev"], config, work_dir, progress)
        vectors, head_scores = {}, {}
        for split, split_examples in examples.items():  # test is first seen here, by the selected model
            task = progress.add_task(f"extracting {split} ({len(split_examples.inputs)} utterances)", total=1)
            predictions, pooled = _predict(model, split_examples, config.batch_size)
            vectors[split] = pooled.astype(np.float32)
            head_scores[split] = _scores(split_examples.labels, predictions)
            progress.advance(task)
    report = {
        "encoder": {"name": encoder.name, "version": str(encoder.version), "weights_sha256": encoder.weights_sha256},
        "config": config.model_dump(),
        "selected_epoch": fitted["selected_epoch"],
        "dev": fitted["dev"],  # utterance-level scores of the selected epoch
        # The fine-tuned classifier itself, utterance by utterance, on every split — measured after the epoch was
        # chosen on dev, while extracting: a reference beside the context models, it selects nothing.
        "head_scores": head_scores,
        "history": fitted["history"],
        "resumed_after_epoch": fitted["resumed_after_epoch"],
        "seconds": round(time.perf_counter() - started, 1),  # this invocation: load, remaining epochs, extraction
        "epoch_seconds_total": round(sum(row["seconds"] for row in fitted["history"]), 1),  # all epochs, resumed too
        "inputs": "target = 'speaker: utterance'; context = the preceding turns as 'speaker: utterance', oldest "
                  "first, given before a separator; pooled = mean over the target's tokens",
        "layers": "text = pooled last layer; text_layers/<split>.npz 'layers' (N, layers, D): index 0 is the last layer",
    }
    return FinetuneResult(vectors=vectors, report=report)


def finetuned_text_features(encoder: Any, dialogues: Sequence[Any], *, report: dict[str, Any], weights: Path,
                            num_classes: int, device: str = "cpu") -> np.ndarray:
    """The ``text`` features (N, D) of ``dialogues`` from the fine-tuned encoder a ``--finetune`` folder keeps.

    ``report`` is the folder's ``provenance.finetune``; the inputs are built as for the corpus (the same
    context turns and speaker names) and pooled by the same step, so the corpus's own dialogues get its
    own vectors back. ``weights`` must be the file whose sha256 the report records (checked by the caller).
    """
    import torch

    config = finetune_config({**report["config"], "device": device})
    model = encoder.trainable(num_classes=num_classes, max_tokens=config.max_tokens, layers=config.layers,
                              device=device)
    model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
    examples = Examples(split="predict", inputs=[pair for d in dialogues for pair in dialogue_inputs(d, config.context_turns)],
                        labels=np.zeros(0, dtype=np.int64), utterance_ids=[])
    _, pooled = _predict(model, examples, config.batch_size)
    return np.ascontiguousarray(pooled[:, 0], dtype=np.float32)  # index 0: the last layer, the `text` feature

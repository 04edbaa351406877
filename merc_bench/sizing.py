"""How much memory a run needs, computed before anything big is allocated.

A typo such as ``--set model.hidden_size=100000000`` asks PyTorch for terabytes; the allocation
either fails with a traceback or, where the kernel overcommits, succeeds and the machine starts
swapping when the weights are initialised. So sizes are checked first:

* **parameters, exactly**: the model is built once on PyTorch's ``meta`` device, which records
  shapes and allocates nothing (:func:`merc_bench.model.build_model` does this before every real
  build and refuses weights that do not fit);
* **training memory, estimated** (:func:`estimate_training_memory`, called by ``prepare`` for
  ``run`` and ``validate``): bytes per fp32 parameter for the weights (4), their gradients (4),
  Adam's two moments (8) and the copy of the best epoch's weights the trainer keeps (4); plus the
  activations autograd keeps for the backward pass of the largest training batch; plus the padded
  batches the trainer holds (every training batch of an epoch, the dev and test batches).

Activations are measured, not guessed, whenever the weights fit: the real model runs forward on
one dialogue of the longest training length, every tensor autograd saves for the backward pass
is counted once per storage (``torch.autograd.graph.saved_tensors_hooks``), and the sum is
scaled by the number of dialogues in the largest batch (padded dialogues in a batch are
independent, so activations grow linearly with it). A forward pass that cannot run alone (it
raises) falls back to a heuristic: every weight matrix keeps about ``2 × (rows + columns)``
float32 values per utterance. The backward pass briefly holds gradients of activations next to
the saved tensors; :data:`BACKWARD_FACTOR` covers that. Not counted: a distiller's frozen teacher
(trained before the student, single-modality and smaller) and PyTorch's own workspace.

The limit is the memory available now (``psutil.virtual_memory().available`` for the CPU, the
free memory of the CUDA device), or ``--max-memory`` / ``MERC_BENCH_MAX_MEMORY`` when that is lower.
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from merc_bench import memory
from merc_bench.errors import UserError
from merc_bench.memory import format_size

if TYPE_CHECKING:
    from merc_bench.config import RunConfig
    from merc_bench.data import Corpus, Dialogue
    from merc_bench.registry import Registry

__all__ = ["MAX_MEMORY_VARIABLE", "MemoryEstimate", "MemoryLimit", "parse_size", "format_size", "memory_limit",
           "set_max_memory", "restore_max_memory", "estimate_training_memory", "check_training_memory", "check_weights_fit"]

#: Environment variable holding the ``--max-memory`` limit (inherited by tune's worker processes).
MAX_MEMORY_VARIABLE = "MERC_BENCH_MAX_MEMORY"

#: Bytes per trainable fp32 parameter while training: weights, gradient, Adam's two moments, best-epoch copy.
TRAINING_BYTES_PER_PARAMETER = 4 + 4 + 8 + 4
#: Peak of the backward pass relative to the activations saved by the forward pass (measured: 1.1–1.4).
BACKWARD_FACTOR = 1.5
#: Float32 values per utterance the fallback heuristic assumes each weight matrix keeps, per (rows + columns).
HEURISTIC_VALUES_PER_WIDTH = 2
#: What a training process holds beyond its tensors (allocator arenas of autograd's worker thread,
#: kernel workspaces): measured 60–70 MiB above the tensors for small models on the CPU.
RUNTIME_OVERHEAD = 64 << 20



def parse_size(text: str, *, where: str = "--max-memory") -> int:
    """Bytes from ``"8G"``, ``"512M"``, ``"1.5GiB"`` … (:func:`merc_bench.memory.parse_size`), at least 1 MiB."""
    return memory.parse_size(text, where=where)


_replaced: list[str | None] = []  # values of MAX_MEMORY_VARIABLE that set_max_memory replaced, oldest first


def set_max_memory(text: str | None) -> None:
    """Apply a ``--max-memory`` option for the running command.

    The limit goes into the environment, where every later check and tune's worker processes read
    it; the command line's ``main`` calls :func:`restore_max_memory` when the command ends, so one
    in-process ``main()`` call does not leak its limit into the next.
    """
    if text is None:
        return
    parse_size(text)
    _replaced.append(os.environ.get(MAX_MEMORY_VARIABLE))
    os.environ[MAX_MEMORY_VARIABLE] = text


def restore_max_memory() -> None:
    """Undo every :func:`set_max_memory` since the last restore."""
    if not _replaced:
        return
    previous = _replaced[0]
    _replaced.clear()
    if previous is None:
        os.environ.pop(MAX_MEMORY_VARIABLE, None)
    else:
        os.environ[MAX_MEMORY_VARIABLE] = previous


@dataclass(frozen=True)
class MemoryLimit:
    bytes: int
    source: str  # what the limit is, for messages: "--max-memory (MERC_BENCH_MAX_MEMORY)", "available memory", ...

    def __str__(self) -> str:
        return f"{format_size(self.bytes)} ({self.source})"


def memory_limit(device: torch.device | str) -> MemoryLimit:
    """The lower of the device's free memory and the configured maximum."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        limit = MemoryLimit(int(free), f"free memory of {device}")
    else:
        limit = MemoryLimit(memory.available_memory(), "available memory")
    configured = os.environ.get(MAX_MEMORY_VARIABLE)
    if configured:
        chosen = parse_size(configured, where=f"--max-memory ({MAX_MEMORY_VARIABLE})")
        if chosen < limit.bytes:
            limit = MemoryLimit(chosen, f"--max-memory / {MAX_MEMORY_VARIABLE}")
    return limit


def check_weights_fit(parameters: int, buffers: int, device: torch.device | str, what: str) -> None:
    """Refuse to allocate ``parameters`` + ``buffers`` float32 values that do not fit the limit."""
    size = 4 * (parameters + buffers)
    limit = memory_limit(device)
    if size > limit.bytes:
        raise UserError(
            f"{what} has {parameters:,} parameters, {format_size(size)} of weights alone, more than the limit of "
            f"{limit}. Lower model.hidden_size or the components' sizes (layers, heads, experts, state sizes)."
        )


@dataclass(frozen=True)
class MemoryEstimate:
    """The figures of one configuration's training memory (bytes)."""

    parameters: int
    trainable: int
    weights: int  # all parameters and buffers, float32
    training_state: int  # gradients, Adam moments and the best-epoch copy of the trainable parameters
    activations: int  # saved for backward in the largest batch, times BACKWARD_FACTOR
    data: int  # padded batches held by the trainer
    batch: tuple[int, int]  # (dialogues, utterances) of the largest training batch
    method: str  # "measured" or "heuristic"

    @property
    def total(self) -> int:
        return self.weights + self.training_state + self.activations + self.data + RUNTIME_OVERHEAD

    def describe(self) -> str:
        dialogues, utterances = self.batch
        return (f"{self.parameters:,} parameters; training needs about {format_size(self.total)}: weights "
                f"{format_size(self.weights)}, gradients + Adam state + best-epoch copy "
                f"{format_size(self.training_state)}, activations {format_size(self.activations)} ({self.method}, "
                f"batch of {dialogues} dialogues × {utterances} utterances), batches {format_size(self.data)}, runtime "
                f"{format_size(RUNTIME_OVERHEAD)}")


_last: tuple[Any, MemoryEstimate] | None = None  # (key, estimate): ``validate`` prints what ``prepare`` checked


def estimate_training_memory(config: RunConfig, corpus: Corpus, registry: Registry,
                             device: torch.device | str) -> MemoryEstimate:
    """The memory training ``config`` on ``corpus`` needs on ``device`` (see the module docstring)."""
    global _last
    device = torch.device(device)
    key = (config.model_dump_json(), weakref.ref(corpus), id(registry), str(device))
    if _last is not None and _last[0][0] == key[0] and _last[0][1]() is corpus and _last[0][2:] == key[2:]:
        return _last[1]
    estimate = _estimate(config, corpus, registry, device)
    _last = (key, estimate)
    return estimate


def _estimate(config: RunConfig, corpus: Corpus, registry: Registry, device: torch.device) -> MemoryEstimate:
    from merc_bench.model import build_model, select_modalities

    modalities = select_modalities(corpus.info, config.modalities)
    if config.protocol == "holdout":
        corpus = corpus.with_holdout_dev()
    train = corpus.train + corpus.dev if config.protocol == "paper" else corpus.train
    dialogues = max(1, min(config.training.batch_size, len(train)))
    utterances = max((len(d) for d in train), default=1)

    with torch.random.fork_rng(devices=[]), torch.device("meta"):
        model, distiller = build_model(config, corpus.info, registry, check_size=False)
    parameters = [p for module in (model, distiller) for p in module.parameters()]
    total = sum(p.numel() for p in parameters)
    trainable = sum(p.numel() for p in parameters if p.requires_grad)
    buffers = sum(b.numel() for module in (model, distiller) for b in module.buffers())
    weights = 4 * (total + buffers)
    state = (TRAINING_BYTES_PER_PARAMETER - 4) * trainable

    limit = memory_limit(device)
    per_dialogue, method = None, "heuristic"
    if weights + state <= limit.bytes:  # building the real model for the probe is within the budget
        per_dialogue = _measure_activations(config, corpus, registry, device, modalities, train)
        method = "measured" if per_dialogue is not None else method
    if per_dialogue is None:
        widths = sum(p.shape[0] + p.shape[-1] for p in parameters if p.dim() >= 2)
        per_dialogue = 4 * HEURISTIC_VALUES_PER_WIDTH * widths * utterances
    activations = int(BACKWARD_FACTOR * per_dialogue * dialogues)
    data = _batch_bytes(config, corpus, modalities, train, device)
    return MemoryEstimate(total, trainable, weights, state, activations, data, (dialogues, utterances), method)


def check_training_memory(config: RunConfig, corpus: Corpus, registry: Registry,
                          device: torch.device | str) -> MemoryEstimate:
    """:func:`estimate_training_memory`, refused with one paragraph when it exceeds :func:`memory_limit`."""
    estimate = estimate_training_memory(config, corpus, registry, device)
    limit = memory_limit(device)
    if estimate.total > limit.bytes:
        raise UserError(
            f"recipe {config.recipe!r} is too large to train here: {estimate.describe()}; more than the limit of "
            f"{limit}. Lower model.hidden_size, the components' sizes or training.batch_size, choose fewer "
            f"--modalities, or raise the limit with --max-memory."
        )
    return estimate


def _measure_activations(config: RunConfig, corpus: Corpus, registry: Registry, device: torch.device,
                         modalities: tuple[str, ...], train: list[Dialogue]) -> int | None:
    """Bytes autograd saves for the longest training dialogue alone; None when the forward pass fails."""
    from merc_bench.data import collate
    from merc_bench.losses import masked_cross_entropy
    from merc_bench.model import build_model

    longest = max(train, key=len) if train else None
    if longest is None:
        return None
    kept: list[torch.Tensor] = []

    def pack(tensor: torch.Tensor) -> int:
        # Kept here, alive until the probe ends (as in training), so no two saved tensors share an address;
        # the graph holds only the index: a node saving its own output would otherwise hold itself in a
        # reference cycle inside autograd that keeps the probe model's weights alive.
        kept.append(tensor)
        return len(kept) - 1

    def unpack(_: int) -> torch.Tensor:
        raise RuntimeError("the size probe runs no backward pass")

    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            model, _ = build_model(config, corpus.info, registry, check_size=False)
            model.to(device).train()
            batch = collate([longest], modalities=modalities, num_speakers=corpus.info.num_speakers).to(device)
            autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if config.training.precision == "bf16"
                        else torch.autocast(device.type, enabled=False))
            with torch.autograd.graph.saved_tensors_hooks(pack, unpack), autocast:
                output = model(batch)
                loss = masked_cross_entropy(output.logits, batch.labels, batch.mask, None)
                loss = loss + sum(output.aux_losses.values(), torch.zeros((), device=device))
            # No backward pass: the hooks saw every saved tensor during the forward, and the gradients would
            # allocate as much again as the weights.
        counted_elsewhere = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *batch.features.values()]}
        storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in kept}
        return sum(size for pointer, size in storages.items() if pointer not in counted_elsewhere)
    except UserError:
        raise
    except Exception:  # noqa: BLE001 - a forward pass that fails on one dialogue alone: use the heuristic
        return None
    finally:
        kept.clear()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _batch_bytes(config: RunConfig, corpus: Corpus, modalities: tuple[str, ...], train: list[Dialogue],
                 device: torch.device) -> int:
    """Padded batches the trainer keeps: an epoch's training batches (at most every dialogue padded to the
    longest) and every dev and test batch; on a GPU only the evaluation batches and one training batch."""
    width = sum(corpus.info.feature_dims[m] for m in modalities) * 4 + 8 + 8 + 1  # features, speakers, labels, mask
    size = config.training.batch_size
    evaluation = 0
    for split in (corpus.dev, corpus.test):
        for start in range(0, len(split), size):
            chunk = split[start:start + size]
            evaluation += len(chunk) * max(len(d) for d in chunk) * width
    longest = max((len(d) for d in train), default=0)
    training = (min(size, len(train)) if device.type == "cuda" else len(train)) * longest * width
    copy = 0
    if config.training.standardize_features:  # a standardised copy of the corpus' features
        copy = sum(d.features[m].nbytes for split in (corpus.train, corpus.dev, corpus.test) for d in split
                   for m in modalities)
    return evaluation + training + copy

"""Time SDT training epochs on MELD- and IEMOCAP-shaped synthetic data (CPU), paper sizes.

Measures, in one process, on the same batches, alternating the two variants step by step so that
noise from other tenants of the machine hits both alike:

* ``merc-bench``: SDT as shipped (per-utterance layers on real utterances only, fused attention,
  SiLU for MELD's frozen identity gates, fused Adam);
* ``padded``: the same model computed the way the public reference code does it — every layer
  over the padded batch, attention as explicit softmax(QKᵀ/√d) with a −1e10 fill, the identity gate
  as a matrix product, and Adam's per-tensor loop. Same parameters, same math, same batches.

* ``bf16`` (with ``--bf16``, on a CPU with native bf16): ``merc-bench`` under bf16 autocast, fp32
  weights and Adam state — what ``training.precision=bf16`` trains.

The ratio padded / merc-bench is the speed-up measured here; the reference implementation's own
figures on this machine (about 120 s per MELD epoch, batch 8; 52 s per IEMOCAP epoch, batch 16)
come from the issue that set the target. Reports seconds per epoch, utterances per second and peak
RSS, and appends a Markdown row block to benchmarks/RESULTS.md with the machine facts.

    python benchmarks/sdt_epoch.py                   # both shapes, full epochs
    python benchmarks/sdt_epoch.py --batches 20      # quicker estimate from the first 20 batches
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import resource
import subprocess
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.trainer import Trainer, seed_everything
from machine import append_results, git_commit, machine_facts  # benchmarks/machine.py (this script's folder is on sys.path)
from merc_bench.model import FuserOutput

SHAPES = {
    "meld": {"train_dialogues": 1152, "batch": 8, "reference_seconds": 120.0},
    "iemocap": {"train_dialogues": 120, "batch": 16, "reference_seconds": 52.0},
}


def padded_block_forward(self, target, source, mask):
    """The reference's computation pattern: every layer over all B·L positions, explicit attention."""
    batch, length, hidden = target.shape
    target = F.dropout(target, self.dropout, self.training)
    source = target if source is None else F.dropout(source, self.dropout, self.training)
    heads, size = self.heads, hidden // self.heads
    query = self.query(target).view(batch, length, heads, size).transpose(1, 2) / math.sqrt(size)
    key, value = self.key_value(source).view(batch, length, 2, heads, size).permute(2, 0, 3, 1, 4)
    scores = torch.matmul(query, key.transpose(2, 3)).masked_fill(~mask[:, None, None, :], -1e10)
    attention = F.dropout(torch.softmax(scores, dim=-1), self.dropout, self.training)
    attended = torch.matmul(attention, value).transpose(1, 2).reshape(batch, length, hidden)
    hidden_states = target + F.dropout(self.output(attended), self.dropout, self.training)
    inner = F.gelu(self.feed_forward_in(self.norm(hidden_states)), approximate="tanh")
    inner = self.feed_forward_out(F.dropout(inner, self.dropout, self.training))
    return hidden_states + F.dropout(inner, self.dropout, self.training)


def padded_fuser_forward(self, *, mixed, encoded, mask):
    """SDT's fuser over the padded batch, with the identity gates as matrix products."""

    def gate(name, x):
        return x * torch.sigmoid(self.gates[name].weight(x))

    per_modality = {}
    for target in self.modalities:
        parts = [gate(f"{target}_to_{target}", mixed[target])]
        for source in self.modalities:
            if source != target:
                key = f"{source}_to_{target}"
                parts.append(gate(key, padded_block_forward(self.cross[key], encoded[target], encoded[source], mask)))
        per_modality[target] = self.reduce[target](torch.cat(parts, dim=-1))
    fused = self.fusion([per_modality[m] for m in self.modalities])
    return FuserOutput(fused=fused, per_modality=per_modality)


def make_padded(model) -> None:
    """Switch one model instance to the reference's computation pattern (same parameters)."""
    for mixer in model.mixers.values():
        mixer.block.forward = types.MethodType(padded_block_forward, mixer.block)
    model.fuser.forward = types.MethodType(padded_fuser_forward, model.fuser)


def time_interleaved(trainer: Trainer, batches, names=("merc-bench", "padded")) -> dict[str, tuple[float, int]]:
    """Train the variants on the same batches, alternating step by step so machine noise hits all alike."""
    variants = {}
    for name in names:
        seed_everything(0)
        model, distiller = trainer.build()
        if name == "padded":
            make_padded(model)
        parameters = [p for p in model.parameters() if p.requires_grad]
        options = {"foreach": False} if name == "padded" else {"fused": True}
        optimizer = torch.optim.Adam(parameters, lr=trainer.config.training.lr,
                                     weight_decay=trainer.config.training.weight_decay, **options)
        model.train()
        variants[name] = [model, distiller, optimizer, 0.0, 0]
    for batch in batches:
        for name, state in variants.items():
            model, distiller, optimizer = state[:3]
            started = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bf16")
            with autocast:  # the trainer's own autocast for training.precision=bf16
                total, _, _ = trainer.loss(model, distiller, batch)
            total.backward()
            optimizer.step()
            state[3] += time.perf_counter() - started
            state[4] += int(batch.mask.sum())
    return {name: (state[3], state[4]) for name, state in variants.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="meld,iemocap")
    parser.add_argument("--batches", type=int, default=0, help="time only the first N batches (0: whole epoch)")
    parser.add_argument("--no-record", action="store_true", help="do not append to benchmarks/RESULTS.md")
    parser.add_argument("--bf16", action="store_true", help="also time merc-bench under bf16 autocast")
    parser.add_argument("--row-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    shapes = args.shapes.split(",")
    if len(shapes) > 1:
        # One process per shape, so each peak RSS belongs to that shape alone.
        lines = []
        for shape in shapes:
            command = [sys.executable, __file__, "--shapes", shape, "--batches", str(args.batches), "--row-only",
                       *(["--bf16"] if args.bf16 else [])]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            print(done.stdout.rsplit("ROW ", 1)[0], end="", flush=True)
            lines.append(done.stdout.rsplit("ROW ", 1)[1].strip())
    else:
        lines = [measure(shapes[0], args.batches, args.bf16)]
    if args.row_only:
        print("ROW " + lines[0])
        return
    record(lines, args)


def measure(shape: str, batch_limit: int, bf16: bool = False) -> str:
    """Time one shape's epoch in every variant; return its Markdown table row."""
    registry = get_registry()
    facts = SHAPES[shape]
    prepared = prepare(registry, recipe="sdt", dataset="synthetic",
                       overrides=[f"dataset.shape={shape}", f"dataset.train_dialogues={facts['train_dialogues']}",
                                  "dataset.dev_dialogues=1", "dataset.test_dialogues=1",
                                  f"training.batch_size={facts['batch']}"])
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry,
                      device=torch.device("cpu"))
    batches = trainer._batches(prepared.corpus.train, np.random.default_rng(0))
    full = len(batches)
    if batch_limit:
        batches = batches[:batch_limit]
    scale = full / len(batches)
    results = {}
    names = ("merc-bench", "padded", "bf16") if bf16 else ("merc-bench", "padded")
    for variant, (seconds, utterances) in time_interleaved(trainer, batches, names).items():
        results[variant] = (seconds * scale, utterances / seconds)
        print(f"{shape:8} {variant:11} {seconds * scale:7.1f} s/epoch  {utterances / seconds:7.1f} utt/s", flush=True)
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ours, padded = results["merc-bench"], results["padded"]
    half = results.get("bf16")
    bf16_cells = f" {half[0]:.1f} | {padded[0] / half[0]:.2f}× |" if half else " – | – |"
    return (
        f"| {shape} | {facts['train_dialogues']} dialogues, batch {facts['batch']} | "
        f"{ours[0]:.1f} | {ours[1]:.0f} | {padded[0]:.1f} | {padded[0] / ours[0]:.2f}× |{bf16_cells} "
        f"{facts['reference_seconds']:.0f} | {facts['reference_seconds'] / ours[0]:.2f}× | {peak_rss:.0f} |"
    )


def record(lines: list[str], args: argparse.Namespace) -> None:
    commit = git_commit()
    block = "\n".join(
        [
            f"\n### SDT train epoch, CPU — {dt.date.today().isoformat()}, commit {commit}",
            f"Machine: {machine_facts()}. Command: `python benchmarks/sdt_epoch.py {' '.join(sys.argv[1:])}`"
            + (f" (first {args.batches} batches, scaled to an epoch)" if args.batches else ""),
            "",
            "| shape | data | merc-bench s/epoch | utt/s | padded (reference pattern) s/epoch | speed-up, same run |"
            " merc-bench bf16 s/epoch | bf16 speed-up vs padded, same run |"
            " reference code s/epoch (issue) | speed-up vs reference | peak RSS MiB |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
            *lines,
        ]
    )
    print(block)
    if not args.no_record:
        append_results(block)


if __name__ == "__main__":
    main()

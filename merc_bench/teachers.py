"""Frozen teachers for distillers that learn from a separately trained model (SUMMER's IKD, §III-D).

A distiller declares that it needs a teacher by having two methods (:class:`TeacherDistiller`):

* ``teacher_overrides(student, recipe) -> dict`` — the teacher's run configuration as whole slots
  replacing the student's (``student`` is the student's run-config dict; ``recipe(name)`` gives a
  registered recipe's values for the student's dataset family), e.g. IKD's SDT-on-text model with
  SDT's own schedule;
* ``attach_teacher(model, hidden_size)`` — receive the trained teacher before the student's
  optimiser is made (so parameters it adds, like an adapter, are trained).

The pipeline (:mod:`merc_bench.pipeline`) asks :func:`needs_teacher` and, per student seed, calls
:func:`prepare_teacher` before training the student; the generic trainer knows nothing of teachers.
A teacher is trained by the same trainer, on the student's split and seed, always under the clean
protocol: it trains on train and is kept at its best dev epoch, whatever the student's protocol
(a frozen teacher is chosen on dev, never on test). It is cached under
``$MERC_BENCH_CACHE/teachers`` by a fingerprint of (teacher configuration — its schedule included —,
its components' code, dataset content, protocol, seed), so a compare, an ablation and a tune share
it, and a changed ``distiller.teacher.epochs`` trains a new one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from collections.abc import Callable

import pydantic
import torch

from merc_bench.config import RunConfig
from merc_bench.data import Corpus
from merc_bench.errors import UserError
from merc_bench.model import build_context, build_model
from merc_bench.paths import cache_dir
from merc_bench.registry import Registry, describe_validation_error

__all__ = ["TeacherDistiller", "Teacher", "needs_teacher", "teacher_config", "teacher_fingerprint",
           "prepare_teacher"]


@runtime_checkable
class TeacherDistiller(Protocol):
    """What a distiller that learns from a frozen teacher provides."""

    def teacher_overrides(self, student: dict[str, Any],
                          recipe: Callable[[str], dict[str, Any]]) -> dict[str, Any]: ...

    def attach_teacher(self, teacher: torch.nn.Module, teacher_hidden_size: int) -> None: ...


@dataclass
class Teacher:
    """A trained (or reused) teacher for one student seed."""

    model: torch.nn.Module
    hidden_size: int
    status: str  # "trained" or "reused"
    fingerprint: str
    path: Path
    modalities: list[str] | None
    dev: dict[str, Any]
    test: dict[str, Any]
    seconds: float
    epochs: int  # the teacher's schedule
    selected_epoch: int  # its best dev epoch, the one kept

    def attach(self, model: torch.nn.Module, distiller: torch.nn.Module) -> None:
        """The trainer's ``setup`` step: hand the teacher to the student's distiller."""
        distiller.attach_teacher(self.model, self.hidden_size)

    def report(self) -> dict[str, Any]:
        """What results.json and the seed cache keep about it (the weights stay in the cache file)."""
        return {"status": self.status, "fingerprint": self.fingerprint, "path": str(self.path),
                "modalities": self.modalities, "dev": self.dev, "test": self.test, "epochs": self.epochs,
                "selected_epoch": self.selected_epoch}


def needs_teacher(config: RunConfig, registry: Registry) -> bool:
    """Whether the configuration's distiller learns from a separately trained teacher."""
    distiller = registry.get("distiller", config.distiller.name).obj
    return all(callable(getattr(distiller, name, None)) for name in ("teacher_overrides", "attach_teacher"))


def teacher_config(config: RunConfig, info: Any, registry: Registry) -> RunConfig:
    """The teacher's configuration: ``config`` with its distiller's teacher overrides, one seed,
    the clean protocol (selected on dev). Raises :class:`UserError` for a teacher that is not valid."""
    entry = registry.get("distiller", config.distiller.name)
    distiller = entry.build(entry.make_config(config.distiller.config), build_context(config, info))
    values = config.model_dump(mode="json")

    def recipe(name: str) -> dict[str, Any]:
        return registry.get("recipe", name).obj.resolve(info.family)

    values.update(distiller.teacher_overrides(values, recipe))  # whole slots, so no student option leaks in
    values["seeds"], values["protocol"] = 1, "clean"
    try:
        teacher = RunConfig.model_validate(values)
    except pydantic.ValidationError as error:
        raise UserError(describe_validation_error(error, f"the teacher of distiller {config.distiller.name!r}",
                                                  RunConfig)) from None
    values = teacher.model_dump(mode="json")
    for kind in ("encoder", "mixer", "fuser", "distiller"):  # canonical options: defaults spelled out
        slot = values[kind]
        slot["config"] = registry.get(kind, slot["name"]).make_config(
            slot["config"], where=f"the teacher's {kind}").model_dump(mode="json")
    return RunConfig.model_validate(values)


def teacher_fingerprint(teacher: RunConfig, corpus: Corpus, registry: Registry, protocol: str, seed: int) -> str:
    """Fingerprint of (teacher config, its components' code, dataset content, split/protocol, seed)."""
    from merc_bench.code_fingerprint import code_parts

    described = teacher.cache_description()
    described.pop("device")  # placement does not change the teacher's weights
    key = json.dumps({"teacher": described, "code": code_parts([teacher], registry), "dataset": corpus.fingerprint(),
                      "protocol": protocol, "seed": seed}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def prepare_teacher(config: RunConfig, corpus: Corpus, registry: Registry, seed: int, device: torch.device, *,
                    on_epoch: Callable[..., Any] | None = None) -> Teacher:
    """Train the student's teacher for ``seed`` once (same split, trainer and seed) or reuse its cache.

    ``corpus`` is the corpus the student trains on (already standardised when the student asks for
    it, so the teacher is not standardised twice); ``on_epoch`` receives the teacher's epochs.
    """
    from merc_bench.trainer import Trainer

    started = time.perf_counter()
    teacher = teacher_config(config, corpus.info, registry)
    fingerprint = teacher_fingerprint(teacher, corpus, registry, config.protocol, seed)
    path = cache_dir() / "teachers" / f"{fingerprint}.pt"
    if path.is_file():
        saved = torch.load(path, map_location=device, weights_only=True)
        model, _ = build_model(teacher, corpus.info, registry)
        model.load_state_dict(saved["state"])
        model.to(device)
        status, dev, test = "reused", json.loads(saved["dev"]), json.loads(saved["test"])
        selected = int(saved["selected_epoch"])
    else:
        training = teacher.training.model_copy(update={"standardize_features": False})
        trainer = Trainer(config=teacher.model_copy(update={"training": training}), corpus=corpus, registry=registry,
                          device=device, on_epoch=on_epoch, label="the teacher's ")
        result = trainer.fit(seed)
        model, dev, test, status = result.model, result.dev, result.test, "trained"
        selected = result.selected_epoch
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.tmp")
        torch.save({"state": model.state_dict(), "dev": json.dumps(dev), "test": json.dumps(test),
                    "selected_epoch": selected, "config": json.dumps(teacher.model_dump(mode="json"))}, temporary)
        os.replace(temporary, path)
    return Teacher(model=model, hidden_size=teacher.model.hidden_size, status=status, fingerprint=fingerprint,
                   path=path, modalities=teacher.modalities, dev=dev, test=test,
                   seconds=time.perf_counter() - started, epochs=teacher.training.epochs, selected_epoch=selected)

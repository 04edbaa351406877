"""``merc-bench data convert`` and ``data inspect``.

``convert`` reads a community feature file (SDT, MMGCN, DialogueRNN, COSMIC pickles, or a MultiEMO
folder; ``shared/docs/reference-models.md`` §1) through the safe unpickler
(:mod:`merc_bench.safe_pickle`) and the layout parser of the ``meld``/``iemocap`` datasets
(:mod:`merc_bench_datasets.layouts`), then writes merc-bench's pickle-free format with
:func:`merc_bench.feature_store.write_corpus` — atomically, so a failure leaves no partial folder —
recording the source files' names, sizes and sha256, the detected layout and every repair or
deviation from the documented sizes in the manifest's provenance. The family (MELD or IEMOCAP) is
what the layout detection says.

``inspect`` prints the same summary — dataset, family, classes, feature sizes, speakers, per split
dialogues / utterances / class counts, provenance — for a converted or prepared folder (from its
manifest, after verifying the whole folder as loading it would: :func:`merc_bench.feature_store.read_corpus`)
or for a feature file (parsed, nothing written).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from merc_bench.data import Corpus
from merc_bench.errors import UserError
from merc_bench.feature_store import (
    MANIFEST, SPLITS, is_feature_store, read_corpus, read_manifest, sha256_file, write_corpus,
)

__all__ = ["convert_command", "inspect_command", "corpus_summary"]


def _say(console: Any, text: str = "") -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def corpus_summary(corpus: Corpus) -> dict[str, Any]:
    """The parts of a manifest :func:`_print_summary` shows, computed from a loaded corpus."""
    info = corpus.info
    return {
        "dataset": {"name": info.name, "family": info.family, "classes": list(info.classes),
                    "feature_dims": dict(info.feature_dims), "num_speakers": info.num_speakers},
        "splits": {split: {"dialogues": len(corpus.split(split)),
                           "utterances": int(sum(len(d) for d in corpus.split(split))),
                           "class_counts": corpus.class_counts(split).tolist()} for split in SPLITS},
        "provenance": dict(corpus.provenance),
    }


def _print_summary(console: Any, summary: dict[str, Any], *, skip: tuple[str, ...] = ()) -> None:
    facts, provenance = summary["dataset"], dict(summary.get("provenance") or {})
    if "layout" in provenance:
        _say(console, f"layout      {provenance.pop('layout')} — {provenance.pop('layout_description', '')}")
    _say(console, f"dataset     {facts['name']} (family {facts['family']}), {facts['num_speakers']} speaker slots")
    _say(console, f"classes     {', '.join(facts['classes'])}")
    _say(console, "features    " + ", ".join(f"{m} {d}" for m, d in facts["feature_dims"].items()))
    _say(console, f"{'split':<8}{'dialogues':>10}{'utterances':>12}  class counts ({' '.join(facts['classes'])})")
    for split in SPLITS:
        entry = summary["splits"][split]
        counts = " ".join(str(c) for c in entry["class_counts"])
        _say(console, f"{split:<8}{entry['dialogues']:>10}{entry['utterances']:>12}  {counts}")
    notes = provenance.pop("warnings", None) or []
    if provenance:
        _say(console, "provenance")
        for key, value in provenance.items():
            if key in skip:
                continue
            if key == "source_files":
                for item in value:
                    _say(console, f"  source file: {item['name']}, {item['bytes']:,} bytes, sha256 {item['sha256']}")
            else:
                text = f"{value}"
                _say(console, f"  {key}: {text if len(text) <= 300 else text[:297] + '...'}")
    if notes:
        _say(console, "warnings")
        for note in notes:
            _say(console, f"  - {note}")


def _pick_source(source: Path) -> Path:
    """The file or MultiEMO folder to convert: ``source`` itself, or the one pickle a folder holds."""
    from merc_bench_datasets.layouts import MULTIEMO_FILES, is_multiemo_folder

    if not source.exists():
        raise UserError(f"{str(source)!r} does not exist; give a feature file (.pkl) or a MultiEMO folder.")
    if is_feature_store(source):
        raise UserError(f"{str(source)!r} is already a converted folder ({MANIFEST}); nothing to convert. "
                        f"`merc-bench data inspect {source}` shows what it holds.")
    if source.is_file() or is_multiemo_folder(source):
        return source
    pickles = sorted(source.glob("*.pkl"))
    if len(pickles) == 1:
        return pickles[0]
    if not pickles:
        raise UserError(f"{str(source)!r} holds no .pkl file and is not a MultiEMO folder "
                        f"({', '.join(MULTIEMO_FILES)}); give a feature file instead.")
    raise UserError(f"{str(source)!r} holds several pickles ({', '.join(p.name for p in pickles)}); "
                    "name the one to convert.")


def convert_command(*, source: Path, target: Path, nan_policy: str, console: Any) -> None:
    """Parse ``source`` (a feature pickle or MultiEMO folder) and write it to ``target`` in the safe format."""
    from merc_bench_datasets.layouts import read_source, source_files

    source, target = Path(source), Path(target)
    if nan_policy not in ("refuse", "zero"):
        raise UserError(f"--nan-policy {nan_policy!r} is not known; use refuse (default) or zero.")
    # Fail before parsing a large file, not after.
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"--to {str(target)!r} already exists and is not an empty folder; choose a new folder "
                        "or remove it first.")
    chosen = _pick_source(source)
    started = time.perf_counter()
    corpus = read_source(chosen, nan_policy=nan_policy)
    parsed = time.perf_counter() - started
    files = [{"name": f.name, "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in source_files(chosen)]
    provenance = {"source": str(chosen.resolve()), "source_files": files, "converted_by": "merc-bench data convert"}
    manifest = write_corpus(corpus, target, provenance=provenance)
    summary = corpus_summary(corpus)
    summary["provenance"].update(provenance)
    _print_summary(console, summary)
    _say(console, f"parsed in {parsed:.1f} s; wrote {manifest.parent} ({', '.join(f'{s}.npz' for s in SPLITS)}, "
                  f"{MANIFEST})")


def _inspect_store(folder: Path, console: Any) -> None:
    # Verified in full (schema, confinement, sha256, arrays against the manifest, corpus checks)
    # before anything from it is printed: a folder that would not load says so here too.
    manifest = read_manifest(folder)
    read_corpus(folder)
    _say(console, f"converted folder {folder} ({manifest['format']} v{manifest['format_version']}, created "
                  f"{manifest.get('created') or '?'}, merc-bench {manifest.get('merc_bench_version') or '?'})")
    _print_summary(console, manifest)
    _say(console, "sha256      " + ", ".join(f"{manifest['splits'][split]['file']} ok" for split in SPLITS))
    _say(console, "verified    manifest schema, files inside the folder, arrays against the manifest, labels, "
                  "speakers and features")


def _inspect_source(path: Path, console: Any) -> None:
    from merc_bench_datasets.layouts import read_source

    # Parse with NaN repair so the summary can report them instead of stopping at the first count.
    corpus = read_source(path, nan_policy="zero")
    summary = corpus_summary(corpus)
    replaced = summary["provenance"].pop("non_finite_replaced", None)
    summary["provenance"].pop("nan_policy", None)
    _say(console, f"feature file {path} (parsed; nothing written)")
    _print_summary(console, summary)
    if replaced:
        _say(console, "non-finite  " + ", ".join(f"{m} {n}" for m, n in replaced.items())
             + " NaN/inf values: loading refuses them unless nan_policy is zero (`--nan-policy zero`)")


def inspect_command(*, path: Path, console: Any) -> None:
    """Print what a converted/prepared folder, a feature pickle or a MultiEMO folder holds."""
    from merc_bench_datasets.layouts import is_multiemo_folder

    path = Path(path)
    if not path.exists():
        raise UserError(f"{str(path)!r} does not exist; give a feature file, a MultiEMO folder or a converted folder.")
    if is_feature_store(path):
        _inspect_store(path, console)
        return
    if path.is_file() or is_multiemo_folder(path):
        _inspect_source(path, console)
        return
    pickles = sorted(path.glob("*.pkl"))
    if not pickles:
        raise UserError(f"{str(path)!r} is a folder with no {MANIFEST}, no .pkl file and not a MultiEMO folder; "
                        "nothing to inspect.")
    failures = []
    for pickle_path in pickles:
        try:
            _inspect_source(pickle_path, console)
        except UserError as error:
            failures.append(f"{pickle_path.name}: {error}")
            _say(console, f"skipped {pickle_path.name}: {error}")
        _say(console)
    if len(failures) == len(pickles):
        raise UserError(f"no supported feature file in {str(path)!r}: " + " ".join(failures))

"""``merc-bench data convert`` and ``data inspect``.

``convert`` reads a feature file or folder in a format some plugin declares through the
``merc_bench_data_sources`` hook (:class:`merc_bench.data_sources.FeatureFormat`; the built-in
datasets plugin declares the community's SDT, MMGCN, DialogueRNN and COSMIC pickles and MultiEMO
folders, ``shared/docs/reference-models.md`` §1, read through the safe unpickler), then writes
merc-bench's pickle-free format with :func:`merc_bench.feature_store.write_corpus` — atomically, so a
failure leaves no partial folder — recording the source files' names, sizes and sha256, the detected
layout and every repair or deviation from the documented sizes in the manifest's provenance. The
family is what the format's reader says.

``inspect`` prints the same summary — dataset, family, classes, feature sizes, speakers, per split
dialogues / utterances / class counts, provenance — for a converted or prepared folder (from its
manifest, after verifying the whole folder as loading it would: :func:`merc_bench.feature_store.read_corpus`)
or for a feature file (parsed, nothing written).
"""

from __future__ import annotations

import codecs
import csv
import time
from pathlib import Path
from typing import Any

from merc_bench.data import Corpus
from merc_bench.data_sources import DataSources, FeatureFormat, data_sources
from merc_bench.errors import UserError, preview
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


def _require_formats(sources: DataSources, command: str) -> DataSources:
    """``sources``, unless no loaded plugin declares a format (blocked, or autoload off)."""
    if not sources.formats:
        raise UserError(f"`merc-bench data {command}` knows no feature-file format: no loaded plugin declares one "
                        "(merc_bench_data_sources). The built-in ones come with the datasets plugin; check "
                        "MERC_BENCH_BLOCK_PLUGINS and MERC_BENCH_DISABLE_PLUGIN_AUTOLOAD.")
    return sources


def _file_kinds(sources: DataSources) -> str:
    """E.g. ``.pkl`` — the file-name endings some format reads."""
    return " or ".join(sources.file_suffixes())


def _folder_kinds(sources: DataSources, *, files: bool) -> list[str]:
    """E.g. ``a MultiEMO folder (Speakers.pkl, ...)`` for each folder format."""
    return [f"a {f.folder_kind}" + (f" ({', '.join(f.folder_files)})" if files else "")
            for f in sources.folder_formats()]


def _files_in(folder: Path, sources: DataSources) -> list[Path]:
    """The files in ``folder`` whose names end in a suffix some format reads, sorted."""
    return sorted({path for suffix in sources.file_suffixes() for path in folder.glob(f"*{suffix}")})


def _source_format(path: Path, sources: DataSources) -> FeatureFormat | None:
    """The format reading ``path``: a whole-folder format, or for a file the one its name selects."""
    if path.is_dir():
        return sources.format_of_folder(path)
    return sources.format_of_file(path)


def _pick_source(source: Path, sources: DataSources) -> tuple[Path, FeatureFormat]:
    """The file or source folder to convert: ``source`` itself, or the one feature file a folder holds."""
    if not source.exists():
        kinds = [f"a feature file ({', '.join(sources.file_suffixes())})", *_folder_kinds(sources, files=False)]
        raise UserError(f"{str(source)!r} does not exist; give {' or '.join(kinds)}.")
    if is_feature_store(source):
        raise UserError(f"{str(source)!r} is already a converted folder ({MANIFEST}); nothing to convert. "
                        f"`merc-bench data inspect {source}` shows what it holds.")
    chosen = source if source.is_file() or sources.format_of_folder(source) else None
    if chosen is None:
        found = _files_in(source, sources)
        if len(found) > 1:
            raise UserError(f"{str(source)!r} holds several pickles ({', '.join(p.name for p in found)}); "
                            "name the one to convert.")
        if not found:
            folders = "".join(f" and is not {kind}" for kind in _folder_kinds(sources, files=True))
            raise UserError(f"{str(source)!r} holds no {_file_kinds(sources)} file{folders}; give a feature file "
                            "instead.")
        chosen = found[0]
    return chosen, _readable(chosen, sources)


def _readable(path: Path, sources: DataSources) -> FeatureFormat:
    found = _source_format(path, sources)
    if path.is_file():
        _refuse_text_table(path, found)
    if found is None:
        formats = ", ".join(f"{f.name} ({f.description})" for f in sources.formats) or "none"
        raise UserError(f"{str(path)!r} is in no format a plugin declares for `merc-bench data convert`; the "
                        f"declared formats: {formats}.")
    return found


def _refuse_text_table(path: Path, found: FeatureFormat | None) -> None:
    """A CSV given where a feature file belongs: say which dataset reads it, not that it is a broken pickle
    (the pickle reader also takes files whose ending no format claims, so a CSV would otherwise reach it)."""
    if found is not None and found.matched_suffix(path):
        return  # a format claims this file's ending (.pkl, a plugin's .toyfeat or .csv): it reads the file
    header = _text_table_header(path)
    if header is not None:
        raise UserError(f"{str(path)!r} is a CSV file (text, header {preview(header, 60)}), not a feature file: "
                        "`merc-bench data inspect` and `data convert` read feature files (pickles) and converted "
                        "folders. A corpus as CSV files is read by the conversation-csv dataset: write its columns "
                        "and split files into a corpus.toml (`merc-bench list dataset conversation-csv` lists the "
                        "options) and check it with `merc-bench validate RECIPE --dataset conversation-csv "
                        "--dataset-config corpus.toml`.")


def _text_table_header(path: Path) -> str | None:
    """The first line of ``path`` when the file starts as delimited text (a CSV or TSV header), else None."""
    try:
        with open(path, "rb") as stream:
            head = stream.read(64 * 1024).removeprefix(codecs.BOM_UTF8)
    except OSError:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not UTF-8 text (a pickle starts with byte 0x80)
            return None
        text = head[:error.start].decode("utf-8")  # a character cut by the 64 KiB read
    line = text.splitlines()[0] if text.splitlines() else ""
    if "\x00" in text or any(ord(c) < 32 and c != "\t" for c in line) or line.lstrip().startswith(("{", "[", "<")):
        return None  # binary, or JSON / XML / HTML rather than a header of column names
    for delimiter in (",", "\t", ";", "|"):
        fields = next(csv.reader([line], delimiter=delimiter))
        if sum(1 for field in fields if field.strip()) >= 2:  # pandas writes an unnamed index column first
            return line
    return None


def convert_command(*, source: Path, target: Path, nan_policy: str, console: Any) -> None:
    """Parse ``source`` (a feature file or source folder) and write it to ``target`` in the safe format."""
    source, target = Path(source), Path(target)
    if nan_policy not in ("refuse", "zero"):
        raise UserError(f"--nan-policy {nan_policy!r} is not known; use refuse (default) or zero.")
    # Fail before parsing a large file, not after.
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(f"--to {str(target)!r} already exists and is not an empty folder; choose a new folder "
                        "or remove it first.")
    chosen, layout = _pick_source(source, _require_formats(data_sources(), "convert"))
    started = time.perf_counter()
    corpus = layout.read(chosen, nan_policy=nan_policy)
    parsed = time.perf_counter() - started
    files = [{"name": f.name, "bytes": f.stat().st_size, "sha256": sha256_file(f)} for f in layout.files(chosen)]
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


def _inspect_source(path: Path, layout: FeatureFormat, console: Any) -> None:
    # Parse with NaN repair so the summary can report them instead of stopping at the first count.
    corpus = layout.read(path, nan_policy="zero")
    summary = corpus_summary(corpus)
    replaced = summary["provenance"].pop("non_finite_replaced", None)
    summary["provenance"].pop("nan_policy", None)
    _say(console, f"feature file {path} (parsed; nothing written)")
    _print_summary(console, summary)
    if replaced:
        _say(console, "non-finite  " + ", ".join(f"{m} {n}" for m, n in replaced.items())
             + " NaN/inf values: loading refuses them unless nan_policy is zero (`--nan-policy zero`)")


def _inspect_each(folder: Path, files: list[Path], sources: DataSources, console: Any) -> None:
    """Inspect every feature file in ``folder``; fail only if none could be read."""
    failures = []
    for path in files:
        try:
            _inspect_source(path, _readable(path, sources), console)
        except UserError as error:
            failures.append(f"{path.name}: {error}")
            _say(console, f"skipped {path.name}: {error}")
        _say(console)
    if len(failures) == len(files):
        raise UserError(f"no supported feature file in {str(folder)!r}: " + " ".join(failures))


def inspect_command(*, path: Path, console: Any) -> None:
    """Print what a converted/prepared folder, a feature file or a source folder (MultiEMO) holds."""
    path = Path(path)
    sources = data_sources()
    if not path.exists():
        kinds = ["a feature file", *_folder_kinds(sources, files=False)]
        raise UserError(f"{str(path)!r} does not exist; give {', '.join(kinds)} or a converted folder.")
    if is_feature_store(path):
        _inspect_store(path, console)
        return
    _require_formats(sources, "inspect")  # a converted folder above needs none
    if path.is_file() or sources.format_of_folder(path):
        _inspect_source(path, _readable(path, sources), console)
        return
    files = _files_in(path, sources)
    if not files:
        folders = "".join(f" and not {kind}" for kind in _folder_kinds(sources, files=False))
        raise UserError(f"{str(path)!r} is a folder with no {MANIFEST}, no {_file_kinds(sources)} file{folders}; "
                        "nothing to inspect.")
    _inspect_each(path, files, sources, console)

"""``merc-bench data prepare meld``: MELD's raw annotation CSVs, fetched, verified and parsed.

The three CSVs (Poria et al., ACL 2019; repository declare-lab/MELD, folder ``data/MELD/``) are
downloaded from GitHub at a fixed commit — or copied from a local folder with ``--from`` — and
checked against the sha256 sums embedded below (the values of shared/data/SHA256SUMS for that
commit; nothing outside the package is read at run time). A file that differs is refused: the error
names it, the expected and the actual hash, and nothing is left in the target folder. The CSVs are
parsed by :mod:`merc_bench_datasets.meld_annotations` (dialogue ids with the SDT/MMGCN offsets,
utterances in ``Utterance_ID`` order, speakers by first appearance, MELD's label order) and compared
with the published counts (a difference is a warning).

This module is the MELD half of ``data prepare``; the core (:mod:`merc_bench.prepare`) does the rest
for any declared dataset — the target-folder rules, the text features and their cache, the manifest
and the atomic write. It is declared through the ``merc_bench_data_sources`` hook
(:mod:`merc_bench_datasets.data_sources`).
"""

from __future__ import annotations

import dataclasses
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from merc_bench.data_sources import PrepareRequest, RawCorpus
from merc_bench.errors import UserError
from merc_bench.feature_store import sha256_file
from merc_bench_datasets.meld_annotations import (
    ID_OFFSETS, MAX_SPEAKERS, MELD_CLASSES, SPLIT_FILES, MeldDialogue, check_counts, read_split,
)

__all__ = ["MELD_COMMIT", "MELD_BASE_URL", "MELD_SHA256", "check", "read", "read_file"]

#: The declare-lab/MELD commit the checksums belong to (shared/data/README.md).
MELD_COMMIT = "2d2011b409d3ca2d7e94460cd007d434b1d0a102"
MELD_BASE_URL = f"https://raw.githubusercontent.com/declare-lab/MELD/{MELD_COMMIT}/data/MELD/"
#: sha256 of the official CSVs at MELD_COMMIT (shared/data/SHA256SUMS).
MELD_SHA256 = {
    "train_sent_emo.csv": "d2fa2d6529cf03cac2989efec05c9b27d8fd2f4c8fc5974c7ae88aa537fa02db",
    "dev_sent_emo.csv": "2e89c6f8aa182d6f62f8c6331aece905ac7273ca4999660bfb5213e1d0370c1c",
    "test_sent_emo.csv": "8d37103938f7067600839fe29d5a114a6cd1bcdafb75bec101e06464c5006888",
}
# The three CSVs are about 1.6 MB together; a response far larger is not a MELD CSV.
_MAX_DOWNLOAD_BYTES = 64 << 20
_DOWNLOAD_TIMEOUT_S = 60


def _base_url(request: PrepareRequest) -> str:
    base_url = request.url or MELD_BASE_URL
    # urljoin would otherwise replace the last path segment
    return base_url if base_url.endswith("/") else base_url + "/"


def check(request: PrepareRequest) -> None:
    """Refuse contradictory or unusable ``--from``/``--url`` before anything is fetched."""
    if request.source is not None and request.url is not None:
        raise UserError("--from and --url are alternatives: --from copies the CSVs from a folder, --url downloads "
                        "them from another base URL; give one of them.")
    if request.source is not None and not Path(request.source).is_dir():
        raise UserError(f"--from {str(request.source)!r} is not a folder; give the folder that holds "
                        f"{', '.join(MELD_SHA256)}.")
    base_url = request.url or MELD_BASE_URL
    if urllib.parse.urlparse(base_url).scheme not in ("http", "https", "file"):
        raise UserError(f"--url {base_url!r} is not an http(s):// or file:// URL.")


# -- obtaining the raw files ------------------------------------------------------------------------

def _download(url: str, destination: Path) -> None:
    from merc_bench import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"merc-bench/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=_DOWNLOAD_TIMEOUT_S) as response, open(destination, "wb") as out:
            size = 0
            while block := response.read(1 << 16):
                size += len(block)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise UserError(f"{url} is larger than {_MAX_DOWNLOAD_BYTES >> 20} MB, far more than a MELD CSV; "
                                    "check --url.")
                out.write(block)
    except urllib.error.HTTPError as error:
        raise UserError(f"downloading {url} failed: HTTP {error.code} {error.reason}. Check --url, or download the "
                        "three CSVs yourself and pass their folder with --from.") from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        reason = getattr(error, "reason", error)
        raise UserError(f"downloading {url} failed: {reason}. Without network access, copy the three CSVs "
                        "(train/dev/test_sent_emo.csv) to a folder and pass it with --from.") from None


def _obtain(name: str, *, source: Path | None, base_url: str, destination: Path) -> str:
    """Put the raw file ``name`` at ``destination``; return where it came from."""
    if source is not None:
        origin = source / name
        if not origin.is_file():
            raise UserError(f"{str(origin)!r} does not exist: --from must be a folder holding "
                            f"{', '.join(MELD_SHA256)} (MELD's data/MELD/ files).")
        shutil.copyfile(origin, destination)
        return str(origin.resolve())
    url = urllib.parse.urljoin(base_url, name)
    _download(url, destination)
    return url


def _verified(name: str, request: PrepareRequest, raw: Path) -> dict[str, Any]:
    """Fetch ``name`` into ``raw`` and check its sha256; return its provenance entry."""
    source = Path(request.source) if request.source is not None else None
    origin = _obtain(name, source=source, base_url=_base_url(request), destination=raw / name)
    actual, expected = sha256_file(raw / name), MELD_SHA256[name]
    if actual != expected:
        raise UserError(
            f"{name} from {origin} has sha256 {actual}, but the official file (declare-lab/MELD commit "
            f"{MELD_COMMIT[:7]}) has {expected}: it was modified, damaged or is another release. Nothing "
            f"was written to {str(request.target)!r}."
        )
    return {"origin": origin, "sha256": actual, "bytes": (raw / name).stat().st_size}


# -- the source -------------------------------------------------------------------------------------

def read(request: PrepareRequest, raw: Path) -> RawCorpus:
    """Fetch, verify and parse the three CSVs into ``raw``; the dialogues carry the texts to embed."""
    files: dict[str, dict[str, Any]] = {}
    parsed = {}
    decoding = {}
    for split, name in SPLIT_FILES.items():
        files[name] = _verified(name, request, raw)
        dialogues, decoded = read_split(raw / name, split)
        decoding[name] = {"encoding": decoded.encoding, "mojibake_fixed": decoded.mojibake_fixed}
        parsed[split] = dialogues
        request.console.print(f"{name}: sha256 ok, {len(dialogues)} dialogues, {sum(len(d) for d in dialogues)} "
                              f"utterances", markup=False, highlight=False)
    provenance = {
        "source": str(Path(request.source).resolve()) if request.source is not None else _base_url(request),
        "source_kind": "folder" if request.source is not None else "download",
        "meld_commit": MELD_COMMIT,
        "files": files,
        "decoding": decoding,
        "text_handling": "utterances kept as written (UTF-8; C1 mojibake mapped to cp1252 punctuation)",
        "dialogue_ids": f"train Dialogue_ID, dev {ID_OFFSETS['dev']} + Dialogue_ID, "
                        f"test {ID_OFFSETS['test']} + Dialogue_ID",
        "speakers": f"order of first appearance within each dialogue (at most {MAX_SPEAKERS})",
    }
    return RawCorpus(
        name="meld", family="meld", classes=MELD_CLASSES, num_speakers=MAX_SPEAKERS,
        description="MELD (Poria et al., ACL 2019) from its annotation CSVs",
        splits=parsed, source_sha256={split: files[name]["sha256"] for split, name in SPLIT_FILES.items()},
        provenance=provenance, warnings=check_counts(parsed),
        next_step="merc-bench run sdt --dataset meld --data-dir {target} --modalities {modalities}",
    )


def read_file(path: Path) -> list[MeldDialogue]:
    """The dialogues of one CSV in MELD's layout (``merc-bench predict --input``), decoded and parsed as
    :func:`read` parses a split; dialogue ids are the file's own ``Dialogue_ID`` values."""
    dialogues, _ = read_split(Path(path), "test")
    return [dataclasses.replace(dialogue, id=str(dialogue.dialogue_id)) for dialogue in dialogues]

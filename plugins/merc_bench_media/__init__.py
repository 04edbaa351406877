"""Audio and visual feature extractors (registry kinds ``audio_encoder`` and ``visual_encoder``).

Used by ``merc-bench data prepare NAME --media-dir PATH`` and the ``conversation-csv`` dataset's
``media_column`` (:mod:`merc_bench.media_features` decodes the files with ffmpeg and calls them):

* ``is10`` — the INTERSPEECH 2010 Paralinguistic Challenge set, 1582 functionals, through the
  ``opensmile`` package (optional extra ``audio``; research-only licence), :mod:`merc_bench_media.is10`;
* ``egemaps`` — eGeMAPS v02, 88 functionals, the same way, :mod:`merc_bench_media.egemaps`;
* ``frame-stats`` — colour, layout and motion statistics of sampled frames (no face, no expression:
  a placeholder baseline), :mod:`merc_bench_media.frame_stats`.

The modules are imported here without importing opensmile, so listing components stays fast and works
without the extra. Face and speech models (wav2vec2, a face-expression network) are plugged in by
third-party packages that register components of the same kinds.
"""

from __future__ import annotations

from merc_bench import hookimpl
from merc_bench_media import egemaps, frame_stats, is10

__all__ = ["merc_bench_register"]


@hookimpl
def merc_bench_register(registry) -> None:
    registry.register_declared(is10, egemaps, frame_stats)

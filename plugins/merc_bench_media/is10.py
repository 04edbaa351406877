"""The ``is10`` audio encoder: INTERSPEECH 2010 Paralinguistic Challenge functionals, 1582 per utterance.

Features: the IS10 paralinguistic set (Schuller, Steidl, Batliner, Burkhardt, Devillers, Müller and
Narayanan, "The INTERSPEECH 2010 Paralinguistic Challenge", Interspeech 2010): 34 low-level
descriptors (loudness, MFCC 0–14, log Mel bands 0–7, LSP frequencies 0–7, F0 envelope, voicing
probability) and their deltas under 21 functionals (1428), 4 pitch-based descriptors (F0, jitter
local and DDP, shimmer) and their deltas under 19 functionals (152), plus the number of pitch onsets
and the duration: 1582 values per utterance. This is the audio feature the community's IEMOCAP files carry
(SDT and MMGCN: ``videoAudio`` 1582-d, shared/docs/reference-models.md §1), so a model sees the same
kind of input as there; the values are not those files' (other extraction, other segmentation).

Extraction: openSMILE through the PyPI package ``opensmile`` (feature set ``IS10``, its bundled
``IS10_paraling_compat.conf``), on mono 16 kHz audio that ffmpeg decodes from the media file. Values
are the raw functionals, not normalised (models normalise, or the trainer's features are used as they
come). Needs the optional extra ``audio`` (research-only licence, see
:mod:`merc_bench_media.smile_functionals`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from merc_bench import component
from merc_bench_media import smile_functionals

__all__ = ["IS10Config", "IS10Encoder"]

_DIMENSION = 1582


class IS10Config(BaseModel):
    """Options of the ``is10`` audio encoder (none: the feature set is fixed by the challenge)."""

    model_config = ConfigDict(extra="forbid")


@component(
    "audio_encoder", "is10", config=IS10Config,
    description="INTERSPEECH 2010 paralinguistic functionals (1582-d) through opensmile; needs the `audio` extra "
    "(research-only licence)",
    paper="Schuller et al., Interspeech 2010 (Paralinguistic Challenge)",
)
class IS10Encoder:
    """IS10 paralinguistic functionals (1582-d) of an utterance's audio, through opensmile."""

    name = "is10"
    dimension = _DIMENSION
    sample_rate = smile_functionals.SAMPLE_RATE

    def __init__(self, config: IS10Config) -> None:
        self.version = (f"IS10_paraling_compat (opensmile {smile_functionals.opensmile_version(self.name)}, "
                        f"clips padded to {smile_functionals.MIN_SECONDS:g} s)")
        self._smile: Any = None  # loaded on first use

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        """Functionals of each clip (mono float32 at 16 kHz): float32 (len(clips), 1582)."""
        if self._smile is None:
            self._smile = smile_functionals.load("IS10", self.name)
        return smile_functionals.functionals(self._smile, clips, _DIMENSION)

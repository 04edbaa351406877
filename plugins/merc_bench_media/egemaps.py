"""The ``egemaps`` audio encoder: extended Geneva Minimalistic Acoustic Parameter Set, 88 per utterance.

Features: eGeMAPS v02 (Eyben, Scherer, Schuller, Sundberg, André, Busso, Devillers, Epps, Laukka,
Narayanan and Truong, "The Geneva Minimalistic Acoustic Parameter Set (GeMAPS) for Voice Research
and Affective Computing", IEEE Transactions on Affective Computing 7(2), 2016): 25 low-level
descriptors of frequency (pitch, jitter, formants), energy (shimmer, loudness, HNR) and spectral
balance (alpha ratio, Hammarberg index, slopes, MFCC 1–4, spectral flux), summarised by arithmetic
mean and coefficient of variation and a few percentile and temporal functionals: 88 values per
utterance. Chosen by its authors as a small, interpretable set for affect; far smaller than IS10.

Extraction: openSMILE through the PyPI package ``opensmile`` (feature set ``eGeMAPSv02``) on mono
16 kHz audio that ffmpeg decodes from the media file; raw, unnormalised functionals. Needs the
optional extra ``audio`` (research-only licence, see :mod:`merc_bench_media.smile_functionals`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from merc_bench import component
from merc_bench_media import smile_functionals

__all__ = ["EGeMAPSConfig", "EGeMAPSEncoder"]

_DIMENSION = 88


class EGeMAPSConfig(BaseModel):
    """Options of the ``egemaps`` audio encoder (none: the parameter set is fixed by its paper)."""

    model_config = ConfigDict(extra="forbid")


@component(
    "audio_encoder", "egemaps", config=EGeMAPSConfig,
    description="eGeMAPS v02 functionals (88-d) through opensmile; needs the `audio` extra (research-only licence)",
    paper="Eyben et al., IEEE TAC 2016 (GeMAPS/eGeMAPS)",
)
class EGeMAPSEncoder:
    """eGeMAPS v02 functionals (88-d) of an utterance's audio, through opensmile."""

    name = "egemaps"
    dimension = _DIMENSION
    sample_rate = smile_functionals.SAMPLE_RATE

    def __init__(self, config: EGeMAPSConfig) -> None:
        self.version = (f"eGeMAPSv02 (opensmile {smile_functionals.opensmile_version(self.name)}, "
                        f"clips padded to {smile_functionals.MIN_SECONDS:g} s)")
        self._smile: Any = None  # loaded on first use

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        """Functionals of each clip (mono float32 at 16 kHz): float32 (len(clips), 88)."""
        if self._smile is None:
            self._smile = smile_functionals.load("eGeMAPSv02", self.name)
        return smile_functionals.functionals(self._smile, clips, _DIMENSION)

"""What the two openSMILE audio encoders share: loading the ``opensmile`` package and running one
feature set's functionals on a clip.

``opensmile`` (audEERING, PyPI) bundles the openSMILE C++ library and its configuration files, so
nothing is downloaded at run time. Its licence (the audEERING research licence) allows research and
educational use only, not commercial use; that is why it is the optional extra ``audio``
(``pip install -e ".[audio]"``) and never a dependency of merc-bench itself.

Clips shorter than ``MIN_SECONDS`` are padded with silence at the end before extraction: openSMILE
fills every functional with NaN below about 0.1 s (its 25 ms frames and delta windows need a few
frames), and MELD has utterances of a few hundredths of a second. The padding is part of each
encoder's ``version``, so vectors made without it are never mixed in from a cache.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import warnings
from typing import Any

import numpy as np

from merc_bench import UserError

__all__ = ["MIN_SECONDS", "SAMPLE_RATE", "missing_extra", "opensmile_version", "functionals"]

#: openSMILE's feature sets are defined for 16 kHz input (the challenge data's rate).
SAMPLE_RATE = 16_000
MIN_SECONDS = 0.2


def missing_extra(name: str) -> UserError:
    return UserError(
        f"the audio encoder {name!r} needs the optional package opensmile, which is not installed. Install "
        "merc-bench's audio extra with `pip install -e \".[audio]\"` (from the merc-bench checkout, with "
        "-c constraints.txt to keep torch pinned); note that opensmile's licence (audEERING) permits research "
        "and educational use only. Or choose another registered audio encoder (`merc-bench list audio_encoder`).")


def opensmile_version(name: str) -> str:
    """The installed opensmile release (a UserError naming the extra when it is missing)."""
    if importlib.util.find_spec("opensmile") is None:
        raise missing_extra(name)
    return importlib.metadata.version("opensmile")


def load(feature_set: str, name: str) -> Any:
    """An ``opensmile.Smile`` computing ``feature_set``'s functionals (one row per clip)."""
    try:
        import opensmile
    except ImportError:
        raise missing_extra(name) from None
    return opensmile.Smile(feature_set=opensmile.FeatureSet[feature_set],
                           feature_level=opensmile.FeatureLevel.Functionals)


def functionals(smile: Any, clips: list[np.ndarray], dimension: int) -> np.ndarray:
    """One row of functionals per clip (mono float32 at 16 kHz): (len(clips), dimension) float32."""
    rows = np.zeros((len(clips), dimension), dtype=np.float32)
    minimum = int(MIN_SECONDS * SAMPLE_RATE)
    for index, clip in enumerate(clips):
        clip = np.asarray(clip, dtype=np.float32).reshape(-1)  # (S,)
        if clip.size < minimum:
            clip = np.concatenate([clip, np.zeros(minimum - clip.size, np.float32)])
        with warnings.catch_warnings():  # "Segment too short" cannot happen after the padding; others pass
            warnings.simplefilter("ignore", UserWarning)
            frame = smile.process_signal(clip, SAMPLE_RATE)
        values = frame.to_numpy(dtype=np.float32)  # (1, dimension)
        if values.shape != (1, dimension):
            raise RuntimeError(f"opensmile returned {values.shape[1]} functionals, expected {dimension}")
        rows[index] = values[0]
    return rows

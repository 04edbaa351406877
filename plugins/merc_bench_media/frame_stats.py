"""The ``frame-stats`` visual encoder: colour, layout and motion statistics of sampled frames (50-d).

What it is: a placeholder baseline that runs offline with no model and no download. The video is
sampled at ``frame_rate`` frames per second and scaled to ``frame_size`` × ``frame_size`` pixels by
ffmpeg; from those frames (T, S, S, 3) it computes

* the mean and standard deviation of each RGB channel over all pixels and frames (6);
* a normalised 8-bin histogram per RGB channel over all pixels and frames (24);
* the mean luminance (ITU-R BT.601 weights) of each cell of a 4 × 4 grid, averaged over frames (16);
* motion energy: the mean absolute luminance difference between consecutive frames, summarised by
  its mean, standard deviation and maximum over time (3; zeros for a single frame);
* the logarithm of the number of frames plus one, i.e. the clip's duration (1).

All values lie in [0, 1] except the last (log(1 + T)).

How weak it is: it carries **no face and no facial-expression information** — it cannot tell who is
in the picture, whether anyone smiles or frowns, or where a face is. It describes lighting, colour,
scene layout and how much the picture moves, which in a TV series mostly identifies the set and the
camera work. It is far weaker than the face-based visual features of the MERC literature (DenseFace
/ DenseNet facial-expression features, 342-d in the SDT and MMGCN files; OpenFace action units;
face-crop CNNs) and must not be reported as a visual-modality result comparable with them. It exists
so the visual path of ``data prepare --media-dir`` runs end to end; real visual features come from a
third-party ``visual_encoder`` (a face detector plus an expression model) registered by a plugin.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from merc_bench import component

__all__ = ["FrameStatsConfig", "FrameStatsEncoder"]

_BINS = 8
_GRID = 4
_DIMENSION = 6 + 3 * _BINS + _GRID * _GRID + 3 + 1  # 50
_LUMA = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601


class FrameStatsConfig(BaseModel):
    """Options of the ``frame-stats`` visual encoder: how frames are sampled."""

    model_config = ConfigDict(extra="forbid")

    frame_rate: float = Field(2.0, ge=0.25, le=30.0, description="frames sampled per second of video")
    frame_size: int = Field(32, ge=8, le=512, description="each frame is scaled to this many pixels square "
                                                          "(a multiple of 4 keeps the grid cells equal)")


@component(
    "visual_encoder", "frame-stats", config=FrameStatsConfig,
    description="colour, 4x4 layout and motion statistics of sampled frames (50-d); NO face or expression "
    "information: a placeholder baseline far weaker than face-based features",
)
class FrameStatsEncoder:
    """Colour histograms, a 4×4 luminance layout and motion energy of sampled frames (50-d, no faces)."""

    name = "frame-stats"
    dimension = _DIMENSION
    version = "1 (rgb mean/std, 8-bin histograms, 4x4 luminance grid, motion mean/std/max, log frames)"

    def __init__(self, config: FrameStatsConfig) -> None:
        self.frame_rate = config.frame_rate
        self.frame_size = (config.frame_size, config.frame_size)  # (width, height) the decoder scales to

    def encode(self, clips: list[np.ndarray]) -> np.ndarray:
        """Statistics of each clip's frames (T, H, W, 3) uint8: float32 (len(clips), 50)."""
        return np.stack([self._one(np.asarray(clip)) for clip in clips]) if clips else \
            np.zeros((0, _DIMENSION), np.float32)

    @staticmethod
    def _one(frames: np.ndarray) -> np.ndarray:
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
            raise ValueError(f"frame-stats expects frames (T, H, W, 3), got shape {frames.shape}")
        pixels = frames.reshape(-1, 3).astype(np.float32) / 255.0  # (T·H·W, 3)
        colour = np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)])  # (6,)
        histogram = np.concatenate([np.histogram(pixels[:, c], bins=_BINS, range=(0.0, 1.0))[0] / len(pixels)
                                    for c in range(3)])  # (24,)
        luminance = frames.astype(np.float32) @ _LUMA / 255.0  # (T, H, W)
        steps, height, width = luminance.shape
        rows = np.array_split(np.arange(height), _GRID)
        columns = np.array_split(np.arange(width), _GRID)
        layout = np.asarray([luminance[:, r][:, :, c].mean() for r in rows for c in columns])  # (16,)
        if steps > 1:
            energy = np.abs(np.diff(luminance, axis=0)).mean(axis=(1, 2))  # (T-1,)
            motion = np.asarray([energy.mean(), energy.std(), energy.max()])
        else:
            motion = np.zeros(3)
        duration = np.asarray([np.log1p(steps)])
        return np.concatenate([colour, histogram, layout, motion, duration]).astype(np.float32)  # (50,)

"""A tiny generated dataset: three-party conversations whose emotion carries over between turns.

It exists to show a dataset plugin end to end — a config, a ``load()`` returning a
:class:`merc_bench.Corpus` — and to give the example recipe something to learn in seconds. The
label of each utterance is, with probability ``carry_over``, the previous utterance's label, else
a uniform draw; text features show the label clearly, audio and visual features faintly. Fully
determined by ``seed``.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from merc_bench import Corpus, DatasetInfo, Dialogue, component

CLASSES = ("negative", "neutral", "positive")
FEATURE_DIMS = {"text": 12, "audio": 6, "visual": 6}
SIGNAL = {"text": 1.0, "audio": 0.4, "visual": 0.4}  # how strongly each modality shows the label


class TinyDialoguesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Every numeric option bounded: a --set value comes from a stranger (merc-bench's own sweep checks it).
    dialogues: int = Field(60, ge=6, le=100_000, description="total dialogues, split 60/20/20 into train/dev/test")
    carry_over: float = Field(0.6, ge=0.0, le=1.0, description="probability that an utterance keeps the previous label")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of the generator (numpy accepts up to 2**32 - 1)")


@component("dataset", "tiny-dialogues", config=TinyDialoguesConfig)
class TinyDialogues:
    """60 short three-party dialogues (3 classes: negative, neutral, positive)."""

    def __init__(self, config: TinyDialoguesConfig) -> None:
        self.count, self.carry_over, self.seed = config.dialogues, config.carry_over, config.seed

    def load(self) -> Corpus:
        rng = np.random.default_rng(self.seed)
        prototypes = {m: rng.standard_normal((len(CLASSES), d)) for m, d in FEATURE_DIMS.items()}
        made = [self._dialogue(f"tiny-{i:03d}", rng, prototypes) for i in range(self.count)]
        train_end, dev_end = int(0.6 * self.count), int(0.8 * self.count)
        info = DatasetInfo(name="tiny-dialogues", family="tiny", classes=CLASSES, feature_dims=dict(FEATURE_DIMS),
                           num_speakers=3, description="generated three-party dialogues (example plugin)")
        return Corpus(info=info, train=made[:train_end], dev=made[train_end:dev_end], test=made[dev_end:],
                      provenance={"source": "generated", "seed": self.seed})

    def _dialogue(self, name: str, rng: np.random.Generator, prototypes: dict) -> Dialogue:
        length = int(rng.integers(4, 13))
        labels = np.empty(length, dtype=np.int64)
        labels[0] = rng.integers(len(CLASSES))
        for t in range(1, length):
            labels[t] = labels[t - 1] if rng.random() < self.carry_over else rng.integers(len(CLASSES))
        features = {
            m: (SIGNAL[m] * prototypes[m][labels] + rng.standard_normal((length, d))).astype(np.float32)
            for m, d in FEATURE_DIMS.items()
        }
        return Dialogue(id=name, features=features, speakers=rng.integers(0, 3, length), labels=labels)

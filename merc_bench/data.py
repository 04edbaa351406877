"""The data contract: dialogues, corpora, dataset facts, and batching.

Every dataset plugin returns a :class:`Corpus`; every model consumes a :class:`Batch`.
Shapes use named dimensions: B dialogues in a batch, L utterances (padded), D_m feature size of
modality m. Batches are batch-first and the mask is True for real utterances.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

__all__ = ["MODALITIES", "Dialogue", "DatasetInfo", "Corpus", "Batch", "collate", "batches"]

#: Modality names, in the order tables and configs list them.
MODALITIES = ("text", "audio", "visual")


@dataclass(frozen=True)
class Dialogue:
    """One conversation: per-utterance features, speaker indices and labels.

    ``features[m]`` is a float32 array (n_utterances, D_m); ``speakers`` are per-dialogue speaker
    indices in ``[0, num_speakers)``; ``labels`` are class ids in ``[0, num_classes)``.
    """

    id: str
    features: dict[str, np.ndarray]
    speakers: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about a dataset before it sees a batch."""

    name: str
    family: str  # "meld" or "iemocap": selects a recipe's per-family defaults
    classes: tuple[str, ...]
    feature_dims: dict[str, int]  # modality -> D_m, in MODALITIES order
    num_speakers: int
    description: str = ""

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(m for m in MODALITIES if m in self.feature_dims) + tuple(
            m for m in self.feature_dims if m not in MODALITIES
        )

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class Corpus:
    """A dataset's splits. ``dev`` is the validation split the clean protocol selects on."""

    info: DatasetInfo
    train: list[Dialogue]
    dev: list[Dialogue]
    test: list[Dialogue]
    provenance: dict[str, object] = field(default_factory=dict)

    def split(self, name: str) -> list[Dialogue]:
        return {"train": self.train, "dev": self.dev, "test": self.test}[name]

    def class_counts(self, split: str = "train") -> np.ndarray:
        counts = np.zeros(self.info.num_classes, dtype=np.int64)
        for dialogue in self.split(split):
            counts += np.bincount(dialogue.labels, minlength=self.info.num_classes)
        return counts

    def fingerprint(self) -> str:
        """A content hash of every split's ids, labels, speakers and features (sha256, 16 hex digits)."""
        digest = hashlib.sha256()
        for split in ("train", "dev", "test"):
            digest.update(split.encode())
            for dialogue in self.split(split):
                digest.update(dialogue.id.encode())
                digest.update(np.ascontiguousarray(dialogue.labels, dtype=np.int64).tobytes())
                digest.update(np.ascontiguousarray(dialogue.speakers, dtype=np.int64).tobytes())
                for modality in sorted(dialogue.features):
                    digest.update(modality.encode())
                    digest.update(np.ascontiguousarray(dialogue.features[modality]).tobytes())
        return digest.hexdigest()[:16]

    def standardized(self) -> "Corpus":
        """A copy whose features are z-scored per dimension with the *train* split's mean and std.

        Unit-norm sentence embeddings (MiniLM: each value ≈ 0.05) are otherwise drowned by the
        speaker and position embeddings SDT-style encoders add. Statistics come from train only, so
        nothing is learned from dev or test.
        """
        scales = {}
        for modality in self.info.feature_dims:
            stacked = np.concatenate([d.features[modality] for d in self.train]).astype(np.float64)
            scales[modality] = (stacked.mean(axis=0), np.maximum(stacked.std(axis=0), 1e-6))

        def transform(dialogues: list[Dialogue]) -> list[Dialogue]:
            return [
                Dialogue(
                    id=d.id,
                    features={m: ((x - scales[m][0]) / scales[m][1]).astype(np.float32) for m, x in d.features.items()},
                    speakers=d.speakers,
                    labels=d.labels,
                )
                for d in dialogues
            ]

        provenance = dict(self.provenance, standardized="per dimension, train mean and std")
        return Corpus(self.info, transform(self.train), transform(self.dev), transform(self.test), provenance)

    def summary(self) -> str:
        sizes = ", ".join(
            f"{split} {len(self.split(split))} dialogues / {sum(len(d) for d in self.split(split))} utterances"
            for split in ("train", "dev", "test")
        )
        return sizes


@dataclass
class Batch:
    """Padded tensors for B dialogues of at most L utterances.

    features[m]: (B, L, D_m) float32; speakers: (B, L) long, padded with ``num_speakers``;
    labels: (B, L) long, padded with -1; mask: (B, L) bool, True for real utterances.
    """

    features: dict[str, torch.Tensor]
    speakers: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor
    ids: list[str]

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(
            features={m: x.to(device, non_blocking=True) for m, x in self.features.items()},
            speakers=self.speakers.to(device, non_blocking=True),
            labels=self.labels.to(device, non_blocking=True),
            mask=self.mask.to(device, non_blocking=True),
            ids=self.ids,
        )

    def real_labels(self) -> torch.Tensor:
        """Labels of the real utterances, flattened in (B, L) order: (N,)."""
        return self.labels[self.mask]


def collate(dialogues: Sequence[Dialogue], *, modalities: Sequence[str], num_speakers: int) -> Batch:
    """Pad ``dialogues`` into one :class:`Batch` (one numpy copy per field, then one tensor)."""
    size = len(dialogues)
    length = max(len(d) for d in dialogues)
    features = {}
    for modality in modalities:
        dim = dialogues[0].features[modality].shape[1]
        padded = np.zeros((size, length, dim), dtype=np.float32)
        for row, dialogue in enumerate(dialogues):
            padded[row, : len(dialogue)] = dialogue.features[modality]
        features[modality] = torch.from_numpy(padded)
    speakers = np.full((size, length), num_speakers, dtype=np.int64)
    labels = np.full((size, length), -1, dtype=np.int64)
    mask = np.zeros((size, length), dtype=bool)
    for row, dialogue in enumerate(dialogues):
        n = len(dialogue)
        speakers[row, :n] = dialogue.speakers
        labels[row, :n] = dialogue.labels
        mask[row, :n] = True
    return Batch(
        features=features,
        speakers=torch.from_numpy(speakers),
        labels=torch.from_numpy(labels),
        mask=torch.from_numpy(mask),
        ids=[d.id for d in dialogues],
    )


def batches(
    dialogues: Sequence[Dialogue],
    *,
    batch_size: int,
    modalities: Sequence[str],
    num_speakers: int,
    generator: np.random.Generator | None = None,
) -> list[Batch]:
    """Split ``dialogues`` into padded batches; shuffled when a generator is given."""
    order = np.arange(len(dialogues))
    if generator is not None:
        generator.shuffle(order)
    return [
        collate([dialogues[i] for i in order[start : start + batch_size]], modalities=modalities, num_speakers=num_speakers)
        for start in range(0, len(order), batch_size)
    ]

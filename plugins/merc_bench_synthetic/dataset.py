"""A seeded synthetic MERC corpus shaped like MELD or IEMOCAP, with planted structure.

Real MELD / IEMOCAP features cannot be shipped, so this dataset generates conversations whose
*shape* matches the real benchmarks (feature sizes, class names and frequencies, speaker counts,
dialogue lengths) and whose *content* is built so that the modelling ideas MERC papers rely on
pay off in a measurable way. Nothing here is read from disk: every statistic is embedded below.

Facts mirrored from the real corpora
------------------------------------
* Feature sizes (SDT, Ma et al. 2023, and the COSMIC / MMGCN feature sets it reuses): text 1024
  (RoBERTa-large), audio 300 for MELD and 1582 for IEMOCAP (openSMILE), visual 342 (DenseNet
  facial features).
* Classes in the order models index them: MELD ``neutral surprise fear sadness joy disgust
  anger``; IEMOCAP ``hap sad neu ang exc fru``.
* Class frequencies: MELD train counts 4710/1205/268/683/1743/271/1109; IEMOCAP counts
  648/1084/1708/1103/1041/1849 (in the class orders above).
* MELD dialogue lengths and distinct-speaker counts: histograms of the real MELD train split
  (``train_sent_emo.csv``, 1,038 dialogues, mean 9.62 utterances, 1-24 utterances, 1-9 speakers),
  embedded as constants. Speaker indices follow the order of first appearance in the dialogue.
* IEMOCAP: dyadic sessions (2 speakers taking roughly alternating turns), 8-110 utterances,
  mean about 49.

Generative process (per dialogue)
---------------------------------
1. **Length and speakers.** MELD: the length is drawn from the embedded histogram and the number
   of distinct speakers from the embedded histogram (limited to the length); the positions where
   each new speaker first talks are drawn at random, and otherwise an already-seen speaker talks
   (usually not the one who just spoke). IEMOCAP: the length is a normal draw (mean 48, standard
   deviation 20) kept only inside 8-110, and the two speakers swap turns with probability 0.85.
2. **Emotions (the conversational context).** Each speaker carries an emotion state. At each
   utterance the speaker keeps their own last emotion with probability ``emotion_persistence``
   (if they have spoken before); otherwise, with probability ``emotion_contagion``, they take the
   emotion of the previous utterance (contagion from whoever just spoke); otherwise they draw a
   fresh emotion from the target class frequencies. Each branch returns an emotion whose marginal
   distribution is the target, so by induction every utterance's label has exactly the target
   class distribution, while neighbouring labels are strongly dependent: a model that reads
   dialogue context can beat one that classifies utterances in isolation. The defaults (0.7 and
   0.4) make context matter more than in real MELD, where a speaker's next utterance carries the
   same emotion 44% of the time (29% would be chance), so that context models separate clearly.
3. **Low-dimensional signals per modality** (the "latent" of each utterance):
   * text (16 dims): the class's random prototype plus Gaussian noise, so text carries the class
     identity, noisily. A fraction ``uninformative_text_fraction`` of utterances are
     content-free ("Okay.", "Yeah."): their text latent is one shared filler vector plus noise,
     whatever the emotion.
   * audio (8 dims): the class's *arousal* along one fixed direction (plus a weak valence trace),
     the speaker's voice identity (a per-dialogue random offset, a nuisance), plus noise.
   * visual (8 dims): the class's *valence* along one fixed direction (plus a weak arousal
     trace), the speaker's face identity (a nuisance), plus noise.
   Each class has a (valence, arousal) coordinate from the circumplex model of affect, so audio
   and visual are weak on their own but complementary to each other and to text: they are what
   identifies the emotion of content-free utterances. All three together beat the best single
   modality, and text alone is the strongest single modality.
4. **Embedding.** Each modality's latent is mapped into its full feature size by a fixed random
   projection (orthonormal rows, seeded), isotropic Gaussian noise is added in the full space, and
   the result is scaled to about unit variance per dimension and stored as float32.

Paper-shaped profiles
---------------------
``profile=paper-meld`` / ``paper-iemocap`` replace steps 2–3's planted structure with the real
split sizes and modality strengths fitted to the SUMMER paper's Table I (text strongest and close
to all three modalities); see :mod:`merc_bench_synthetic.paper_profiles`. The default ``planted``
corpus is unchanged by them.

Determinism: everything is drawn from ``numpy.random.default_rng`` generators seeded from
``seed``, one stream for the fixed "world" (prototypes, directions, projections) and one stream per
split, so the same configuration always yields the same corpus (same ``Corpus.fingerprint()`` on
the same numerical library build), and changing the size of one split leaves the others unchanged.
No global random state is touched and nothing is read from disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from merc_bench import Corpus, DatasetInfo, Dialogue, component
from merc_bench_synthetic.paper_profiles import (  # LATENT_DIMS: the latent sizes both corpora use
    LATENT_DIMS, PROFILES, latent_energy, paper_latents, world_prototypes)

__all__ = ["SyntheticConfig", "SyntheticDataset", "SHAPES", "GENERATOR_VERSION"]

GENERATOR_VERSION = "2"  # 2: paper profiles added (the planted corpus is unchanged)

# MELD train split (train_sent_emo.csv): number of dialogues with 1, 2, ..., 24 utterances.
MELD_DIALOGUE_LENGTH_COUNTS = (
    70, 60, 54, 48, 67, 61, 74, 67, 50, 57, 55, 54, 36, 41, 43, 51, 30, 28, 27, 20, 20, 13, 7, 5,
)
# MELD train split: number of dialogues with 1, 2, ..., 9 distinct speakers.
MELD_SPEAKER_COUNT_COUNTS = (96, 463, 264, 122, 58, 25, 8, 1, 1)


# Base scales of the latent parts; the config's ``noise`` multiplies every *_NOISE value.
TEXT_PROTOTYPE_SCALE = 1.0  # norm of each class's text prototype is about sqrt(16) times this
TEXT_FILLER_SCALE = 0.5  # the content-free utterances' shared text latent is smaller than a prototype
TEXT_NOISE = 1.8  # per latent dimension
AUDIO_AROUSAL_SCALE = 2.4  # arousal coordinate (in [-1, 1]) times this, along one direction
AUDIO_VALENCE_SCALE = 0.5  # the weak valence trace in audio
VISUAL_VALENCE_SCALE = 2.4
VISUAL_AROUSAL_SCALE = 0.5
IDENTITY_SCALE = 0.3  # speaker voice / face offsets, per latent dimension
AUDIO_VISUAL_NOISE = 1.0  # per latent dimension
AMBIENT_NOISE = 0.3  # isotropic noise in the full feature space, relative to unit signal


@dataclass(frozen=True)
class Shape:
    """The facts of one real benchmark that the synthetic corpus copies."""

    family: str
    classes: tuple[str, ...]
    class_counts: tuple[int, ...]  # target frequencies, in ``classes`` order
    valence_arousal: tuple[tuple[float, float], ...]  # per class, each in [-1, 1]
    feature_dims: dict[str, int]  # modality -> D_m, in text / audio / visual order
    num_speakers: int
    default_dialogues: tuple[int, int, int]  # train, dev, test

    @property
    def class_frequencies(self) -> np.ndarray:
        counts = np.asarray(self.class_counts, dtype=np.float64)
        return counts / counts.sum()


SHAPES: dict[str, Shape] = {
    "meld": Shape(
        family="meld",
        classes=("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
        class_counts=(4710, 1205, 268, 683, 1743, 271, 1109),
        valence_arousal=(
            (0.0, -0.1),  # neutral
            (0.35, 0.85),  # surprise
            (-0.6, 0.6),  # fear
            (-0.75, -0.6),  # sadness
            (0.8, 0.35),  # joy
            (-0.7, 0.1),  # disgust
            (-0.7, 0.9),  # anger
        ),
        feature_dims={"text": 1024, "audio": 300, "visual": 342},
        num_speakers=9,
        default_dialogues=(40, 12, 24),
    ),
    "iemocap": Shape(
        family="iemocap",
        classes=("hap", "sad", "neu", "ang", "exc", "fru"),
        class_counts=(648, 1084, 1708, 1103, 1041, 1849),
        valence_arousal=(
            (0.75, 0.2),  # hap
            (-0.75, -0.6),  # sad
            (0.0, -0.1),  # neu
            (-0.7, 0.9),  # ang
            (0.7, 0.85),  # exc
            (-0.55, 0.3),  # fru
        ),
        feature_dims={"text": 1024, "audio": 1582, "visual": 342},
        num_speakers=2,
        default_dialogues=(24, 6, 8),
    ),
}

SPLITS = ("train", "dev", "test")


class SyntheticConfig(BaseModel):
    """Options of the ``synthetic`` dataset."""

    model_config = ConfigDict(extra="forbid")

    profile: Literal["planted", "paper-meld", "paper-iemocap"] = Field(
        "planted",
        description=("planted: context and complementary modalities clearly pay off; paper-meld / "
                     "paper-iemocap: the real split sizes, with modality strengths fitted to SUMMER's Table I"),
    )
    shape: Literal["meld", "iemocap"] | None = Field(
        None, description="which benchmark to imitate (default: meld; a paper profile sets its own)"
    )
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed of every random draw; same seed, same corpus")
    sample_seed: int | None = Field(
        None, ge=0, le=2**32 - 1,
        description=("seed of the dialogues drawn (default: seed); the world (prototypes, projections) "
                     "follows seed, so sample_seed gives other corpora from the same generator"),
    )
    train_dialogues: int | None = Field(
        None, ge=1, le=10_000, description="train split size in dialogues (default: the shape's or profile's)"
    )
    dev_dialogues: int | None = Field(
        None, ge=1, le=10_000, description="dev split size in dialogues (default: the shape's or profile's)"
    )
    test_dialogues: int | None = Field(
        None, ge=1, le=10_000, description="test split size in dialogues (default: the shape's or profile's)"
    )
    noise: float = Field(
        1.0, ge=0.0, le=1000, description="multiplies the noise of every modality's signal; higher is harder"
    )
    uninformative_text_fraction: float = Field(
        0.25, ge=0.0, le=1.0,
        description="planted profile: fraction of utterances whose text carries no emotion ('Okay.')",
    )
    emotion_persistence: float | None = Field(
        None, ge=0.0, le=1.0,
        description="probability a speaker keeps their previous emotion (default 0.7 planted, the profile's)",
    )
    emotion_contagion: float | None = Field(
        None, ge=0.0, le=1.0,
        description=("probability (when not persisting) of taking the previous utterance's emotion "
                     "(default 0.4 planted, the profile's)"),
    )
    ambiguity: float | None = Field(
        None, ge=0.0, le=1.0,
        description="paper profiles: share of utterances expressing another emotion in every modality",
    )
    nonverbal_ambiguity: float | None = Field(
        None, ge=0.0, le=1.0,
        description="paper profiles: share of utterances whose audio and visual express another emotion",
    )
    text_signal: float | None = Field(None, ge=0.0, le=100, description="paper profiles: text signal strength")
    audio_signal: float | None = Field(None, ge=0.0, le=100, description="paper profiles: audio signal strength")
    visual_signal: float | None = Field(
        None, ge=0.0, le=100, description="paper profiles: visual signal strength"
    )

    @model_validator(mode="after")
    def _profile_options_fit_the_profile(self) -> SyntheticConfig:
        if self.profile == "planted":
            given = [name for name in PAPER_OPTIONS if getattr(self, name) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} only apply to a paper profile "
                                 "(set profile=paper-meld or profile=paper-iemocap)")
        elif self.shape is not None and self.shape != PROFILES[self.profile].shape:
            raise ValueError(f"profile {self.profile} imitates {PROFILES[self.profile].shape}; "
                             f"shape={self.shape} contradicts it (leave shape unset)")
        return self

    @property
    def shape_name(self) -> str:
        if self.profile != "planted":
            return PROFILES[self.profile].shape
        return self.shape or "meld"

    def label_dynamics(self) -> tuple[float, float]:
        """(persistence, contagion) with the profile's defaults filled in."""
        if self.profile == "planted":
            defaults = (PLANTED_PERSISTENCE, PLANTED_CONTAGION)
        else:
            profile = PROFILES[self.profile]
            defaults = (profile.emotion_persistence, profile.emotion_contagion)
        given = (self.emotion_persistence, self.emotion_contagion)
        return tuple(default if value is None else value for value, default in zip(given, defaults))


PAPER_OPTIONS = ("ambiguity", "nonverbal_ambiguity", "text_signal", "audio_signal", "visual_signal")
PLANTED_PERSISTENCE, PLANTED_CONTAGION = 0.7, 0.4


@dataclass(frozen=True)
class _World:
    """The fixed parts of the generator, shared by all splits: prototypes, directions, projections."""

    text_prototypes: np.ndarray  # (C, 16)
    text_filler: np.ndarray  # (16,)
    audio_means: np.ndarray  # (C, 8): arousal (and a little valence) along fixed directions
    visual_means: np.ndarray  # (C, 8): valence (and a little arousal) along fixed directions
    projections: dict[str, np.ndarray]  # modality -> (K_m, D_m), orthonormal rows times sqrt(D_m / K_m)
    output_scales: dict[str, float]  # modality -> factor bringing each feature dimension to ~unit variance


def _orthonormal_projection(rng: np.random.Generator, latent_dim: int, feature_dim: int) -> np.ndarray:
    """(K, D) with orthonormal rows, scaled by sqrt(D / K) so unit latent variance → unit feature variance."""
    gaussian = rng.standard_normal((feature_dim, latent_dim))
    orthonormal, _ = np.linalg.qr(gaussian)  # (D, K), orthonormal columns
    return np.ascontiguousarray(orthonormal.T * np.sqrt(feature_dim / latent_dim))


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def _build_world(shape: Shape, seed: int, config: SyntheticConfig) -> _World:
    rng = np.random.default_rng([seed, 0])
    num_classes = len(shape.classes)
    valence_arousal = np.asarray(shape.valence_arousal, dtype=np.float64)  # (C, 2)
    valence, arousal = valence_arousal[:, 0], valence_arousal[:, 1]

    text_prototypes = TEXT_PROTOTYPE_SCALE * rng.standard_normal((num_classes, LATENT_DIMS["text"]))
    text_filler = TEXT_FILLER_SCALE * rng.standard_normal(LATENT_DIMS["text"])

    audio_arousal_direction = _unit(rng.standard_normal(LATENT_DIMS["audio"]))
    audio_valence_direction = _unit(rng.standard_normal(LATENT_DIMS["audio"]))
    audio_means = (
        AUDIO_AROUSAL_SCALE * arousal[:, None] * audio_arousal_direction
        + AUDIO_VALENCE_SCALE * valence[:, None] * audio_valence_direction
    )
    visual_valence_direction = _unit(rng.standard_normal(LATENT_DIMS["visual"]))
    visual_arousal_direction = _unit(rng.standard_normal(LATENT_DIMS["visual"]))
    visual_means = (
        VISUAL_VALENCE_SCALE * valence[:, None] * visual_valence_direction
        + VISUAL_AROUSAL_SCALE * arousal[:, None] * visual_arousal_direction
    )

    projections = {
        modality: _orthonormal_projection(rng, LATENT_DIMS[modality], dim)
        for modality, dim in shape.feature_dims.items()
    }

    # Expected squared latent norm per latent dimension, so features come out at ~unit variance.
    frequencies = shape.class_frequencies
    noise = config.noise
    informative = 1.0 - config.uninformative_text_fraction
    text_energy = (
        informative * frequencies @ np.sum(text_prototypes**2, axis=1)
        + config.uninformative_text_fraction * np.sum(text_filler**2)
    ) / LATENT_DIMS["text"] + (noise * TEXT_NOISE) ** 2
    audio_energy = frequencies @ np.sum(audio_means**2, axis=1) / LATENT_DIMS["audio"]
    visual_energy = frequencies @ np.sum(visual_means**2, axis=1) / LATENT_DIMS["visual"]
    shared = IDENTITY_SCALE**2 + (noise * AUDIO_VISUAL_NOISE) ** 2
    energies = {"text": text_energy, "audio": audio_energy + shared, "visual": visual_energy + shared}
    output_scales = {m: float(1.0 / np.sqrt(energies[m] + AMBIENT_NOISE**2)) for m in LATENT_DIMS}

    return _World(text_prototypes, text_filler, audio_means, visual_means, projections, output_scales)


@dataclass(frozen=True)
class _PaperWorld:
    """The fixed parts of a paper profile: each modality's class prototypes, projections and scales."""

    prototypes: dict[str, np.ndarray]  # modality -> (C, K_m)
    projections: dict[str, np.ndarray]  # modality -> (K_m, D_m)
    output_scales: dict[str, float]
    ambiguity: float
    nonverbal_ambiguity: float
    signal: dict[str, float]  # modality -> signal strength


def _build_paper_world(shape: Shape, seed: int, ambiguity: float, nonverbal_ambiguity: float,
                       signal: dict[str, float], noise: float) -> _PaperWorld:
    rng = np.random.default_rng([seed, 0])
    prototypes = world_prototypes(rng, len(shape.classes))
    projections = {
        modality: _orthonormal_projection(rng, LATENT_DIMS[modality], dim)
        for modality, dim in shape.feature_dims.items()
    }
    output_scales = {m: float(1.0 / np.sqrt(latent_energy(signal[m], noise) + AMBIENT_NOISE**2)) for m in LATENT_DIMS}
    return _PaperWorld(prototypes, projections, output_scales, ambiguity, nonverbal_ambiguity, signal)


def _meld_speakers(rng: np.random.Generator, length: int) -> np.ndarray:
    """Speaker indices (order of first appearance) for one MELD-like dialogue."""
    counts = np.asarray(MELD_SPEAKER_COUNT_COUNTS[: min(length, len(MELD_SPEAKER_COUNT_COUNTS))], dtype=np.float64)
    distinct = 1 + int(rng.choice(len(counts), p=counts / counts.sum()))
    # Positions where a new speaker first talks: always 0, then distinct - 1 others.
    introductions = np.zeros(length, dtype=bool)
    introductions[0] = True
    if distinct > 1:
        introductions[1 + rng.choice(length - 1, size=distinct - 1, replace=False)] = True
    speakers = np.empty(length, dtype=np.int64)
    repeat_draws = rng.random(length)
    choice_draws = rng.random(length)
    seen = 0
    for position in range(length):
        if introductions[position]:
            speakers[position] = seen
            seen += 1
        elif seen == 1:
            speakers[position] = 0
        else:
            previous = speakers[position - 1]
            if repeat_draws[position] < 0.15:  # the same person talks again (MELD splits long turns)
                speakers[position] = previous
            else:  # someone else who has already spoken
                others = [s for s in range(seen) if s != previous]
                speakers[position] = others[int(choice_draws[position] * len(others))]
    return speakers


def _iemocap_speakers(rng: np.random.Generator, length: int) -> np.ndarray:
    """Two speakers, roughly alternating; indices in order of first appearance."""
    swaps = rng.random(length) < 0.85
    swaps[0] = False
    return (np.cumsum(swaps) % 2).astype(np.int64)


def _iemocap_length(rng: np.random.Generator) -> int:
    while True:
        length = int(round(rng.normal(48.0, 20.0)))
        if 8 <= length <= 110:
            return length


def _emotions(
    rng: np.random.Generator, speakers: np.ndarray, frequencies: np.ndarray, persistence: float, contagion: float
) -> np.ndarray:
    """Labels following the speaker-persistence / contagion / fresh-draw process (see module doc)."""
    length = len(speakers)
    fresh = rng.choice(len(frequencies), size=length, p=frequencies)
    keep_draws = rng.random(length)
    contagion_draws = rng.random(length)
    labels = np.empty(length, dtype=np.int64)
    last_emotion: dict[int, int] = {}
    for position in range(length):
        speaker = int(speakers[position])
        if speaker in last_emotion and keep_draws[position] < persistence:
            emotion = last_emotion[speaker]
        elif position > 0 and contagion_draws[position] < contagion:
            emotion = int(labels[position - 1])
        else:
            emotion = int(fresh[position])
        labels[position] = emotion
        last_emotion[speaker] = emotion
    return labels


@component(
    "dataset", "synthetic", config=SyntheticConfig,
    description=("seeded synthetic conversations shaped like MELD or IEMOCAP (sizes, classes, frequencies, "
                 "speakers, lengths) with planted emotional context and complementary modalities; no download"),
)
class SyntheticDataset:
    """Seeded synthetic MERC corpus shaped like MELD or IEMOCAP, with planted context and modality structure."""

    def __init__(self, config: SyntheticConfig) -> None:
        # Nothing is read from disk, so the data_dir build-context value is not asked for.
        self.config = config
        self.shape = SHAPES[self.config.shape_name]

    def split_sizes(self) -> dict[str, int]:
        """Dialogues per split, with the shape's (or the paper profile's) defaults filled in."""
        given = (self.config.train_dialogues, self.config.dev_dialogues, self.config.test_dialogues)
        profile = PROFILES.get(self.config.profile)
        defaults = profile.dialogues if profile else self.shape.default_dialogues
        return {split: default if value is None else value for split, value, default in zip(SPLITS, given, defaults)}

    def info(self) -> DatasetInfo:
        shape, config = self.shape, self.config
        if config.profile == "planted":
            content = ("planted speaker-emotion persistence and contagion; text carries the class, audio "
                       "arousal, visual valence")
        else:
            content = f"profile {config.profile}: real split sizes, modality strengths fitted to SUMMER's Table I"
        return DatasetInfo(
            name="synthetic",
            family=shape.family,
            classes=shape.classes,
            feature_dims=dict(shape.feature_dims),
            num_speakers=shape.num_speakers,
            description=f"synthetic conversations shaped like {shape.family.upper()} (seed {config.seed}): {content}",
        )

    def paper_signal(self) -> tuple[float, float, dict[str, float]]:
        """(ambiguity, nonverbal ambiguity, modality -> signal) of a paper profile, overrides applied."""
        profile, config = PROFILES[self.config.profile], self.config
        ambiguity = profile.ambiguity if config.ambiguity is None else config.ambiguity
        nonverbal = profile.nonverbal_ambiguity if config.nonverbal_ambiguity is None else config.nonverbal_ambiguity
        given = {"text": config.text_signal, "audio": config.audio_signal, "visual": config.visual_signal}
        return ambiguity, nonverbal, {m: profile.signal[m] if value is None else value for m, value in given.items()}

    def load(self) -> Corpus:
        if self.config.profile == "planted":
            world = _build_world(self.shape, self.config.seed, self.config)
        else:
            world = _build_paper_world(self.shape, self.config.seed, *self.paper_signal(), self.config.noise)
        sizes = self.split_sizes()
        splits = {
            split: self._generate_split(world, split, index + 1, sizes[split]) for index, split in enumerate(SPLITS)
        }
        provenance = {
            "generator": "merc_bench_synthetic",
            "version": GENERATOR_VERSION,
            "config": self.config.model_dump(),
            "seed": self.config.seed,
            "dialogues": sizes,
        }
        return Corpus(info=self.info(), **splits, provenance=provenance)

    def _structure(self, rng: np.random.Generator, size: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Steps 1–2: every dialogue's speakers and labels."""
        shape = self.shape
        persistence, contagion = self.config.label_dynamics()
        all_speakers, all_labels = [], []
        length_probabilities = np.asarray(MELD_DIALOGUE_LENGTH_COUNTS, dtype=np.float64)
        length_probabilities /= length_probabilities.sum()
        for _ in range(size):
            if shape.family == "meld":
                length = 1 + int(rng.choice(len(length_probabilities), p=length_probabilities))
                speakers = _meld_speakers(rng, length)
            else:
                length = _iemocap_length(rng)
                speakers = _iemocap_speakers(rng, length)
            all_speakers.append(speakers)
            all_labels.append(_emotions(rng, speakers, shape.class_frequencies, persistence, contagion))
        return all_speakers, all_labels

    def _planted_latents(self, world: _World, rng: np.random.Generator, labels: np.ndarray,
                         speaker_key: np.ndarray, size: int) -> dict[str, np.ndarray]:
        """Step 3 of the planted corpus: modality -> (N, K_m)."""
        config, total = self.config, len(labels)
        uninformative = rng.random(total) < config.uninformative_text_fraction  # (N,)
        text_latent = np.where(uninformative[:, None], world.text_filler, world.text_prototypes[labels])
        text_latent = text_latent + config.noise * TEXT_NOISE * rng.standard_normal((total, LATENT_DIMS["text"]))

        identity_table_size = size * self.shape.num_speakers
        voice = IDENTITY_SCALE * rng.standard_normal((identity_table_size, LATENT_DIMS["audio"]))
        face = IDENTITY_SCALE * rng.standard_normal((identity_table_size, LATENT_DIMS["visual"]))
        audio_latent = (
            world.audio_means[labels]
            + voice[speaker_key]
            + config.noise * AUDIO_VISUAL_NOISE * rng.standard_normal((total, LATENT_DIMS["audio"]))
        )
        visual_latent = (
            world.visual_means[labels]
            + face[speaker_key]
            + config.noise * AUDIO_VISUAL_NOISE * rng.standard_normal((total, LATENT_DIMS["visual"]))
        )
        return {"text": text_latent, "audio": audio_latent, "visual": visual_latent}

    def _generate_split(self, world: _World | _PaperWorld, split: str, stream: int, size: int) -> list[Dialogue]:
        shape, config = self.shape, self.config
        rng = np.random.default_rng([config.seed if config.sample_seed is None else config.sample_seed, stream])
        all_speakers, all_labels = self._structure(rng, size)

        # 3: latents for every utterance of the split at once. N utterances, K_m latent dims.
        lengths = np.array([len(labels) for labels in all_labels])
        labels = np.concatenate(all_labels)  # (N,)
        total = len(labels)
        if isinstance(world, _PaperWorld):
            latents = paper_latents(rng, labels, world.prototypes, shape.class_frequencies, world.ambiguity,
                                    world.nonverbal_ambiguity, world.signal, config.noise)
        else:
            dialogue_of = np.repeat(np.arange(size), lengths)  # (N,)
            # Global speaker id (dialogue, speaker) for the identity nuisances.
            speaker_key = dialogue_of * shape.num_speakers + np.concatenate(all_speakers)  # (N,)
            latents = self._planted_latents(world, rng, labels, speaker_key, size)

        # 4: project into the full feature space, add isotropic noise, scale to ~unit variance.
        features = {}
        for modality, dim in shape.feature_dims.items():
            projected = (latents[modality].astype(np.float32) @ world.projections[modality].astype(np.float32))
            projected += AMBIENT_NOISE * rng.standard_normal((total, dim), dtype=np.float32)
            projected *= np.float32(world.output_scales[modality])
            features[modality] = projected  # (N, D_m) float32

        dialogues = []
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        for index in range(size):
            start, stop = bounds[index], bounds[index + 1]
            dialogues.append(
                Dialogue(
                    id=f"{split}_{index:04d}",
                    features={m: np.ascontiguousarray(x[start:stop]) for m, x in features.items()},
                    speakers=all_speakers[index],
                    labels=all_labels[index],
                )
            )
        return dialogues

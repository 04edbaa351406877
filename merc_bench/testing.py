"""The contract-test kit: checks every component of a kind must pass.

Plugin authors use it in their own test suites::

    import pytest
    from merc_bench.testing import check_component, component_entries

    @pytest.mark.parametrize("entry", component_entries(), ids=lambda e: f"{e.kind}:{e.name}")
    def test_contract(entry):
        check_component(entry)

Each check builds the component the way a run does — ``cls(config, **build-context values it asks
for)``, see :class:`~merc_bench.registry.BuildContext` — small (hidden size 16, small feature sizes),
from its default config, and asserts: output shapes, a gradient reaching every trainable parameter, no NaN, padded positions
not changing real outputs, the same seed giving the same output, the config round-tripping while
unknown keys are rejected, and every sample of its search space being a valid, buildable config.

It does so on every non-empty subset of text, audio and visual (:data:`MODALITY_SUBSETS`), since a
run may pick any of them with ``--modalities``: a component must either work on a subset — outputs
for exactly the run's modalities, nothing looked up by a hard-coded modality name — or refuse to
build there with a :class:`~merc_bench.errors.UserError`, ``ValueError`` or ``TypeError`` from its
constructor, which the registry turns into a one-paragraph error naming the component. It must
build on all three. :func:`check_dataset` checks a dataset plugin's corpus; :func:`check_media_encoder`
an ``audio_encoder`` or ``visual_encoder`` (synthetic clips in, (n, D) float32 out);
:func:`plugin_entries` lists what one distribution registered, for a parametrised test in a
plugin's own suite.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pydantic
import torch

from merc_bench.data import Batch, Dialogue, collate
from merc_bench.errors import UserError
from merc_bench.model import FuserOutput, MixerOutput, ModelOutput, wants_speakers
from merc_bench.registry import BuildContext, Entry, Registry

__all__ = ["SMALL_CONTEXT", "MODALITY_SUBSETS", "component_entries", "plugin_entries", "check_component",
           "check_search_space", "check_dataset", "check_media_encoder", "make_batch", "subset_context"]

#: The build context every contract check uses.
SMALL_CONTEXT: BuildContext = {
    "hidden_size": 16,
    "modalities": ("text", "audio", "visual"),
    "feature_dims": {"text": 12, "audio": 10, "visual": 8},
    "num_speakers": 3,
    "num_classes": 4,
    "family": "meld",
    "data_dir": None,
}

#: Every non-empty subset of the three modalities, in dataset order (the full set first).
MODALITY_SUBSETS: tuple[tuple[str, ...], ...] = tuple(
    subset for size in (3, 2, 1) for subset in itertools.combinations(SMALL_CONTEXT["modalities"], size)
)

_MODEL_KINDS = ("encoder", "mixer", "fuser", "distiller")


def subset_context(modalities: tuple[str, ...]) -> BuildContext:
    """:data:`SMALL_CONTEXT` restricted to ``modalities`` (what a run with ``--modalities`` builds with)."""
    unknown = [m for m in modalities if m not in SMALL_CONTEXT["feature_dims"]]
    if not modalities or unknown:
        raise ValueError(f"modalities must be a non-empty subset of {SMALL_CONTEXT['modalities']}, got {modalities}")
    ordered = tuple(m for m in SMALL_CONTEXT["modalities"] if m in modalities)
    return dict(SMALL_CONTEXT, modalities=ordered,
                feature_dims={m: SMALL_CONTEXT["feature_dims"][m] for m in ordered})


def component_entries(registry: Registry | None = None, kinds: tuple[str, ...] = _MODEL_KINDS) -> list[Entry]:
    """Every registered model component (the default registry unless one is given)."""
    if registry is None:
        from merc_bench.plugins import get_registry

        registry = get_registry()
    return [entry for kind in kinds for entry in registry.entries(kind)]


def plugin_entries(distribution: str, kinds: tuple[str, ...] = _MODEL_KINDS + ("dataset",)) -> list[Entry]:
    """Every entry a distribution registered (e.g. your package's name), for a parametrised test::

        @pytest.mark.parametrize("entry", plugin_entries("my-package"), ids=lambda e: e.name)
        def test_my_components(entry):
            check_dataset(entry) if entry.kind == "dataset" else check_component(entry)
    """
    from merc_bench.plugins import get_registry

    entries = [entry for kind in kinds for entry in get_registry().entries(kind) if entry.plugin == distribution]
    if not entries:
        raise AssertionError(f"distribution {distribution!r} registered nothing of kinds {', '.join(kinds)}; "
                             "is it installed (pip install -e .) and does it declare a merc_bench entry point?")
    return entries


def make_batch(lengths: tuple[int, ...] = (5, 3, 1), seed: int = 0, context: dict[str, Any] = SMALL_CONTEXT) -> Batch:
    """A padded batch of random dialogues with the given lengths."""
    rng = np.random.default_rng(seed)
    dialogues = [
        Dialogue(
            id=f"d{i}",
            features={m: rng.standard_normal((n, d)).astype(np.float32) for m, d in context["feature_dims"].items()},
            speakers=rng.integers(0, context["num_speakers"], n),
            labels=rng.integers(0, context["num_classes"], n),
        )
        for i, n in enumerate(lengths)
    ]
    return collate(dialogues, modalities=context["modalities"], num_speakers=context["num_speakers"])


def _build(entry: Entry, context: dict[str, Any] = SMALL_CONTEXT, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    module = entry.build(entry.make_config({}), context)
    if callable(getattr(module, "attach_teacher", None)):
        module.attach_teacher(small_teacher(), SMALL_CONTEXT["hidden_size"])
    return module


def small_teacher(seed: int = 11) -> torch.nn.Module:
    """A tiny text-only model (linear encoder → identity mixer → mean fuser → head) for distillers
    that learn from a teacher."""
    from merc_bench.model import MERCModel
    from merc_bench.plugins import get_registry

    registry = get_registry()
    torch.manual_seed(seed)
    context = dict(SMALL_CONTEXT, modalities=("text",), feature_dims={"text": SMALL_CONTEXT["feature_dims"]["text"]})

    def component(kind: str, name: str) -> torch.nn.Module:
        entry = registry.get(kind, name)
        return entry.build(entry.make_config({}), context)

    return MERCModel(
        encoder=component("encoder", "linear"),
        mixers={"text": component("mixer", "identity")},
        fuser=component("fuser", "mean"),
        hidden_size=SMALL_CONTEXT["hidden_size"],
        num_classes=SMALL_CONTEXT["num_classes"],
        head_dropout=0.0,
        modality_heads=False,
    )


def _with_noisy_padding(batch: Batch, seed: int = 1) -> Batch:
    generator = torch.Generator().manual_seed(seed)
    padded = ~batch.mask  # (B, L)
    features = {}
    for modality, x in batch.features.items():
        noise = torch.randn(x.shape, generator=generator) * 10
        features[modality] = torch.where(padded[..., None], noise, x)
    speakers = torch.where(padded, torch.randint(0, SMALL_CONTEXT["num_speakers"], batch.speakers.shape,
                                                 generator=generator), batch.speakers)
    return Batch(features=features, speakers=speakers, labels=batch.labels, mask=batch.mask, ids=batch.ids)


def _hidden(batch: Batch, seed: int = 2) -> dict[str, torch.Tensor]:
    """Random mixer outputs (B, L, H) for the batch's modalities."""
    generator = torch.Generator().manual_seed(seed)
    size = (*batch.mask.shape, SMALL_CONTEXT["hidden_size"])
    return {m: torch.randn(size, generator=generator) for m in batch.features}


def _run(entry: Entry, module: torch.nn.Module, batch: Batch, hidden: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Call the component; return its tensor outputs by name."""
    first = next(iter(hidden))  # a mixer sees one modality at a time; the fused stand-in is any of them
    if entry.kind == "encoder":
        out = module(features=batch.features, speakers=batch.speakers, mask=batch.mask)
        return dict(out)
    speakers = {"speakers": batch.speakers} if wants_speakers(module) else {}
    if entry.kind == "mixer":
        out = module(hidden[first], batch.mask, **speakers)
        if isinstance(out, MixerOutput):
            return {"hidden": out.hidden, **{f"aux.{k}": v for k, v in out.aux_losses.items()}}
        return {"hidden": out}
    if entry.kind == "fuser":
        out = module(mixed=hidden, encoded={m: h.flip(-1) for m, h in hidden.items()}, mask=batch.mask, **speakers)
        assert isinstance(out, FuserOutput), f"fuser {entry.name!r} must return a FuserOutput"
        return {"fused": out.fused, **{f"per_modality.{m}": h for m, h in out.per_modality.items()}}
    if entry.kind == "distiller":
        classes = SMALL_CONTEXT["num_classes"]
        shape = (*batch.mask.shape, classes)
        generator = torch.Generator().manual_seed(3)
        output = ModelOutput(
            logits=torch.randn(shape, generator=generator),
            modality_logits={m: torch.randn(shape, generator=generator) for m in hidden},
            hidden=hidden[first],
            modality_hidden=hidden,
        )
        terms = module(output=output, batch=batch, class_weights=None)
        return dict(terms)
    raise ValueError(entry.kind)


def check_component(entry: Entry, modalities: tuple[str, ...] | None = None) -> None:
    """Run every contract check on one registered component; raises AssertionError on a failure.

    ``modalities`` checks one subset of text/audio/visual; by default every subset in
    :data:`MODALITY_SUBSETS` is checked.
    """
    check_config(entry)
    check_search_space(entry)
    for subset in MODALITY_SUBSETS if modalities is None else (modalities,):
        check_on_modalities(entry, subset)


def check_on_modalities(entry: Entry, modalities: tuple[str, ...]) -> bool:
    """The behaviour checks on one subset of modalities; False when the component refused that subset.

    Refusing is allowed on a strict subset (a distiller whose teacher reads text cannot run
    without it) if it happens in the constructor, as a :class:`UserError` (the registry wraps
    ``ValueError``/``TypeError``); on all three modalities the default config must build.
    """
    context = subset_context(modalities)
    where = f"{entry.kind} {entry.name!r} on modalities {'+'.join(context['modalities'])}"
    batch = make_batch(context=context)
    hidden = _hidden(batch)
    try:
        module = _build(entry, context).eval()
    except UserError as refused:
        if len(context["modalities"]) == len(SMALL_CONTEXT["modalities"]):
            raise AssertionError(f"{where}: the default config must build on every modality: {refused}") from refused
        return False
    try:
        outputs = _run(entry, module, batch, hidden)
    except Exception as error:  # a KeyError on a modality the run does not have is the typical failure
        raise AssertionError(f"{where}: forward raised {type(error).__name__}: {error}") from error
    mask = batch.mask
    size = SMALL_CONTEXT["hidden_size"]
    for name, tensor in outputs.items():
        assert torch.isfinite(tensor).all(), f"{where}: {name} has NaN or inf"
        if entry.kind == "distiller" or name.startswith("aux."):
            assert tensor.dim() == 0, f"{where}: loss term {name} must be a scalar"
        else:
            assert tuple(tensor.shape) == (*mask.shape, size), (
                f"{where}: {name} has shape {tuple(tensor.shape)}, expected {(*mask.shape, size)}"
            )
    if entry.kind == "encoder":
        assert set(outputs) == set(context["modalities"]), (
            f"{where}: the encoder returned {sorted(outputs)}, expected exactly the run's modalities")
    if entry.kind == "fuser":
        returned = sorted(name.split(".", 1)[1] for name in outputs if name.startswith("per_modality."))
        assert returned == sorted(context["modalities"]), (
            f"{where}: per_modality has {returned}, expected exactly the run's modalities")
    check_gradients(entry, module, batch, hidden)
    check_mask_invariance(entry, module, batch, hidden, outputs)
    again = _run(entry, _build(entry, context).eval(), batch, hidden)
    for name in outputs:
        assert torch.equal(outputs[name], again[name]), f"{where}: same seed, different {name}"
    return True


def check_search_space(entry: Entry, samples: int = 5) -> None:
    """Every sample of the entry's search space is a valid config that builds (names carry the prefix)."""
    if entry.search_space is None:
        return
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    prefix = f"{entry.kind}.{entry.name}."
    for _ in range(samples):
        trial = study.ask()
        values = entry.search_space(trial, prefix)
        assert isinstance(values, dict), f"{entry.kind} {entry.name!r}: search_space must return a dict"
        unprefixed = [name for name in trial.params if not name.startswith(prefix)]
        assert not unprefixed, f"{entry.kind} {entry.name!r}: search-space parameters {unprefixed} lack the prefix"
        config = entry.make_config(values)
        if entry.kind in _MODEL_KINDS:
            entry.build(config, SMALL_CONTEXT)
        study.tell(trial, 0.0)


def check_dataset(entry: Entry) -> None:
    """A dataset's default config loads a consistent corpus: non-empty splits, sizes, labels and speakers in range."""
    check_config(entry)
    corpus = entry.build(entry.make_config({}), {"data_dir": None}).load()
    info = corpus.info
    assert corpus.train and corpus.test, f"dataset {entry.name!r}: train and test must not be empty"
    for split in ("train", "dev", "test"):
        for dialogue in corpus.split(split):
            n = len(dialogue.labels)
            assert n > 0, f"dataset {entry.name!r}: empty dialogue {dialogue.id!r}"
            assert set(dialogue.features) == set(info.feature_dims), f"dataset {entry.name!r}: modalities differ"
            for modality, dims in info.feature_dims.items():
                assert dialogue.features[modality].shape == (n, dims), (
                    f"dataset {entry.name!r}: {dialogue.id!r} {modality} is {dialogue.features[modality].shape}, "
                    f"expected {(n, dims)}")
            assert ((dialogue.labels >= 0) & (dialogue.labels < info.num_classes)).all(), (
                f"dataset {entry.name!r}: labels of {dialogue.id!r} outside [0, {info.num_classes})")
            assert ((dialogue.speakers >= 0) & (dialogue.speakers < info.num_speakers)).all(), (
                f"dataset {entry.name!r}: speakers of {dialogue.id!r} outside [0, {info.num_speakers})")
    again = entry.build(entry.make_config({}), {"data_dir": None}).load()
    assert again.fingerprint() == corpus.fingerprint(), f"dataset {entry.name!r}: two loads differ"


def _synthetic_clips(kind: str, encoder: Any) -> list[np.ndarray]:
    """Clips of several lengths the way the decoder hands them over: noisy tones (S,), or random frames."""
    generator = np.random.default_rng(0)
    if kind == "audio_encoder":
        rate = int(encoder.sample_rate)
        clips = []
        for seconds, pitch in ((0.05, 180.0), (0.5, 220.0), (1.5, 300.0)):  # the first shorter than most frame windows
            time = np.arange(int(seconds * rate)) / rate
            tone = 0.3 * np.sin(2 * np.pi * pitch * time) + 0.02 * generator.standard_normal(time.size)
            clips.append(tone.astype(np.float32))
        return clips
    width, height = (int(v) for v in encoder.frame_size)
    return [generator.integers(0, 256, size=(steps, height, width, 3), dtype=np.uint8) for steps in (1, 3, 5)]


def check_media_encoder(entry: Entry) -> None:
    """An audio or visual encoder: builds from its default config, has the attributes ``data prepare`` reads, and
    maps clips to finite (n, D) float32 rows that do not depend on the other clips of the call."""
    assert entry.kind in ("audio_encoder", "visual_encoder"), f"{entry.name!r} is a {entry.kind}, not a media encoder"
    check_config(entry)
    encoder = entry.build(entry.make_config({}), {})
    where = f"{entry.kind} {entry.name!r}"
    needed = ("sample_rate",) if entry.kind == "audio_encoder" else ("frame_rate", "frame_size")
    for attribute in ("name", "version", "dimension", *needed):
        assert getattr(encoder, attribute, None) not in (None, ""), f"{where}: lacks the attribute {attribute!r}"
    dimension = int(encoder.dimension)
    clips = _synthetic_clips(entry.kind, encoder)
    vectors = np.asarray(encoder.encode(clips))
    assert vectors.shape == (len(clips), dimension), f"{where}: encode gave {vectors.shape}, expected " \
                                                     f"{(len(clips), dimension)}"
    assert vectors.dtype == np.float32, f"{where}: encode gave {vectors.dtype}, expected float32"
    assert np.isfinite(vectors).all(), f"{where}: NaN or infinite values (clips of 0.05 s included)"
    alone = np.asarray(encoder.encode(clips[::-1]))[::-1]
    np.testing.assert_allclose(alone, vectors, rtol=1e-5, atol=1e-6,
                               err_msg=f"{where}: a clip's row depends on the order or company of other clips")
    assert np.asarray(encoder.encode([])).shape == (0, dimension), f"{where}: encode([]) must be (0, D)"


def check_config(entry: Entry) -> None:
    """Defaults validate, the config round-trips through a dict, and unknown keys are rejected."""
    config = entry.make_config({})
    assert entry.config is not None
    assert entry.config.model_validate(config.model_dump()) == config, f"{entry.name!r}: config does not round-trip"
    try:
        entry.config.model_validate({"surely_not_an_option": 1})
    except pydantic.ValidationError:
        pass
    else:
        raise AssertionError(f"{entry.kind} {entry.name!r}: config accepts unknown keys (use extra='forbid')")


def check_gradients(entry: Entry, module: torch.nn.Module, batch: Batch, hidden: dict[str, torch.Tensor]) -> None:
    """Every trainable parameter (and, for distillers, the model outputs) receives a non-zero gradient."""
    module.zero_grad(set_to_none=True)
    if entry.kind == "distiller":
        _check_distiller_gradients(entry, module, batch, hidden)
    else:
        hidden = {m: h.clone().requires_grad_(True) for m, h in hidden.items()}
        outputs = _run(entry, module, batch, hidden)
        total = sum((t[batch.mask].sum() if t.dim() > 0 else t) for t in outputs.values())
        total.backward()
    for name, parameter in module.named_parameters():
        if parameter.requires_grad:
            assert parameter.grad is not None and parameter.grad.abs().sum() > 0, (
                f"{entry.kind} {entry.name!r}: parameter {name} receives no gradient"
            )
            assert torch.isfinite(parameter.grad).all(), f"{entry.kind} {entry.name!r}: NaN gradient in {name}"


def _check_distiller_gradients(entry: Entry, module: torch.nn.Module, batch: Batch, hidden: dict) -> None:
    shape = (*batch.mask.shape, SMALL_CONTEXT["num_classes"])
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(shape, generator=generator, requires_grad=True)
    modality_logits = {m: torch.randn(shape, generator=generator, requires_grad=True) for m in hidden}
    # Representations too: a distiller may work on them alone (contrastive or correlation losses).
    fused = next(iter(hidden.values())).clone().requires_grad_(True)
    per_modality = {m: h.clone().requires_grad_(True) for m, h in hidden.items()}
    output = ModelOutput(logits=logits, modality_logits=modality_logits, hidden=fused, modality_hidden=per_modality)
    terms = module(output=output, batch=batch, class_weights=None)
    if not terms:
        return
    sum(terms.values()).backward()
    outputs = [logits, *modality_logits.values(), fused, *per_modality.values()]
    reached = [t for t in outputs if t.grad is not None and t.grad.abs().sum() > 0]
    assert reached, f"distiller {entry.name!r}: its loss terms send no gradient to the model's outputs"
    for t in reached:
        assert torch.isfinite(t.grad).all(), f"distiller {entry.name!r}: NaN gradient"
        assert torch.all(t.grad[~batch.mask] == 0), f"distiller {entry.name!r}: gradient reaches padded positions"


def check_mask_invariance(
    entry: Entry, module: torch.nn.Module, batch: Batch, hidden: dict[str, torch.Tensor], outputs: dict
) -> None:
    """Changing what sits in padded positions changes no real output."""
    noisy = _with_noisy_padding(batch)
    padded = ~batch.mask
    noisy_hidden = {m: torch.where(padded[..., None], torch.randn_like(h) * 10, h) for m, h in hidden.items()}
    if entry.kind == "distiller":
        return _check_distiller_mask_invariance(entry, module, batch)
    changed = _run(entry, module, noisy, noisy_hidden)
    for name, tensor in outputs.items():
        if tensor.dim() == 0:
            continue
        assert torch.allclose(tensor[batch.mask], changed[name][batch.mask], atol=1e-5), (
            f"{entry.kind} {entry.name!r}: padded positions change the real outputs of {name}"
        )


def _check_distiller_mask_invariance(entry: Entry, module: torch.nn.Module, batch: Batch) -> None:
    shape = (*batch.mask.shape, SMALL_CONTEXT["num_classes"])
    generator = torch.Generator().manual_seed(4)
    logits = torch.randn(shape, generator=generator)
    modality_logits = {m: torch.randn(shape, generator=generator) for m in batch.features}
    hidden = _hidden(batch)

    def terms(scale_padding: float) -> dict[str, torch.Tensor]:
        pad = (~batch.mask)[..., None].float() * scale_padding
        output = ModelOutput(
            logits=logits + pad * 50,
            modality_logits={m: x - pad * 50 for m, x in modality_logits.items()},
            hidden=next(iter(hidden.values())),
            modality_hidden=hidden,
        )
        return module(output=output, batch=batch, class_weights=None)

    clean, noisy = terms(0.0), terms(1.0)
    for name in clean:
        assert torch.allclose(clean[name], noisy[name], atol=1e-5), (
            f"distiller {entry.name!r}: padded positions change loss term {name}"
        )

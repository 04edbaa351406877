"""DialogueRNN: party states change only on their own turns, direction and padding behaviour,
speaker-identity invariance, the fuser and mixer on modality subsets, and the recipe end to end."""

import json

import pytest
import torch

from merc_bench.cli import main
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.testing import make_batch
from merc_bench.trainer import Trainer
from merc_bench_dialoguernn.cell import DialogueRNN, DialogueRNNDirection, reversal_index
from merc_bench_dialoguernn.fuser import DialogueRNNFuser, DialogueRNNFuserConfig
from merc_bench_dialoguernn.mixer import DialogueRNNMixer, DialogueRNNMixerConfig

SIZES = dict(global_size=6, party_size=5, emotion_size=4)


def direction(listener_update: bool = False) -> DialogueRNNDirection:
    torch.manual_seed(0)
    return DialogueRNNDirection(
        input_size=3, parties=3, context_attention="general", listener_update=listener_update, state_dropout=0.0,
        **SIZES,
    ).eval()


def rnn(**options) -> DialogueRNN:
    torch.manual_seed(0)
    return DialogueRNN(input_size=3, parties=3, **SIZES, **options).eval()


SPEAKERS = torch.tensor([[0, 1, 0, 0, 1]])  # party 2 never speaks


def test_a_party_state_changes_only_on_its_own_turns():
    x = torch.randn(1, 5, 3)
    _, states = direction()(x, SPEAKERS, keep_party_states=True)  # (1, 5, P, D_p)
    assert torch.all(states[0, :, 2] == 0)  # never spoke: still the initial zero state
    party_1 = states[0, :, 1]
    assert torch.all(party_1[0] == 0)  # before its first turn
    assert not torch.equal(party_1[1], party_1[0])  # its turn at step 1
    assert torch.equal(party_1[3], party_1[1])  # steps 2 and 3 belong to party 0
    assert not torch.equal(party_1[4], party_1[3])  # its turn at step 4
    party_0 = states[0, :, 0]
    assert torch.equal(party_0[1], party_0[0]) and torch.equal(party_0[4], party_0[3])
    assert not torch.equal(party_0[2], party_0[1]) and not torch.equal(party_0[3], party_0[2])


def test_active_listeners_update_on_other_turns():
    x = torch.randn(1, 5, 3)
    _, states = direction(listener_update=True)(x, SPEAKERS, keep_party_states=True)
    assert not torch.all(states[0, 0, 1] == 0)  # party 1 listened to party 0's first utterance
    assert not torch.all(states[0, :, 2] == 0)  # even the silent party hears everything
    assert not torch.equal(states[0, 3, 1], states[0, 2, 1])


def test_bidirectional_output_depends_on_later_utterances_and_unidirectional_does_not():
    mask = torch.ones(1, 5, dtype=torch.bool)
    x = torch.randn(1, 5, 3)
    later = x.clone()
    later[0, 4] += 1.0  # change only the last utterance
    forward_only = rnn(bidirectional=False)
    assert torch.equal(forward_only(x, SPEAKERS, mask)[0, :4], forward_only(later, SPEAKERS, mask)[0, :4])
    both = rnn(bidirectional=True)
    assert not torch.allclose(both(x, SPEAKERS, mask)[0, 1], both(later, SPEAKERS, mask)[0, 1])
    # The emotion attention looks at the whole dialogue, so it sees the future even unidirectionally.
    attending = rnn(bidirectional=False, emotion_attention=True)
    assert not torch.allclose(attending(x, SPEAKERS, mask)[0, 1], attending(later, SPEAKERS, mask)[0, 1])


def test_reversal_index_reverses_within_each_length():
    mask = torch.tensor([[True, True, True], [True, True, False], [True, False, False]])
    assert reversal_index(mask).tolist() == [[2, 1, 0], [1, 0, 2], [0, 1, 2]]


@pytest.mark.parametrize("options", [dict(bidirectional=True, emotion_attention=True),
                                     dict(bidirectional=True, listener_update=True)])
def test_a_padded_dialogue_gives_the_same_outputs_as_alone(options):
    model = rnn(**options)
    x = torch.randn(2, 6, 3)
    speakers = torch.tensor([[0, 1, 0, 2, 1, 0], [1, 1, 0, 2, 2, 2]])  # padded speaker values are arbitrary
    mask = torch.tensor([[True] * 6, [True, True, True, False, False, False]])
    together = model(x, speakers, mask)
    alone = model(x[1:, :3], speakers[1:, :3], torch.ones(1, 3, dtype=torch.bool))
    assert torch.allclose(together[1, :3], alone[0], atol=1e-6)


def test_renaming_the_speakers_changes_nothing_but_who_speaks_matters():
    model = rnn(bidirectional=True, emotion_attention=True)
    mask = torch.ones(1, 5, dtype=torch.bool)
    x = torch.randn(1, 5, 3)
    renamed = torch.tensor([[2, 0, 2, 2, 0]])  # same turn structure, other party indices
    assert torch.allclose(model(x, SPEAKERS, mask), model(x, renamed, mask), atol=1e-6)
    other_turns = torch.tensor([[0, 1, 1, 0, 1]])
    assert not torch.allclose(model(x, SPEAKERS, mask), model(x, other_turns, mask))


def test_collate_padding_speaker_is_accepted():
    batch = make_batch(lengths=(4, 2))  # collate pads speakers with num_speakers (out of range)
    assert int(batch.speakers.max()) == 3
    model = DialogueRNN(input_size=12, parties=3, **SIZES).eval()
    out = model(batch.features["text"], batch.speakers, batch.mask)
    assert out.shape == (2, 4, 8) and torch.isfinite(out).all()


@pytest.mark.parametrize("modalities", [("text",), ("text", "audio"), ("text", "audio", "visual")])
def test_fuser_concatenates_any_subset_and_passes_mixed_through(modalities):
    torch.manual_seed(0)
    fuser = DialogueRNNFuser(DialogueRNNFuserConfig(**SIZES), modalities=modalities, hidden_size=8, num_speakers=3).eval()
    assert fuser.rnn.forward_direction.global_cell.input_size == len(modalities) * 8 + SIZES["party_size"]
    batch = make_batch(lengths=(4, 2))
    mixed = {m: torch.randn(2, 4, 8) for m in modalities}
    encoded = {m: torch.randn(2, 4, 8) for m in modalities}
    out = fuser(mixed=mixed, encoded=encoded, mask=batch.mask, speakers=batch.speakers)
    assert out.fused.shape == (2, 4, 8)
    assert all(out.per_modality[m] is mixed[m] for m in modalities)
    again = fuser(mixed={m: -h for m, h in mixed.items()}, encoded=encoded, mask=batch.mask, speakers=batch.speakers)
    assert torch.equal(out.fused, again.fused)  # source="encoded": the mixers' outputs are not fused


def test_mixer_without_projection_needs_matching_sizes():
    DialogueRNNMixer(DialogueRNNMixerConfig(bidirectional=False, output_projection=False), hidden_size=8, num_speakers=3)
    with pytest.raises(ValueError, match="output_projection"):
        DialogueRNNMixer(DialogueRNNMixerConfig(bidirectional=True, output_projection=False), hidden_size=8,
                         num_speakers=3)
    mixer = DialogueRNNMixer(DialogueRNNMixerConfig(), hidden_size=8, num_speakers=3).eval()
    batch = make_batch(lengths=(4, 2))
    out = mixer(torch.randn(2, 4, 8), batch.mask, speakers=batch.speakers)
    assert out.shape == (2, 4, 8) and (out >= 0).all()  # ReLU output, as MultiEMO's BiModel


def test_recipe_sizes_follow_the_family():
    registry = get_registry()
    meld = prepare(registry, recipe="dialoguernn", dataset="synthetic", flags={"device": "cpu"}).config
    iemocap = prepare(registry, recipe="dialoguernn", dataset="synthetic", overrides=["dataset.shape=iemocap"],
                      flags={"device": "cpu"}).config
    assert meld.model.hidden_size == 100 and meld.fuser.config["global_size"] == 150 and meld.training.lr == 5e-4
    assert iemocap.model.hidden_size == 300 and iemocap.fuser.config["party_size"] == 500
    assert iemocap.training.class_weights == "inverse_frequency" and iemocap.training.epochs == 60


TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=3", "dataset.test_dialogues=3", "model.hidden_size=16",
        "fuser.global_size=12", "fuser.party_size=12", "fuser.emotion_size=8"]


def test_recipe_trains_one_epoch():
    registry = get_registry()
    prepared = prepare(registry, recipe="dialoguernn", dataset="synthetic", overrides=TINY + ["training.epochs=1"],
                       flags={"device": "cpu"})
    result = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry).fit(0)
    assert len(result.history) == 1
    assert 0.0 <= result.test["weighted_f1"] <= 1.0


def test_cli_runs_the_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    overrides = [arg for item in TINY for arg in ("--set", item)]
    with pytest.raises(SystemExit) as stop:
        main(["run", "dialoguernn", "--epochs", "1", "--no-track", "--out", str(tmp_path / "out"), *overrides])
    assert stop.value.code == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text())
    assert result["recipe"] == "dialoguernn" and 0.0 <= result["test"]["weighted_f1"]["mean"] <= 1.0

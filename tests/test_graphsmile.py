"""GraphSmile: the inter-modal pair graph (edges checked against lists written by hand, the
normalisation against a direct computation), the alternation of inter- and intra-modal cues across
GSF layers, the SDP pairs and targets (against the authors' block enumeration, re-derived here with
loops), the masked batch normalisation of the encoder, and the recipe training end to end."""

import math

import pytest
import torch
import torch.nn.functional as F

from merc_bench import UserError
from merc_bench.model import ModelOutput
from merc_bench.pipeline import prepare
from merc_bench.plugins import get_registry
from merc_bench.testing import make_batch
from merc_bench.trainer import Trainer
from merc_bench_graphsmile.encoder import GraphSmileEncoder, GraphSmileEncoderConfig
from merc_bench_graphsmile.fuser import GraphSmileFuser, GraphSmileFuserConfig, PairGraph
from merc_bench_graphsmile.graph import pair_adjacency, pair_edges
from merc_bench_graphsmile.sentiment_dynamics import (
    FAMILY_SENTIMENTS, SentimentDynamics, SentimentDynamicsConfig, class_targets, shift_pairs)

# A dialogue of 4 utterances padded to 5, and one of 2 utterances.
MASK = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
L = MASK.shape[1]

# Inter-modal edges (target, source) of the first dialogue with p = 1, f = 0, nodes a0..a4 = 0..4 and
# b0..b4 = 5..9, by hand: a_i ← b_j and b_i ← a_j for j ∈ {i − 1, i}.
EXPECTED_FIRST = {
    (0, 5), (1, 5), (1, 6), (2, 6), (2, 7), (3, 7), (3, 8),
    (5, 0), (6, 0), (6, 1), (7, 1), (7, 2), (8, 2), (8, 3),
}
EXPECTED_SECOND = {(0, 5), (1, 5), (1, 6), (5, 0), (6, 0), (6, 1)}


def edge_set(adjacency: torch.Tensor) -> set[tuple[int, int]]:
    return {tuple(pair) for pair in adjacency.nonzero().tolist()}


def test_pair_edges_are_inter_modal_within_the_window_and_never_touch_padding():
    edges = pair_edges(MASK, past=1, future=0)
    assert edges.shape == (2, 2 * L, 2 * L)
    assert edge_set(edges[0]) == EXPECTED_FIRST
    assert edge_set(edges[1]) == EXPECTED_SECOND
    # The authors' enumeration for a wider, asymmetric window: a_i ← b_j for max(0, i − p) ≤ j ≤ min(n − 1, i + f).
    for past, future in [(2, 1), (0, 3), (10, 10)]:
        edges = pair_edges(MASK, past, future)
        for dialogue, n in enumerate(MASK.sum(1).tolist()):
            expected = set()
            for i in range(n):
                for j in range(max(0, i - past), min(n, i + future + 1)):
                    expected |= {(i, L + j), (L + i, j)}
            assert edge_set(edges[dialogue]) == expected, (past, future, dialogue)


def test_pair_adjacency_is_the_normalised_weighted_graph():
    past, future = 2, 1
    weights = torch.arange(1, 2 * (past + 1 + future) + 1, dtype=torch.float32).view(2, -1) / 3  # distinct
    adjacency = pair_adjacency(MASK, past, future, weights)
    for dialogue, n in enumerate(MASK.sum(1).tolist()):
        raw = torch.zeros(2 * L, 2 * L)
        for i in range(n):
            for j in range(max(0, i - past), min(n, i + future + 1)):
                raw[i, L + j] = weights[0, j - i + past]  # a_i ← b_j
                raw[L + i, j] = weights[1, j - i + past]  # b_i ← a_j
        degree = raw.sum(1)
        expected = torch.zeros_like(raw)
        for r in range(2 * L):
            for c in range(2 * L):
                if raw[r, c]:
                    expected[r, c] = raw[r, c] / math.sqrt(degree[r] * degree[c])
        torch.testing.assert_close(adjacency[dialogue], expected)
    uniform = pair_adjacency(MASK, past, future)
    assert edge_set(uniform[0]) == edge_set(pair_edges(MASK, past, future)[0])
    # Spelled out: a2 has 4 neighbours (b0..b3), b3 has 3 (a1..a3), so the edge a2 ← b3 weighs 1/√12.
    assert torch.allclose(uniform[0][2, L + 3], torch.tensor(1 / math.sqrt(4 * 3)))


def _changes(graph: PairGraph, which: str, utterance: int, target: int) -> bool:
    """Does changing modality ``which`` at ``utterance`` change z_a at ``target`` (first dialogue)?"""
    torch.manual_seed(0)
    a, b = torch.randn(2, L, 8), torch.randn(2, L, 8)
    before = graph(a, b, MASK)[0][0, target]
    (a if which == "a" else b)[0, utterance] += 5.0
    return not torch.allclose(before, graph(a, b, MASK)[0][0, target], atol=1e-6)


@pytest.mark.parametrize("edge_weights", ["offset", "uniform"])
def test_odd_layers_bring_the_other_modality_and_even_layers_the_own_context(edge_weights):
    window = {"window_past": 1, "window_future": 0, "edge_weights": edge_weights, "dropout": 0.0}
    torch.manual_seed(0)
    one = PairGraph(8, GraphSmileFuserConfig(layers=1, **window)).eval()
    torch.manual_seed(0)
    two = PairGraph(8, GraphSmileFuserConfig(layers=2, **window)).eval()
    # One layer: a_2 sees b_1 and b_2, but no other a (no intra-modal edges) and nothing outside the window.
    assert _changes(one, "b", 1, 2) and _changes(one, "b", 2, 2)
    assert not _changes(one, "a", 1, 2) and not _changes(one, "b", 3, 2) and not _changes(one, "b", 0, 2)
    # Two layers: a_2 ← b_1 ← a_0 and a_1 (its own modality's context, two steps back), still not a_3.
    assert _changes(two, "a", 0, 2) and _changes(two, "a", 1, 2)
    assert not _changes(two, "a", 3, 2) and not _changes(two, "b", 3, 2)


def test_fuser_averages_the_pair_outputs_and_passes_a_single_modality_through_its_fusion_map():
    torch.manual_seed(0)
    fuser = GraphSmileFuser(GraphSmileFuserConfig(layers=2, dropout=0.0), modalities=("text", "audio", "visual"),
                            hidden_size=8).eval()
    assert [tuple(p) for p in fuser.pairs] == [("text", "audio"), ("text", "visual"), ("audio", "visual")]
    mixed = {m: torch.randn(2, L, 8) for m in ("text", "audio", "visual")}
    out = fuser(mixed=mixed, encoded=mixed, mask=MASK)
    parts = []
    for (a, b), graph in zip(fuser.pairs, fuser.graphs):
        z_a, z_b = graph(mixed[a], mixed[b], MASK)
        parts += [fuser.fusion(z_a), fuser.fusion(z_b)]
    torch.testing.assert_close(out.fused, torch.stack(parts).mean(0))
    torch.testing.assert_close(out.per_modality["text"], (parts[0] + parts[2]) / 2)
    alone = GraphSmileFuser(GraphSmileFuserConfig(), modalities=("audio",), hidden_size=8).eval()
    single = alone(mixed={"audio": mixed["audio"]}, encoded={}, mask=MASK)
    torch.testing.assert_close(single.fused, alone.fusion(mixed["audio"]))
    assert len(list(alone.parameters())) == 2  # the fusion map only: no pair, no graph


def _block_pairs(n: int, window: int | None, self_pairs: bool) -> set[tuple[int, int]]:
    """The authors' SDP pairs of one dialogue of n utterances: consecutive blocks of ``window``
    (the last one n mod window long), every ordered pair inside a block."""
    size = n if window is None else window
    pairs, start = set(), 0
    for block in range(math.ceil(n / size)):
        width = n % size if block == math.ceil(n / size) - 1 and n % size else size
        pairs |= {(start + i, start + j) for i in range(width) for j in range(width) if self_pairs or i != j}
        start += size
    return pairs


@pytest.mark.parametrize("window", [None, 1, 2, 3, 19])
@pytest.mark.parametrize("self_pairs", [True, False])
def test_shift_pairs_follow_the_authors_blocks(window, self_pairs):
    mask = torch.tensor([[1] * 7 + [0], [1] * 3 + [0] * 5, [1] + [0] * 7], dtype=torch.bool)
    pairs = shift_pairs(mask, window, self_pairs)
    for dialogue, n in enumerate(mask.sum(1).tolist()):
        assert edge_set(pairs[dialogue]) == _block_pairs(n, window, self_pairs)


def test_sentiment_targets_follow_the_authors_iemocap_mapping_and_refuse_unknown_label_sets():
    iemocap = class_targets(SentimentDynamicsConfig(labels="sentiment"), "iemocap", 6)
    # The authors' dataloader: sad, ang, fru → 0; neu → 1; hap, exc → 2 (negative, neutral, positive).
    assert iemocap.tolist() == [2, 0, 1, 0, 2, 0]
    meld = class_targets(SentimentDynamicsConfig(), "meld", 7)
    assert meld.tolist() == [1, 0, 0, 0, 2, 0, 0]
    assert class_targets(SentimentDynamicsConfig(), "meld", 4).tolist() == [0, 1, 2, 3]  # auto → emotions
    explicit = SentimentDynamicsConfig(class_sentiments=["neutral", "positive", *["negative"] * 5])
    assert class_targets(explicit, "meld", 7).tolist()[:2] == [1, 2]  # surprise → positive on request
    with pytest.raises(UserError, match="no sentiment mapping for a 'meld' dataset with 4 classes"):
        class_targets(SentimentDynamicsConfig(labels="sentiment"), "meld", 4)
    with pytest.raises(UserError, match="distiller.class_sentiments has 7 values, but the dataset has 6 classes"):
        class_targets(explicit, "iemocap", 6)
    assert set(map(len, FAMILY_SENTIMENTS.values())) == {6, 7}


def test_sdp_terms_equal_a_direct_computation_on_concatenated_pairs():
    torch.manual_seed(0)
    config = SentimentDynamicsConfig(labels="sentiment", shift_window=3, sentiment_weight=0.5, shift_weight=0.2)
    sdp = SentimentDynamics(config, hidden_size=8, num_classes=7, family="meld")
    batch = make_batch(lengths=(7, 4, 1), context={"feature_dims": {"text": 3}, "modalities": ("text",),
                                                  "num_speakers": 2, "num_classes": 7})
    hidden = torch.randn(*batch.mask.shape, 8)
    output = ModelOutput(logits=torch.zeros(*batch.mask.shape, 7), modality_logits={}, hidden=hidden,
                         modality_hidden={})
    terms = sdp(output=output, batch=batch, class_weights=None)
    sentiment_of = FAMILY_SENTIMENTS["meld"]
    logits, shifted, predictions, labels = [], [], [], []
    for dialogue, n in enumerate(batch.mask.sum(1).tolist()):
        s = [sentiment_of[c] for c in batch.labels[dialogue, :n].tolist()]
        for i, j in sorted(_block_pairs(n, 3, True)):
            logits.append(sdp.shift(torch.cat([hidden[dialogue, i], hidden[dialogue, j]])))
            shifted.append(int(s[i] != s[j]))
        predictions.append(sdp.classifier(hidden[dialogue, :n]))
        labels += [("negative", "neutral", "positive").index(x) for x in s]
    expected_shift = F.cross_entropy(torch.stack(logits), torch.tensor(shifted))
    expected_sentiment = F.cross_entropy(torch.cat(predictions), torch.tensor(labels))
    torch.testing.assert_close(terms["shift"], 0.2 * expected_shift)
    torch.testing.assert_close(terms["sentiment"], 0.5 * expected_sentiment)
    assert 0 < sum(shifted) < len(shifted)  # the check covers both targets


def test_encoder_normalises_over_real_utterances_only():
    torch.manual_seed(0)
    encoder = GraphSmileEncoder(GraphSmileEncoderConfig(normalise="all", dropout=0.0), feature_dims={"text": 4},
                                hidden_size=6).train()
    x = torch.randn(2, L, 4) * 3 + 1
    noisy = torch.where(MASK[..., None], x, torch.randn_like(x) * 100)
    clean_out = encoder(features={"text": x}, speakers=None, mask=MASK)["text"]
    noisy_out = encoder(features={"text": noisy}, speakers=None, mask=MASK)["text"]
    torch.testing.assert_close(clean_out[MASK], noisy_out[MASK])
    # The statistics are those of the 6 real rows: the normalised real features have mean 0, variance 1.
    norm = encoder.norms["text"]
    real = x[MASK]
    direct = (real - real.mean(0)) / torch.sqrt(real.var(0, unbiased=False) + norm.eps)
    projection = encoder.projections["text"]
    torch.testing.assert_close(clean_out[MASK], projection(direct))
    # One real utterance in a training batch: the running statistics, no error, no update.
    running = norm.running_mean.clone()
    single = torch.tensor([[1, 0, 0, 0, 0]], dtype=torch.bool)
    out = encoder(features={"text": x[:1]}, speakers=None, mask=single)["text"]
    assert torch.isfinite(out).all() and torch.equal(norm.running_mean, running)


@pytest.mark.parametrize("shape", ["meld", "iemocap"])
def test_recipe_trains_end_to_end_with_its_auxiliary_terms(shape):
    registry = get_registry()
    overrides = [f"dataset.shape={shape}", "dataset.train_dialogues=8", "dataset.dev_dialogues=3",
                 "dataset.test_dialogues=3", "model.hidden_size=32", "training.epochs=3", "training.lr=0.003",
                 "training.save_checkpoint=false"]
    prepared = prepare(registry, recipe="graphsmile", dataset="synthetic", overrides=overrides,
                       flags={"device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    model, distiller = trainer.build()
    assert distiller.classifier.out_features == 3  # the family's coarse sentiments, not the emotions
    _, terms, _ = trainer.loss(model, distiller, trainer._batches(prepared.corpus.train, None)[0])
    assert set(terms) == {"task", "sentiment", "shift"}
    result = trainer.fit(0)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 3 and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0], losses
    assert 0.0 <= result.test["weighted_f1"] <= 1.0


@pytest.mark.parametrize("family, dims, classes", [("meld", {"text": 1024, "audio": 300, "visual": 342}, 7),
                                                   ("iemocap", {"text": 1024, "audio": 1582, "visual": 342}, 6)])
def test_parameter_count_is_the_authors_architecture_without_their_edge_vectors(family, dims, classes):
    """The authors' model (model.py/module.py) counted by hand: text batch norm, one Linear per modality,
    per pair K GCN layers and K output layers (H² + H each), the shared fusion map, the emotion, sentiment
    and shift heads — less their 500,000-slot edge vectors and unused fc_layer prototypes, plus the
    2·(p + 1 + f) offset weights per pair used here instead."""
    from merc_bench.config import RunConfig
    from merc_bench.data import DatasetInfo
    from merc_bench.model import build_model

    registry = get_registry()
    values = registry.get("recipe", "graphsmile").obj.resolve(family)
    config = RunConfig.model_validate(dict(values, dataset={"name": "synthetic"}))
    info = DatasetInfo("paper-shaped", family, tuple(f"c{i}" for i in range(classes)), dims, 2)
    with torch.device("meta"):
        model, distiller = build_model(config, info, registry, check_size=False)
    h, k = config.model.hidden_size, config.fuser.config["layers"]
    slots = config.fuser.config["window_past"] + 1 + config.fuser.config["window_future"]
    square = h * h + h
    expected = (2 * dims["text"] + sum(d * h + h for d in dims.values()) + 3 * (2 * k * square + 2 * slots)
                + square + (h * classes + classes) + (h * 3 + 3) + (2 * h * 2 + 2))
    assert sum(p.numel() for m in (model, distiller) for p in m.parameters()) == expected

"""CORECT: its relational temporal graph (checked against edges written by hand and against the
authors' window construction re-enacted with Python loops), its graph layers against direct
computations, the branches on every modality subset, and the recipe end to end."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from merc_bench import UserError
from merc_bench.plugins import get_registry
from merc_bench.pipeline import prepare
from merc_bench.testing import MODALITY_SUBSETS, make_batch
from merc_bench.trainer import Trainer
from merc_bench_corect.crossmodal import PairwiseCrossmodal
from merc_bench_corect.encoder import CorectEncoder, CorectEncoderConfig, authors_head_count
from merc_bench_corect.fuser import (
    CorectFuser,
    CorectFuserConfig,
    GraphTransformer,
    RealNodeBatchNorm,
    RelationalGraphConv,
)
from merc_bench_corect.graph import received_window, relation_adjacency, relation_count

# Two dialogues padded to 5 utterances: the first has 4 real ones, the second 2.
MASK = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
LENGTH = MASK.shape[1]


def edges_of(adjacency: torch.Tensor, dialogue: int) -> dict[tuple[int, int], int]:
    """{(target node, source node): relation} of one dialogue of a (B, R, N, N) adjacency."""
    found = {}
    for relation, target, source in adjacency[dialogue].nonzero().tolist():
        assert (target, source) not in found, "an edge has two relations"
        found[(target, source)] = relation
    return found


def node(modality: int, utterance: int) -> int:
    return modality * LENGTH + utterance


def test_temporal_and_cross_modal_edges_by_hand():
    # Two modalities, window past 1 / future 2 as written: 3·2 temporal + 2 cross-modal relations.
    adjacency = relation_adjacency(MASK, 2, past=1, future=2)
    assert adjacency.shape == (2, relation_count(2), 2 * LENGTH, 2 * LENGTH) and relation_count(2) == 8
    edges = edges_of(adjacency, 0)
    # Utterance 1 of modality 0 hears utterance 0 (past: 0·M + 0 = 0), itself (2·M + 0 = 4), 2 and 3
    # (future: 1·M + 0 = 2) of its own modality, and utterance 1 of modality 1 (pair (1 → 0): 6 + 1 = 7).
    heard = {source: relation for (target, source), relation in edges.items() if target == node(0, 1)}
    assert heard == {node(0, 0): 0, node(0, 1): 4, node(0, 2): 2, node(0, 3): 2, node(1, 1): 7}
    # Utterance 3 of modality 1: 2 (past, 0·M + 1 = 1), itself (2·M + 1 = 5); 4 is padding; from modality 0: 6.
    heard = {source: relation for (target, source), relation in edges.items() if target == node(1, 3)}
    assert heard == {node(1, 2): 1, node(1, 3): 5, node(0, 3): 6}
    # Nothing reaches or leaves padding; the second dialogue's graph stops at its second utterance.
    padded = {node(m, 4) for m in range(2)}
    assert not any(t in padded or s in padded for t, s in edges)
    assert {t % LENGTH for t, _ in edges_of(adjacency, 1)} == {0, 1}


def test_edges_match_a_direct_enumeration_on_three_modalities():
    past, future, modalities = 2, 1, 3
    adjacency = relation_adjacency(MASK, modalities, past=past, future=future)
    for dialogue, real in enumerate(MASK.sum(dim=1).tolist()):
        expected = {}
        for m, i in itertools.product(range(modalities), range(real)):
            for j in range(max(0, i - past), min(real, i + future + 1)):
                direction = 0 if j < i else 1 if j > i else 2
                expected[(node(m, i), node(m, j))] = direction * modalities + m
            pairs = [(k, t) for k in range(modalities) for t in range(modalities) if k != t]
            for k in range(modalities):
                if k != m:
                    expected[(node(m, i), node(k, i))] = 3 * modalities + pairs.index((k, m))
        assert edges_of(adjacency, dialogue) == expected


def test_edge_switches():
    only_self = relation_adjacency(MASK, 2, past=3, future=3, temporal=False, cross_modal=False)
    assert only_self.shape[1] == relation_count(2, temporal=False, cross_modal=False) == 2
    assert set(edges_of(only_self, 0)) == {(node(m, i), node(m, i)) for m in range(2) for i in range(4)}
    no_cross = relation_adjacency(MASK, 2, past=3, future=3, cross_modal=False)
    assert all((t >= LENGTH) == (s >= LENGTH) for t, s in edges_of(no_cross, 0))  # never across modalities
    one = relation_adjacency(MASK, 1, past=1, future=1)
    assert one.shape[1] == relation_count(1) == 3


def authors_code_edges(length: int, modalities: int, past: int, future: int) -> set[tuple[int, int]]:
    """(target, source) node pairs as the authors' code builds them: each centre c sends to the
    utterances of range(c − past, c + future), clipped to the dialogue, within each modality."""
    pairs = set()
    for centre, m in itertools.product(range(length), range(modalities)):
        for other in range(max(0, centre - past), min(length, centre + future)):
            pairs.add((m * LENGTH + other, m * LENGTH + centre))  # message centre → other
    return pairs


@pytest.mark.parametrize(("past", "future"), [(11, 5), (1, 3), (2, 1)])
def test_authors_code_window_convention_reproduces_their_edges(past, future):
    received = received_window(past, future, "authors_code")
    adjacency = relation_adjacency(MASK[:1], 2, past=received[0], future=received[1], cross_modal=False)
    assert set(edges_of(adjacency, 0)) == authors_code_edges(4, 2, past, future)
    assert received_window(past, future, "paper") == (past, future)


def test_authors_code_convention_needs_a_future_window():
    with pytest.raises(ValueError, match="window_future >= 1"):
        received_window(3, 0, "authors_code")
    with pytest.raises(ValueError):
        CorectFuserConfig(window_future=0, window_convention="authors_code")
    with pytest.raises(ValueError, match="at least one"):
        CorectFuserConfig(graph=False, crossmodal=False)


def test_relational_conv_is_the_mean_per_relation_written_out():
    torch.manual_seed(0)
    adjacency = relation_adjacency(MASK, 2, past=1, future=1)  # (B, R, N, N)
    layer = RelationalGraphConv(6, adjacency.shape[1])
    x = torch.randn(2, 2 * LENGTH, 6)
    out = layer(x, adjacency)
    for b, n in itertools.product(range(2), range(2 * LENGTH)):
        expected = layer.root(x[b, n])
        for r in range(adjacency.shape[1]):
            sources = adjacency[b, r, n].nonzero().flatten().tolist()
            if sources:
                expected = expected + sum(x[b, s] @ layer.kernels[r] for s in sources) / len(sources)
        torch.testing.assert_close(out[b, n], expected, atol=1e-5, rtol=1e-5)


def test_graph_transformer_attends_over_neighbours_only():
    torch.manual_seed(0)
    layer = GraphTransformer(4, heads=2)
    h = torch.randn(1, 6, 4)
    neighbours = torch.zeros(1, 6, 6, dtype=torch.bool)
    neighbours[0, 0, [0, 2, 5]] = True
    out = layer(h, neighbours)
    q, k, v = (proj(h[0, 0]).view(2, 4) for proj in (layer.query, layer.key, layer.value))
    expected = []
    for head in range(2):
        keys = torch.stack([layer.key(h[0, j]).view(2, 4)[head] for j in (0, 2, 5)])
        values = torch.stack([layer.value(h[0, j]).view(2, 4)[head] for j in (0, 2, 5)])
        alpha = torch.softmax(keys @ q[head] / math.sqrt(4), dim=0)
        expected.append(alpha @ values)
    torch.testing.assert_close(out[0, 0], torch.cat(expected) + layer.skip(h[0, 0]), atol=1e-5, rtol=1e-5)


def test_batch_norm_uses_real_nodes_only():
    torch.manual_seed(0)
    norm = RealNodeBatchNorm(3).train()
    x = torch.randn(2, 5, 3)
    real = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], dtype=torch.bool)
    out = norm(x, real)
    reference = F.batch_norm(x[real], None, None, training=True, eps=norm.norm.eps)  # weight 1, bias 0 at start
    torch.testing.assert_close(out[real], reference)
    changed = x.clone()
    changed[~real] = 1e3
    torch.testing.assert_close(RealNodeBatchNorm(3).train()(changed, real)[real], out[real])
    assert (out[~real] == 0).all()
    single = torch.zeros(1, 5, dtype=torch.bool)
    single[0, 0] = True
    assert torch.isfinite(norm(torch.randn(1, 5, 3), single)).all()  # one real node: running statistics


def test_context_reaches_an_utterance_only_through_its_window():
    torch.manual_seed(0)
    config = CorectFuserConfig(window_past=1, window_future=0, crossmodal=False, graph_norm="none", dropout=0.0)
    fuser = CorectFuser(config, modalities=("text", "audio"), hidden_size=8).eval()
    mask = torch.ones(1, 6, dtype=torch.bool)
    mixed = {m: torch.randn(1, 6, 8) for m in ("text", "audio")}
    base = fuser(mixed=mixed, encoded=mixed, mask=mask).fused
    moved = {m: x.clone() for m, x in mixed.items()}
    moved["audio"][0, 2] += 5.0  # utterance 2 of one modality
    changed = (fuser(mixed=moved, encoded=moved, mask=mask).fused - base).abs().amax(dim=-1)[0] > 1e-6
    # Two graph layers with a past window of 1: utterance 2 reaches 2, 3 and 4 (and 2 through the
    # cross-modal edge), nothing earlier.
    assert changed.tolist() == [False, False, True, True, True, False]


@pytest.mark.parametrize("subset", MODALITY_SUBSETS, ids="+".join)
def test_fuser_and_encoder_on_every_modality_subset(subset):
    batch = make_batch()
    dims = {m: batch.features[m].shape[-1] for m in subset}
    encoder = CorectEncoder(CorectEncoderConfig(), feature_dims=dims, hidden_size=16, num_speakers=3)
    encoded = encoder(features={m: batch.features[m] for m in subset}, speakers=batch.speakers, mask=batch.mask)
    fuser = CorectFuser(CorectFuserConfig(), modalities=subset, hidden_size=16)
    out = fuser(mixed=encoded, encoded=encoded, mask=batch.mask)
    assert out.fused.shape == (*batch.mask.shape, 16) and set(out.per_modality) == set(subset)
    assert (fuser.crossmodal is None) == (len(subset) == 1)
    if len(subset) == 1:  # P-CM has nothing to pair: without the graph no branch is left
        with pytest.raises(ValueError, match="no branch"):
            CorectFuser(CorectFuserConfig(graph=False), modalities=subset, hidden_size=16)


def test_pairwise_crossmodal_ignores_padding():
    torch.manual_seed(0)
    block = PairwiseCrossmodal(("text", "audio", "visual"), 8, crossmodal_layers=2, crossmodal_heads=2,
                               self_attention_layers=3, self_attention_heads=2).eval()
    mask = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)
    states = {m: torch.randn(1, 4, 8) for m in ("text", "audio", "visual")}
    out = block(states, mask)
    assert out.shape == (1, 4, 3 * 2 * 8) == (1, 4, block.output_size)
    noisy = {m: x.clone() for m, x in states.items()}
    for x in noisy.values():
        x[0, 3] = 100.0
    torch.testing.assert_close(block(noisy, mask)[:, :3], out[:, :3])


def test_text_heads_follow_the_authors_rule():
    for width in (1024, 768, 100, 600, 16, 13):
        expected = min((h for h in range(7, 15) if width % h == 0), default=1)
        assert authors_head_count(width) == expected
    encoder = CorectEncoder(CorectEncoderConfig(), feature_dims={"text": 1024, "audio": 4}, hidden_size=8,
                            num_speakers=2)
    assert encoder.encoders["text"].encoder.layers[0].self_attn.num_heads == 8


def test_recipe_settings():
    recipe = get_registry().get("recipe", "corect").obj
    for family in ("iemocap", "meld"):
        values = recipe.resolve(family)
        training = values["training"]
        assert {k: training[k] for k in ("lr", "weight_decay", "batch_size", "epochs", "class_weights")} == {
            "lr": 2.5e-4, "weight_decay": 1e-8, "batch_size": 10, "epochs": 50, "class_weights": "none"}
        fuser = values["fuser"]["config"]
        assert (fuser["window_past"], fuser["window_future"], fuser["graph_heads"]) == (11, 5, 7)
        assert (fuser["crossmodal_layers"], fuser["crossmodal_heads"]) == (2, 2)
        assert values["model"]["hidden_size"] == 100 and values["encoder"]["config"]["dropout"] == 0.5


TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=3", "dataset.test_dialogues=3",
        "model.hidden_size=16", "training.epochs=1", "training.save_checkpoint=false"]


@pytest.mark.parametrize("shape", ["meld", "iemocap"])
def test_recipe_trains_one_epoch_end_to_end(shape):
    registry = get_registry()
    prepared = prepare(registry, recipe="corect", dataset="synthetic", overrides=[f"dataset.shape={shape}", *TINY],
                       flags={"device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    result = trainer.fit(0)
    assert len(result.history) == 1
    assert 0.0 <= result.test["weighted_f1"] <= 1.0


def test_the_fuser_serves_another_recipe():
    prepared = prepare(get_registry(), recipe="sdt", dataset="synthetic",
                       overrides=["fuser=corect", "model.hidden_size=16", "mixer.heads=2"], flags={"device": "cpu"})
    assert prepared.config.fuser.name == "corect"


def test_fuser_gives_finite_gradients_under_bf16_autocast():
    batch = make_batch()
    modalities = ("text", "audio", "visual")
    fuser = CorectFuser(CorectFuserConfig(), modalities=modalities, hidden_size=16)
    hidden = {m: torch.randn(*batch.mask.shape, 16) for m in modalities}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = fuser(mixed=hidden, encoded=hidden, mask=batch.mask).fused[batch.mask].float().pow(2).mean()
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in fuser.parameters() if p.grad is not None)


def test_holdout_protocol_selects_on_the_first_tenth_of_train():
    registry = get_registry()
    prepared = prepare(registry, recipe="corect", dataset="synthetic", flags={"device": "cpu", "protocol": "holdout"},
                       overrides=["dataset.train_dialogues=18", "dataset.dev_dialogues=2", "dataset.test_dialogues=3",
                                  "model.hidden_size=16", "training.epochs=1", "training.save_checkpoint=false"])
    corpus = prepared.corpus
    trainer = Trainer(config=prepared.config, corpus=corpus, registry=registry)
    assert [d.id for d in trainer.corpus.dev] == [d.id for d in corpus.train[:2]]  # int(0.1 · (18 + 2)) = 2
    assert [d.id for d in trainer.corpus.train] == [d.id for d in corpus.train[2:] + corpus.dev]
    assert trainer.corpus.test == corpus.test and trainer.select_split == "dev"
    with pytest.raises(UserError, match="nothing would be left"):
        corpus.__class__(info=corpus.info, train=corpus.train[:1], dev=corpus.dev, test=corpus.test).with_holdout_dev()

"""M3Net: its two graphs (checked against node and edge sets written by hand), the frequency
decomposition and the hypergraph convolution against direct dense computations, the shared graph
helpers, and the recipe training end to end on both dataset shapes."""

import itertools

import pytest
import torch

from merc_bench.layers import multimodal_edge_mask, window_mask
from merc_bench.pipeline import prepare
from merc_bench.plugins import get_registry
from merc_bench.testing import make_batch
from merc_bench.trainer import Trainer
from merc_bench_m3net.fuser import FrequencyConv, HypergraphConv, M3NetConfig, M3NetFuser
from merc_bench_m3net.graph import frequency_adjacency, frequency_filters, hyperedge_incidence

# Two modalities; dialogue 0 has 3 real utterances padded to 4, dialogue 1 has 2.
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=torch.bool)
L = 4


def node(modality: int, utterance: int) -> int:
    return modality * L + utterance  # modality-major, as the graphs are documented


def test_hyperedges_by_hand():
    incidence = hyperedge_incidence(MASK, 2)
    assert incidence.shape == (2, 2 * L, 2 + L)
    members = {(b, e): {v for v in range(2 * L) if incidence[b, v, e]} for b in range(2) for e in range(2 + L)}
    # Context hyperedges: one per modality, its real utterances.
    assert members[(0, 0)] == {node(0, 0), node(0, 1), node(0, 2)}
    assert members[(0, 1)] == {node(1, 0), node(1, 1), node(1, 2)}
    assert members[(1, 1)] == {node(1, 0), node(1, 1)}
    # Multimodal hyperedges: one per utterance, its nodes in both modalities; padded ones are empty.
    assert members[(0, 2 + 1)] == {node(0, 1), node(1, 1)}
    assert members[(1, 2 + 1)] == {node(0, 1), node(1, 1)}
    assert members[(0, 2 + 3)] == set() and members[(1, 2 + 2)] == set()
    # Every real node is in exactly two hyperedges (its modality's and its utterance's), a padded one in none.
    real = MASK.repeat(1, 2)
    assert torch.equal(incidence.sum(dim=-1), 2.0 * real)


def test_frequency_graph_edges_with_a_window_by_hand():
    edges = multimodal_edge_mask(MASK, 2, past=1, future=0, self_loops=False)
    found = {(i, j) for i, j in edges[0].nonzero().tolist()}
    expected = set()
    for m in range(2):
        expected |= {(node(m, 1), node(m, 0)), (node(m, 2), node(m, 1))}  # intra-modal: one step back only
    for u in range(3):
        expected |= {(node(0, u), node(1, u)), (node(1, u), node(0, u))}  # inter-modal: same utterance
    assert found == expected
    # The whole dialogue (the authors' construction): every ordered pair of a modality, no self-loops.
    whole = multimodal_edge_mask(MASK, 2, self_loops=False)[1]
    found = {(i, j) for i, j in whole.nonzero().tolist()}
    assert found == {(node(0, 0), node(0, 1)), (node(0, 1), node(0, 0)), (node(1, 0), node(1, 1)),
                     (node(1, 1), node(1, 0)), (node(0, 0), node(1, 0)), (node(1, 0), node(0, 0)),
                     (node(0, 1), node(1, 1)), (node(1, 1), node(0, 1))}


def test_shared_helpers_agree_with_their_definitions():
    # multimodal_edge_mask with self-loops over the whole dialogue is MMGCN's graph; within one modality
    # the window is window_mask's.
    mask = torch.tensor([[1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    edges = multimodal_edge_mask(mask, 3, past=2, future=1)
    window = window_mask(mask, 2, 1)[0]
    length = mask.shape[1]
    for (m, i), (n, j) in itertools.product(itertools.product(range(3), range(length)), repeat=2):
        real = bool(mask[0, i] and mask[0, j])
        expected = real and (bool(window[i, j]) if m == n else i == j)
        assert bool(edges[0, m * length + i, n * length + j]) == expected


def test_normalised_adjacency_against_a_direct_computation():
    adjacency = frequency_adjacency(MASK, 2)  # (B, N, N)
    for b in range(2):
        a = multimodal_edge_mask(MASK, 2, self_loops=False)[b].double()
        expected = torch.zeros_like(a)
        degree = a.sum(dim=1)
        for i, j in itertools.product(range(2 * L), repeat=2):
            if a[i, j]:
                expected[i, j] = 1.0 / (degree[i] * degree[j]).sqrt()
        torch.testing.assert_close(adjacency[b].double(), expected)


@pytest.mark.parametrize("epsilon", [1.0, 0.3])
def test_fixed_filters_are_the_low_and_high_pass_matrices(epsilon):
    adjacency = frequency_adjacency(MASK, 2)
    low, high = frequency_filters(adjacency, epsilon)
    identity = torch.eye(2 * L)
    x = torch.randn(2, 2 * L, 5)
    for b in range(2):
        # εI ± D^-1/2 A D^-1/2 as explicit dense products, then the layer.
        a = multimodal_edge_mask(MASK, 2, self_loops=False)[b].float()
        d = torch.diag(torch.where(a.sum(1) > 0, a.sum(1), torch.ones(2 * L)).rsqrt())
        torch.testing.assert_close(low[b], epsilon * identity + d @ a @ d)
        torch.testing.assert_close(high[b], epsilon * identity - d @ a @ d)
    torch.testing.assert_close(FrequencyConv(5, "low", epsilon)(x, adjacency), low @ x)
    torch.testing.assert_close(FrequencyConv(5, "high", epsilon)(x, adjacency), high @ x)


def test_high_pass_removes_the_smoothest_signal_and_low_pass_keeps_it():
    # D^1/2 1 on each connected component is the eigenvector of Ã with eigenvalue 1 (Laplacian eigenvalue 0):
    # with ε = 1 the high-pass filter maps it to 0 and the low-pass filter doubles it.
    adjacency = frequency_adjacency(MASK, 2)
    edges = multimodal_edge_mask(MASK, 2, self_loops=False).float()
    smooth = edges.sum(dim=-1, keepdim=True).sqrt()  # (B, N, 1), 0 on padded nodes
    low, high = frequency_filters(adjacency, 1.0)
    torch.testing.assert_close(high @ smooth, torch.zeros_like(smooth), atol=1e-6, rtol=0)
    torch.testing.assert_close(low @ smooth, 2 * smooth)
    rough = smooth * torch.tensor([1.0, -1.0]).repeat(L)[None, :, None]  # alternating signs: not smooth
    assert (high @ rough).norm() > 0.5 * rough.norm()


def test_adaptive_layer_is_the_gated_mix_of_the_two_filters():
    torch.manual_seed(0)
    hidden = 6
    layer = FrequencyConv(hidden, "adaptive", 0.7)
    adjacency = frequency_adjacency(MASK, 2)
    x = torch.randn(2, 2 * L, hidden)
    low, high = frequency_filters(adjacency, 0.7)
    gate = layer.edge_gate(x)  # (B, N, N)
    for b, i, j in [(0, 0, 1), (0, node(1, 2), node(0, 2)), (1, node(1, 1), node(1, 0))]:
        direct = torch.tanh(layer.gate(torch.cat([x[b, i], x[b, j]])))  # aᵀ[x_i; x_j] + c, edge j → i
        torch.testing.assert_close(gate[b, i, j], direct.squeeze())
    # α^L = (1 + G)/2, α^H = (1 − G)/2: Σ_j (α^L_ij F_L,ij + α^H_ij F_H,ij) x_j, as dense products.
    mixed = (1 + gate) / 2 * low + (1 - gate) / 2 * high
    torch.testing.assert_close(layer(x, adjacency), mixed @ x)


def test_hypergraph_convolution_against_a_direct_computation():
    torch.manual_seed(1)
    hidden = 4
    incidence = hyperedge_incidence(MASK, 2)
    weights = torch.tensor([0.5, 2.0, 1.5, 1.5, 1.5, 1.5])  # context ×2, then multimodal ×L
    layer = HypergraphConv(hidden, transform=True)
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(2, 2 * L, hidden)
    out = layer(x, incidence, weights)
    for b in range(2):
        h = incidence[b]  # (N, E)
        real_edges = h.sum(0) > 0
        real_nodes = h.sum(1) > 0
        hr = h[real_nodes][:, real_edges]
        w = torch.diag(weights[real_edges])
        d_e = torch.diag(1.0 / hr.sum(0))
        d_v = torch.diag(1.0 / (hr @ weights[real_edges]))
        theta = layer.transform.weight.T
        expected = torch.nn.functional.leaky_relu(d_v @ hr @ w @ d_e @ hr.T @ x[b][real_nodes] @ theta + layer.bias)
        torch.testing.assert_close(out[b][real_nodes], expected)


def test_speaker_embedding_reaches_only_the_text_nodes_by_default():
    batch = make_batch()
    modalities = ("text", "audio", "visual")
    fuser = M3NetFuser(M3NetConfig(dropout=0.0), modalities=modalities, hidden_size=8, num_speakers=3).eval()
    hidden = {m: torch.randn(*batch.mask.shape, 8) for m in modalities}
    changed = batch.speakers.clone()
    changed[0, 0] = (changed[0, 0] + 1) % 3  # another speaker for one real utterance
    inputs = dict(mixed=hidden, encoded=hidden, mask=batch.mask)
    assert fuser.speaker_modalities == ("text",)
    a, b = fuser(**inputs, speakers=batch.speakers), fuser(**inputs, speakers=changed)
    assert not torch.allclose(a.fused, b.fused)  # the speaker matters ...
    none = M3NetFuser(M3NetConfig(dropout=0.0, speaker_embedding="none"), modalities=modalities, hidden_size=8,
                      num_speakers=3).eval()
    assert none.speakers is None
    # ... and without the embedding it does not.
    torch.testing.assert_close(none(**inputs, speakers=batch.speakers).fused, none(**inputs, speakers=changed).fused)


def test_recipe_settings():
    m3net = get_registry().get("recipe", "m3net").obj
    iemocap, meld = m3net.resolve("iemocap"), m3net.resolve("meld")
    for family in (iemocap, meld):
        assert {k: family["training"][k] for k in ("lr", "weight_decay", "batch_size")} == {
            "lr": 1e-4, "weight_decay": 3e-5, "batch_size": 16}
        assert family["model"]["hidden_size"] == 512
    assert (iemocap["training"]["epochs"], meld["training"]["epochs"]) == (80, 15)
    assert (iemocap["fuser"]["config"]["dropout"], meld["fuser"]["config"]["dropout"]) == (0.5, 0.4)
    assert iemocap["distiller"]["name"] == "none"
    assert meld["distiller"] == {"name": "focal-loss", "config": {"gamma": 2.5, "alpha": 1.0, "form": "mmgcn_code"}}


TINY = ["dataset.train_dialogues=6", "dataset.dev_dialogues=3", "dataset.test_dialogues=3",
        "model.hidden_size=16", "training.epochs=1", "training.save_checkpoint=false"]


@pytest.mark.parametrize(("shape", "terms"), [("meld", {"focal"}), ("iemocap", {"task"})])
def test_recipe_trains_one_epoch_end_to_end(shape, terms):
    registry = get_registry()
    prepared = prepare(registry, recipe="m3net", dataset="synthetic", overrides=[f"dataset.shape={shape}", *TINY],
                       flags={"device": "cpu"})
    trainer = Trainer(config=prepared.config, corpus=prepared.corpus, registry=registry)
    model, distiller = trainer.build()
    _, found, _ = trainer.loss(model, distiller, trainer._batches(prepared.corpus.train, None)[0])
    assert set(found) == terms
    result = trainer.fit(0)
    assert len(result.history) == 1
    assert 0.0 <= result.test["weighted_f1"] <= 1.0

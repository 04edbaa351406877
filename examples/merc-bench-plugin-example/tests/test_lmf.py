"""LMF computes the rank-r factorisation of tensor fusion (Liu et al., ACL 2018, eqs. 3 and 5)."""

import torch

from merc_bench_plugin_example.lmf_fuser import LowRankFusion, LowRankFusionConfig


def test_lmf_equals_tensor_fusion_with_the_rebuilt_weight_tensor():
    torch.manual_seed(0)
    fuser = LowRankFusion(LowRankFusionConfig(rank=2, dropout=0.0), modalities=("text", "audio"), hidden_size=3).eval()
    text, audio = torch.randn(1, 1, 3), torch.randn(1, 1, 3)
    fused = fuser(mixed={"text": text, "audio": audio}, encoded={}, mask=torch.ones(1, 1, dtype=torch.bool)).fused
    z_text = torch.cat([text[0, 0], torch.ones(1)])  # (4,)
    z_audio = torch.cat([audio[0, 0], torch.ones(1)])
    outer = torch.outer(z_text, z_audio)  # Z = z_text ⊗ z_audio, (4, 4)
    # W = Σ_i λ_i w_text^(i) ⊗ w_audio^(i), one (4, 4) slice per output unit h.
    weight = torch.einsum("r,rah,rbh->abh", fuser.rank_weights, fuser.factors["text"], fuser.factors["audio"])
    expected = torch.einsum("ab,abh->h", outer, weight) + fuser.bias
    assert torch.allclose(fused[0, 0], expected, atol=1e-5)

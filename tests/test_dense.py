"""Each dense mode against a straightforward reference computation on a tiny ViT."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from silc_bench.models.dense import dense_features, gaussian_prior
from silc_bench.models.vit import embed_tokens


@pytest.fixture(scope="module")
def visual(trained_model):
    return trained_model.module.visual


def _prefix(visual, x):
    """Blocks 0..L-2 through open_clip's own modules."""
    t = visual._embeds(x)
    for blk in visual.transformer.resblocks[:-1]:
        t = blk(t)
    return t


def _finish(visual, t):
    return (visual.ln_post(t[:, 1:]) @ visual.proj).reshape(t.shape[0], 4, 4, -1).permute(0, 3, 1, 2)


def _qkv_heads(blk, t):
    y = blk.ln_1(t)
    q, k, v = F.linear(y, blk.attn.in_proj_weight, blk.attn.in_proj_bias).chunk(3, -1)
    h = blk.attn.num_heads
    split = lambda z: z.unflatten(-1, (h, -1)).transpose(1, 2)  # noqa: E731
    return split(q), split(k), split(v)


def _merge(o):
    return o.transpose(1, 2).flatten(2)


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.randn(2, 3, 32, 32)


def test_patch_proj_equals_open_clip_tokens(visual, x):
    visual.output_tokens = True
    try:
        _, tokens = visual(x)  # ln_post'd patch tokens, unprojected
    finally:
        visual.output_tokens = False
    ref = (tokens @ visual.proj).reshape(2, 4, 4, -1).permute(0, 3, 1, 2)
    assert torch.allclose(dense_features(visual, x, "patch-proj"), ref, atol=1e-5)


def test_maskclip_is_identity_attention(visual, x):
    t = _prefix(visual, x)
    n = t.shape[1]
    eye_mask = torch.full((n, n), float("-inf")).fill_diagonal_(0.0)  # softmax → identity
    ref = _finish(visual, visual.transformer.resblocks[-1](t, attn_mask=eye_mask))
    assert torch.allclose(dense_features(visual, x, "maskclip"), ref, atol=1e-5)


def test_sclip_clearclip_naclip(visual, x):
    t = _prefix(visual, x)
    blk = visual.transformer.resblocks[-1]
    q, k, v = _qkv_heads(blk, t)
    sdpa = F.scaled_dot_product_attention
    # sclip: sum of the q-q and k-k attentions, residual and FFN kept
    o = blk.attn.out_proj(_merge(sdpa(q, q, v) + sdpa(k, k, v)))
    y = t + o
    y = y + blk.mlp(blk.ln_2(y))
    assert torch.allclose(dense_features(visual, x, "sclip"), _finish(visual, y), atol=1e-5)
    # clearclip: q-q attention only
    ref = _finish(visual, blk.attn.out_proj(_merge(sdpa(q, q, v))))
    assert torch.allclose(dense_features(visual, x, "clearclip"), ref, atol=1e-5)
    # naclip: k-k attention with the Gaussian prior added to the logits
    omega = gaussian_prior(4, 4)
    ref = _finish(visual, blk.attn.out_proj(_merge(sdpa(k, k, v, attn_mask=omega))))
    assert torch.allclose(dense_features(visual, x, "naclip"), ref, atol=1e-5)


def test_gaussian_prior_values():
    om = gaussian_prior(2, 3, std=5.0)
    assert om.shape == (7, 7) and om[0].abs().sum() == 0 and om[:, 0].abs().sum() == 0
    # patches (0,0) and (1,2): d² = 1 + 4
    assert om[1, 1 + 5].item() == pytest.approx(torch.exp(torch.tensor(-5 / 50)).item())


def test_other_input_sizes_interpolate_position_embeddings(visual):
    torch.manual_seed(1)
    x = torch.randn(1, 3, 48, 64)
    feats = dense_features(visual, x, "maskclip")
    assert feats.shape == (1, 32, 6, 8)
    tokens, hw = embed_tokens(visual, torch.randn(1, 3, 32, 32))
    assert hw == (4, 4) and torch.allclose(tokens, visual._embeds(torch.randn(1, 3, 32, 32)) * 0 + tokens)

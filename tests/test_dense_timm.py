"""Dense modes on timm ViT towers (SigLIP-style / converted big_vision), against timm's own
modules run explicitly: the block with a mask, scaled-dot-product attention, the MAP head on
a one-token sequence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from silc_bench.convert.layout import describe
from silc_bench.convert.npz_tree import NpzTree
from silc_bench.convert.to_open_clip import custom_config, state_dict
from silc_bench.core.errors import UserError
from silc_bench.models.arch import build_from_config
from silc_bench.models.backends.timm_tower import TimmTower
from silc_bench.models.dense import gaussian_prior, timm_dense_features
from tests.bv_fixtures import make_tree, save


@pytest.fixture(scope="module", params=["map", "gap", "tok"])
def tower(request, tmp_path_factory):
    pooling = request.param
    path = save(
        make_tree(seed=7, pooling=pooling, img_head=pooling != "map", embed=24 if pooling != "map" else None),
        tmp_path_factory.mktemp("bv") / "t.npz",
    )
    tree = NpzTree(path)
    spec = describe(tree)
    model = build_from_config(custom_config(spec))
    model.load_state_dict(state_dict(tree, spec), strict=True)
    return pooling, model.eval()


@pytest.fixture(scope="module")
def x():
    torch.manual_seed(0)
    return torch.randn(2, 3, 32, 32)


def _prefix(trunk, x):
    """Blocks 0..L-2 through timm's own forward pieces (the training size needs no resize)."""
    t = trunk.norm_pre(trunk._pos_embed(trunk.patch_embed(x)))
    for blk in trunk.blocks[:-1]:
        t = blk(t)
    return t


def _head(visual, t, n_prefix):
    """trunk.norm, then the pooling head on each patch alone (MAP: a one-token sequence)."""
    trunk = visual.trunk
    t = trunk.norm(t)[:, n_prefix:]
    if trunk.attn_pool is not None:
        per = [trunk.attn_pool(t[:, i : i + 1]) for i in range(t.shape[1])]  # timm's own forward
        t = torch.stack(per, dim=1)
    else:
        t = trunk.fc_norm(t)
    t = visual.head(trunk.head(t))
    return t.reshape(t.shape[0], 4, 4, -1).permute(0, 3, 1, 2)


def _qkv(blk, t):
    y = blk.norm1(t)
    n, length, d = y.shape
    h = blk.attn.num_heads
    q, k, v = blk.attn.qkv(y).reshape(n, length, 3, h, d // h).permute(2, 0, 3, 1, 4).unbind(0)
    return q, k, v


def _merge(o):
    return o.transpose(1, 2).flatten(2)


def test_patch_proj_is_the_pooling_head_on_each_patch(tower, x):
    pooling, model = tower
    trunk = model.visual.trunk
    n_prefix = trunk.num_prefix_tokens
    ref = _head(model.visual, trunk.blocks[-1](_prefix(trunk, x)), n_prefix)
    assert torch.allclose(timm_dense_features(model.visual, x, "patch-proj"), ref, atol=1e-5)


def test_gap_pooled_embedding_is_the_mean_of_patch_proj(tower, x):
    pooling, model = tower
    if pooling != "gap":
        pytest.skip("exact for average pooling with a linear head only")
    dense = timm_dense_features(model.visual, x, "patch-proj").mean(dim=(2, 3))
    assert torch.allclose(dense, model.encode_image(x), atol=1e-5)


def test_maskclip_is_identity_attention(tower, x):
    pooling, model = tower
    trunk = model.visual.trunk
    t = _prefix(trunk, x)
    n = t.shape[1]
    eye = torch.full((n, n), float("-inf")).fill_diagonal_(0.0)
    ref = _head(model.visual, trunk.blocks[-1](t, attn_mask=eye), trunk.num_prefix_tokens)
    assert torch.allclose(timm_dense_features(model.visual, x, "maskclip"), ref, atol=1e-5)


def test_sclip_clearclip_naclip(tower, x):
    pooling, model = tower
    trunk = model.visual.trunk
    p = trunk.num_prefix_tokens
    t = _prefix(trunk, x)
    blk = trunk.blocks[-1]
    q, k, v = _qkv(blk, t)
    sdpa = F.scaled_dot_product_attention
    y = t + blk.attn.proj(_merge(sdpa(q, q, v) + sdpa(k, k, v)))
    y = y + blk.mlp(blk.norm2(y))
    assert torch.allclose(timm_dense_features(model.visual, x, "sclip"), _head(model.visual, y, p), atol=1e-5)
    ref = _head(model.visual, blk.attn.proj(_merge(sdpa(q, q, v))), p)
    assert torch.allclose(timm_dense_features(model.visual, x, "clearclip"), ref, atol=1e-5)
    omega = gaussian_prior(4, 4, n_prefix=p)
    ref = _head(model.visual, blk.attn.proj(_merge(sdpa(k, k, v, attn_mask=omega))), p)
    assert torch.allclose(timm_dense_features(model.visual, x, "naclip"), ref, atol=1e-5)


def test_backend_pre_logits_and_embed_match_open_clip(tower, x):
    _, model = tower
    feats = TimmTower(model).image_features(x)
    assert torch.allclose(feats["embed"], model.encode_image(x), atol=1e-6)
    assert feats["pre_logits"].shape[-1] == model.visual.trunk.embed_dim


def test_other_input_sizes_resize_position_embeddings(tower):
    _, model = tower
    feats = timm_dense_features(model.visual, torch.randn(1, 3, 48, 64), "naclip")
    assert feats.shape[-2:] == (6, 8) and torch.isfinite(feats).all()


def test_a_mode_that_cannot_apply_is_refused():
    from silc_bench.models.backends.pacl import PACLBackend

    with pytest.raises(UserError, match="does not apply"):
        PACLBackend(torch.nn.Linear(1, 1)).resolve_mode("sclip", "maskclip")
    with pytest.raises(UserError, match="dense mode"):
        TimmTower(torch.nn.Linear(1, 1)).resolve_mode("nope", "maskclip")
    with pytest.raises(UserError, match="--pamr applies to TCL"):
        TimmTower(torch.nn.Linear(1, 1)).check_options({"pamr": True})

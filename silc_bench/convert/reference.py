"""An independent forward pass of a big_vision two-tower model, in numpy only.

This is the oracle `convert` checks itself against. It reads the flax parameter tree
directly (kernels in flax's (in, heads, head_dim) / (in, out) layouts, NHWC images) and
shares no code with the torch side, so a transposition or a reshaped head that the
converter gets wrong shows up as a difference instead of cancelling out.

big_vision's encoders (`models/vit.py`, `models/proj/image_text/text_transformer.py`):
pre-LN blocks, LayerNorm eps 1e-6, position embeddings added to the patches before a class
token (if any) is prepended, `encoder_norm` after the last block, then pooling (MAP head,
mean, or the class token) and an optional `head`. The text tower pools its last token.
flax's `nn.gelu` is the tanh approximation; the activation is a parameter so the check can
use the one of the architecture being written.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

from silc_bench.convert.layout import TwoTower
from silc_bench.convert.npz_tree import Encoder, NpzTree, find_encoder

EPS = 1e-6


def gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * scale + bias


def attention(xq: np.ndarray, xkv: np.ndarray, p: dict[str, np.ndarray]) -> np.ndarray:
    """flax MultiHeadDotProductAttention: kernels (D, H, hd), out kernel (H, hd, D)."""
    q = np.einsum("bld,dhk->blhk", xq, p["query/kernel"]) + p["query/bias"]
    k = np.einsum("bld,dhk->blhk", xkv, p["key/kernel"]) + p["key/bias"]
    v = np.einsum("bld,dhk->blhk", xkv, p["value/kernel"]) + p["value/bias"]
    q = q / np.sqrt(q.shape[-1])
    logits = np.einsum("bqhk,bshk->bhqs", q, k)
    logits = logits - logits.max(-1, keepdims=True)
    w = np.exp(logits)
    w = w / w.sum(-1, keepdims=True)
    o = np.einsum("bhqs,bshk->bqhk", w, v)
    return np.einsum("bqhk,hkd->bqd", o, p["out/kernel"]) + p["out/bias"]


def mlp(x: np.ndarray, get, act: str) -> np.ndarray:  # noqa: ANN001
    h = gelu(x @ get("Dense_0/kernel") + get("Dense_0/bias"), act)
    return h @ get("Dense_1/kernel") + get("Dense_1/bias")


def encoder(x: np.ndarray, enc: Encoder, act: str) -> np.ndarray:
    tree = enc.tree
    cache: dict[str, np.ndarray] = {}

    def param(i: int, name: str) -> np.ndarray:
        if not enc.scanned:
            return enc.block(i, name)
        if name not in cache:  # a scanned array is read once for all blocks
            cache[name] = tree[f"{enc.prefix}encoderblock/{name}"]
        return cache[name][i]

    for i in range(enc.depth):
        y = layer_norm(x, param(i, "LayerNorm_0/scale"), param(i, "LayerNorm_0/bias"))
        att = {
            f"{n}/{w}": param(i, f"MultiHeadDotProductAttention_0/{n}/{w}")
            for n in ("query", "key", "value", "out")
            for w in ("kernel", "bias")
        }
        x = x + attention(y, y, att)
        y = layer_norm(x, param(i, "LayerNorm_1/scale"), param(i, "LayerNorm_1/bias"))
        x = x + mlp(y, lambda n, i=i: param(i, f"MlpBlock_0/{n}"), act)
    return layer_norm(x, tree[f"{enc.prefix}encoder_norm/scale"], tree[f"{enc.prefix}encoder_norm/bias"])


def encode_image(tree: NpzTree, spec: TwoTower, images_nhwc: np.ndarray, act: str) -> dict[str, np.ndarray]:
    """`pre_logits` (pooled, before `head`) and `embed` for NHWC images in −1..1."""
    n, h, w, c = images_nhwc.shape
    p = spec.patch
    gh, gw = h // p, w // p
    patches = (
        images_nhwc.reshape(n, gh, p, gw, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, gh * gw, p * p * c)
    )
    kernel = tree["img/embedding/kernel"].reshape(p * p * c, -1)
    x = patches @ kernel + tree["img/embedding/bias"]
    x = x + tree["img/pos_embedding"]
    if spec.pooling == "tok":
        cls = np.broadcast_to(tree["img/cls"], (n, 1, x.shape[-1]))
        x = np.concatenate([cls, x], axis=1)
    x = encoder(x, find_encoder(tree, "img/Transformer/"), act)
    if spec.pooling == "map":
        hp = "img/MAPHead_0/"
        probe = np.broadcast_to(tree[hp + "probe"], (n, 1, x.shape[-1]))
        att = {
            f"{k}/{w}": tree[f"{hp}MultiHeadDotProductAttention_0/{k}/{w}"]
            for k in ("query", "key", "value", "out")
            for w in ("kernel", "bias")
        }
        y = attention(probe, x, att)
        z = layer_norm(y, tree[hp + "LayerNorm_0/scale"], tree[hp + "LayerNorm_0/bias"])
        pooled = (y + mlp(z, lambda name: tree[f"{hp}MlpBlock_0/{name}"], act))[:, 0]
    elif spec.pooling == "gap":
        pooled = x.mean(axis=1)
    else:
        pooled = x[:, 0]
    embed = pooled @ tree["img/head/kernel"] + tree["img/head/bias"] if spec.img_head else pooled
    return {"pre_logits": pooled, "embed": embed}


def encode_text(tree: NpzTree, tokens: np.ndarray, act: str) -> np.ndarray:
    x = tree["txt/Embed_0/embedding"][tokens] + tree["txt/pos_embedding"]
    x = encoder(x, find_encoder(tree, "txt/Encoder_0/"), act)
    return x[:, -1] @ tree["txt/head/kernel"] + tree["txt/head/bias"]

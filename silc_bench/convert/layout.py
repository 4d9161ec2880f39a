"""What a big_vision two-tower checkpoint is, read from its parameter shapes alone.

`describe` checks every parameter's shape against the dimensions the embedding and the
first block imply, so a mismatch is reported by name before anything is converted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from silc_bench.convert.npz_tree import BLOCK_PARAMS, POOLINGS, Encoder, NpzTree, find_encoder
from silc_bench.core.errors import UserError


@dataclass(frozen=True)
class Tower:
    width: int
    depth: int
    heads: int
    mlp_dim: int
    scanned: bool


@dataclass(frozen=True)
class TwoTower:
    pooling: str  # map | gap | tok
    patch: int
    grid: int  # patches per side
    img: Tower
    img_head: int | None  # output width of img/head, None without one
    txt: Tower
    vocab: int
    context_length: int
    embed_dim: int  # txt/head output: the shared embedding width
    has_bias: bool  # `b`: SigLIP's sigmoid loss has a logit bias, a softmax (CLIP-style) model does not

    @property
    def image_size(self) -> int:
        return self.patch * self.grid

    def to_dict(self) -> dict:
        return asdict(self)


def _expect(tree: NpzTree, name: str, shape: tuple[int, ...]) -> None:
    got = tree.shape(name)
    if got != shape:
        raise UserError(f"{tree.path}: {tree.prefix}{name} has shape {got}, expected {shape}")


def _tower(tree: NpzTree, enc: Encoder, width: int) -> Tower:
    lead = (enc.depth,) if enc.scanned else ()

    def shape(name: str) -> tuple[int, ...]:
        key = f"{enc.prefix}encoderblock/{name}" if enc.scanned else f"{enc.prefix}encoderblock_0/{name}"
        got = tree.shape(key)
        return got[1:] if enc.scanned else got

    q = shape("MultiHeadDotProductAttention_0/query/kernel")
    if len(q) != 3 or q[0] != width:
        raise UserError(
            f"{tree.path}: {enc.prefix} query kernel has shape {q}, expected ({width}, heads, head_dim)"
        )
    heads, hd = q[1], q[2]
    mlp = shape("MlpBlock_0/Dense_0/kernel")
    if len(mlp) != 2:
        raise UserError(f"{tree.path}: {enc.prefix} MlpBlock_0/Dense_0/kernel has shape {mlp}")
    mlp_dim = mlp[1]
    want = {
        "LayerNorm_0/scale": (width,),
        "LayerNorm_0/bias": (width,),
        "LayerNorm_1/scale": (width,),
        "LayerNorm_1/bias": (width,),
        "MlpBlock_0/Dense_0/kernel": (width, mlp_dim),
        "MlpBlock_0/Dense_0/bias": (mlp_dim,),
        "MlpBlock_0/Dense_1/kernel": (mlp_dim, width),
        "MlpBlock_0/Dense_1/bias": (width,),
        "MultiHeadDotProductAttention_0/out/kernel": (heads, hd, width),
        "MultiHeadDotProductAttention_0/out/bias": (width,),
    }
    for n in ("query", "key", "value"):
        want[f"MultiHeadDotProductAttention_0/{n}/kernel"] = (width, heads, hd)
        want[f"MultiHeadDotProductAttention_0/{n}/bias"] = (heads, hd)
    assert set(want) == set(BLOCK_PARAMS)
    blocks = [None] if enc.scanned else range(enc.depth)
    for i in blocks:
        for name, s in want.items():
            key = f"{enc.prefix}encoderblock/{name}" if i is None else f"{enc.prefix}encoderblock_{i}/{name}"
            _expect(tree, key, lead + s)
    if heads * hd != width:
        raise UserError(f"{tree.path}: {enc.prefix}: {heads} heads × {hd} ≠ width {width}")
    _expect(tree, f"{enc.prefix}encoder_norm/scale", (width,))
    _expect(tree, f"{enc.prefix}encoder_norm/bias", (width,))
    return Tower(width, enc.depth, heads, mlp_dim, enc.scanned)


def infer_pooling(tree: NpzTree) -> str:
    if "img/MAPHead_0/probe" in tree:
        return "map"
    return "tok" if "img/cls" in tree else "gap"


def describe(tree: NpzTree, pooling: str | None = None) -> TwoTower:
    """Dimensions, layout and pooling of the checkpoint, with every shape checked."""
    if pooling is not None and pooling not in POOLINGS:
        raise UserError(f"unknown pooling {pooling!r}: big_vision image towers pool by {', '.join(POOLINGS)}")
    pool = pooling or infer_pooling(tree)
    patch, width, g = _image_embedding(tree)
    img = _tower(tree, find_encoder(tree, "img/Transformer/"), width)
    _image_pool(tree, pool, width, img)
    img_head = _image_head(tree, width)
    vocab, twidth, context_length = _text_embedding(tree, width, patch)
    txt = _tower(tree, find_encoder(tree, "txt/Encoder_0/"), twidth)
    embed_dim = _text_head(tree, twidth, img_head or width)
    has_bias = _logit_params(tree)
    return TwoTower(pool, patch, g, img, img_head, txt, vocab, context_length, embed_dim, has_bias)


def _image_embedding(tree: NpzTree) -> tuple[int, int, int]:
    """The patch embedding and position grid fix patch size, image width and grid side."""
    k = tree.shape("img/embedding/kernel")
    if len(k) != 4 or k[0] != k[1] or k[2] != 3:
        raise UserError(
            f"{tree.path}: {tree.prefix}img/embedding/kernel has shape {k}, expected (p, p, 3, width)"
        )
    patch, width = k[0], k[3]
    _expect(tree, "img/embedding/bias", (width,))
    pos = tree.shape("img/pos_embedding")
    n = pos[1] if len(pos) == 3 else -1
    g = int(round(n**0.5)) if n > 0 else 0
    if len(pos) != 3 or pos[0] != 1 or pos[2] != width or g * g != n:
        raise UserError(
            f"{tree.path}: {tree.prefix}img/pos_embedding has shape {pos}, expected (1, g·g, {width})"
        )
    return patch, width, g


def _image_pool(tree: NpzTree, pool: str, width: int, img: Tower) -> None:
    """The pooling's own parameters (MAP head or class token) must fit the image tower."""
    if pool == "map":
        h = "img/MAPHead_0/"
        _expect(tree, h + "probe", (1, 1, width))
        for n_ in ("query", "key", "value"):
            _expect(
                tree, f"{h}MultiHeadDotProductAttention_0/{n_}/kernel", (width, img.heads, width // img.heads)
            )
            _expect(tree, f"{h}MultiHeadDotProductAttention_0/{n_}/bias", (img.heads, width // img.heads))
        _expect(tree, f"{h}MultiHeadDotProductAttention_0/out/kernel", (img.heads, width // img.heads, width))
        _expect(tree, f"{h}MultiHeadDotProductAttention_0/out/bias", (width,))
        for ln in ("scale", "bias"):
            _expect(tree, f"{h}LayerNorm_0/{ln}", (width,))
        _expect(tree, f"{h}MlpBlock_0/Dense_0/kernel", (width, img.mlp_dim))
        _expect(tree, f"{h}MlpBlock_0/Dense_1/kernel", (img.mlp_dim, width))
    elif pool == "tok":
        _expect(tree, "img/cls", (1, 1, width))


def _image_head(tree: NpzTree, width: int) -> int | None:
    """The optional image head's output width, which the shared embedding width must match."""
    img_head = None
    if "img/head/kernel" in tree:
        hk = tree.shape("img/head/kernel")
        if len(hk) != 2 or hk[0] != width:
            raise UserError(
                f"{tree.path}: {tree.prefix}img/head/kernel has shape {hk}, expected ({width}, out)"
            )
        img_head = hk[1]
        _expect(tree, "img/head/bias", (img_head,))
    return img_head


def _text_embedding(tree: NpzTree, width: int, patch: int) -> tuple[int, int, int]:
    """Token and position embeddings fix vocabulary, text width and context length."""
    emb = tree.shape("txt/Embed_0/embedding")
    if len(emb) != 2:
        raise UserError(
            f"{tree.path}: {tree.prefix}txt/Embed_0/embedding has shape {emb}, expected (vocab, width)"
        )
    vocab, twidth = emb
    if vocab < 1 or twidth < 1 or width < 1 or patch < 1:
        raise UserError(f"{tree.path}: empty dimensions (vocab {vocab}, text width {twidth}, width {width})")
    tpos = tree.shape("txt/pos_embedding")
    if len(tpos) != 3 or tpos[0] != 1 or tpos[2] != twidth:
        raise UserError(
            f"{tree.path}: {tree.prefix}txt/pos_embedding has shape {tpos}, expected (1, L, {twidth})"
        )
    if tpos[1] < 1:
        raise UserError(f"{tree.path}: {tree.prefix}txt/pos_embedding has no positions")
    return vocab, twidth, tpos[1]


def _text_head(tree: NpzTree, twidth: int, out_img: int) -> int:
    """The text head sets the shared embedding width, which the image tower's output must equal."""
    hk = tree.shape("txt/head/kernel")
    if len(hk) != 2 or hk[0] != twidth:
        raise UserError(f"{tree.path}: {tree.prefix}txt/head/kernel has shape {hk}, expected ({twidth}, out)")
    _expect(tree, "txt/head/bias", (hk[1],))
    embed_dim = hk[1]
    if out_img != embed_dim:
        raise UserError(
            f"{tree.path}: the image tower outputs width {out_img} but the text head outputs {embed_dim}; "
            "the two embeddings must share one width"
        )
    return embed_dim


def _logit_params(tree: NpzTree) -> bool:
    """Temperature `t` and the optional SigLIP bias `b` must be scalars; returns whether `b` exists."""
    has_bias = "b" in tree
    for name in ("t", "b") if has_bias else ("t",):
        if tree.shape(name) not in ((1,), ()):
            raise UserError(f"{tree.path}: {tree.prefix}{name} has shape {tree.shape(name)}, expected (1,)")
    return has_bias

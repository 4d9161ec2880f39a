"""Random big_vision two-tower parameter trees, built from the documented key names and
shapes (flax layouts), in both block layouts, all three poolings, with or without `params/`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

B16 = dict(
    width=768,
    depth=12,
    heads=12,
    mlp=3072,
    patch=16,
    grid=14,
    txt_width=768,
    txt_depth=12,
    txt_heads=12,
    txt_mlp=3072,
    vocab=32000,
    ctx=64,
)


def _encoder(rng, prefix: str, depth: int, d: int, heads: int, mlp: int, scanned: bool, s: float) -> dict:
    hd = d // heads
    shapes = {
        "LayerNorm_0/scale": (d,),
        "LayerNorm_0/bias": (d,),
        "LayerNorm_1/scale": (d,),
        "LayerNorm_1/bias": (d,),
        "MlpBlock_0/Dense_0/kernel": (d, mlp),
        "MlpBlock_0/Dense_0/bias": (mlp,),
        "MlpBlock_0/Dense_1/kernel": (mlp, d),
        "MlpBlock_0/Dense_1/bias": (d,),
        "MultiHeadDotProductAttention_0/out/kernel": (heads, hd, d),
        "MultiHeadDotProductAttention_0/out/bias": (d,),
    }
    for n in ("query", "key", "value"):
        shapes[f"MultiHeadDotProductAttention_0/{n}/kernel"] = (d, heads, hd)
        shapes[f"MultiHeadDotProductAttention_0/{n}/bias"] = (heads, hd)

    def value(name: str, shape: tuple) -> np.ndarray:
        base = 1.0 if name.endswith("scale") else 0.0
        return (base + s * rng.standard_normal(shape)).astype(np.float32)

    out = {}
    if scanned:
        for name, shape in shapes.items():
            out[f"{prefix}encoderblock/{name}"] = value(name, (depth, *shape))
    else:
        for i in range(depth):
            for name, shape in shapes.items():
                out[f"{prefix}encoderblock_{i}/{name}"] = value(name, shape)
    out[f"{prefix}encoder_norm/scale"] = value("scale", (d,))
    out[f"{prefix}encoder_norm/bias"] = value("bias", (d,))
    return out


def make_tree(
    seed: int = 0,
    *,
    pooling: str = "map",
    width: int = 32,
    depth: int = 2,
    heads: int = 2,
    mlp: int = 64,
    patch: int = 8,
    grid: int = 4,
    txt_width: int = 32,
    txt_depth: int = 2,
    txt_heads: int = 2,
    txt_mlp: int = 64,
    vocab: int = 100,
    ctx: int = 16,
    img_head: bool = False,
    embed: int | None = None,
    bias: bool = True,
    scanned: bool = False,
    prefix: bool = True,
    scale: float | None = None,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    s = scale if scale is not None else 0.5 / np.sqrt(width)
    embed = embed or txt_width
    t: dict[str, np.ndarray] = {}
    t["img/embedding/kernel"] = (s * rng.standard_normal((patch, patch, 3, width))).astype(np.float32)
    t["img/embedding/bias"] = (s * rng.standard_normal(width)).astype(np.float32)
    t["img/pos_embedding"] = (0.5 * rng.standard_normal((1, grid * grid, width))).astype(np.float32)
    if pooling == "tok":
        t["img/cls"] = rng.standard_normal((1, 1, width)).astype(np.float32)
    t.update(_encoder(rng, "img/Transformer/", depth, width, heads, mlp, scanned, s))
    if pooling == "map":
        h = "img/MAPHead_0/"
        t[h + "probe"] = rng.standard_normal((1, 1, width)).astype(np.float32)
        mha = _encoder(rng, "x/", 1, width, heads, mlp, False, s)
        for k, v in mha.items():
            if k.startswith("x/encoderblock_0/") and "LayerNorm_1" not in k:
                t[h + k[len("x/encoderblock_0/") :]] = v
    if img_head:
        t["img/head/kernel"] = (s * rng.standard_normal((width, embed))).astype(np.float32)
        t["img/head/bias"] = (s * rng.standard_normal(embed)).astype(np.float32)
    t["txt/Embed_0/embedding"] = rng.standard_normal((vocab, txt_width)).astype(np.float32)
    t["txt/pos_embedding"] = (0.5 * rng.standard_normal((1, ctx, txt_width))).astype(np.float32)
    t.update(_encoder(rng, "txt/Encoder_0/", txt_depth, txt_width, txt_heads, txt_mlp, scanned, s))
    t["txt/head/kernel"] = (s * rng.standard_normal((txt_width, embed))).astype(np.float32)
    t["txt/head/bias"] = (s * rng.standard_normal(embed)).astype(np.float32)
    t["t"] = np.array([np.log(10.0)], dtype=np.float32)
    if bias:
        t["b"] = np.array([-10.0], dtype=np.float32)
    return {("params/" + k if prefix else k): v for k, v in t.items()}


def save(tree: dict[str, np.ndarray], path: Path) -> Path:
    np.savez(path, **tree)
    return path


def make_sp_model(folder: Path, pieces: int = 100, *, gemma: bool = False, name: str = "tiny") -> Path:
    """A sentencepiece model trained offline with exactly `pieces` pieces, so it can be the
    vocabulary of a text embedding of that many rows (big_vision's rule; the natural
    vocabulary of the few training words is ~35 pieces, topped up with dummy symbols).
    Special ids: the T5/c4 layout (pad 0, eos 1, unk 2, no BOS), or with `gemma` the Gemma
    one (pad 0, eos 1, bos 2, unk 3)."""
    import sentencepiece as spm

    from silc_bench.data.synthetic import CLASSES

    words = [f"a photo of a {c}." for c in CLASSES] + ["a red circle", "a blue square", "background"]
    ids = dict(pad_id=0, eos_id=1, bos_id=2, unk_id=3)
    if not gemma:
        ids = dict(pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    prefix = str(folder / name)
    extra = 0
    for _ in range(4):
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(words * 20),
            model_prefix=prefix,
            vocab_size=pieces,
            hard_vocab_limit=False,
            minloglevel=2,
            user_defined_symbols=[f"<extra{i}>" for i in range(extra)],
            **ids,
        )
        got = spm.SentencePieceProcessor(model_file=prefix + ".model").get_piece_size()
        if got == pieces:
            return Path(prefix + ".model")
        extra += pieces - got
    raise RuntimeError(f"could not train a {pieces}-piece sentencepiece model (got {got})")

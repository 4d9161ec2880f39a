"""Feature extraction, always behind the content-keyed cache.

Image features for a (checkpoint sha256, variant, dataset split fingerprint,
preprocessing, precision) are computed once and reused by every task on that split
(zs-cls and fs-cls share one pass). Text embeddings are cached per (checkpoint,
texts). Under torchrun each rank encodes its block of the split (silc_bench/dist.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from silc_bench.core.console import warn
from silc_bench.core.dist import sharded_rows
from silc_bench.core.errors import UserError
from silc_bench.core.hashing import hash_obj
from silc_bench.data.classification import ImageSplit
from silc_bench.data.images import ImageDataset
from silc_bench.features.cache import FeatureCache
from silc_bench.models.adapter import VLModel

FEATURE_VERSION = 3


@dataclass
class RunOptions:
    """Execution knobs that do not change the number (except precision, which is recorded)."""

    batch_size: int = 64
    workers: int = 2
    progress: bool = True


def _model_key(model: VLModel) -> dict:
    """The same weights under another architecture (quick_gelu, a different pooling) give
    other features: the registry settings are part of the key, not only the sha256."""
    return {
        "checkpoint_sha256": model.checkpoint_sha256,
        "variant": model.variant,
        "precision": model.precision,
        "arch": model.info.get("arch"),
        "backend": model.info.get("backend"),
        "feature_version": FEATURE_VERSION,
    }


def image_features(
    model: VLModel, split: ImageSplit, cache: FeatureCache, opts: RunOptions, desc: str
) -> dict[str, np.ndarray]:
    """{"pre_logits": (N, W), "embed": (N, D)} float32, unnormalised, in split order."""
    n = len(split)
    ex = model.execution_options
    jpeg = False  # --decode gpu applies to a split whose every item is a JPEG file, decided once
    if ex is not None and ex.decode == "gpu":
        from silc_bench.data.gpu_decode import is_jpeg

        jpeg = all(is_jpeg(i) for i in split.items)
        if not jpeg:
            model.execution.note_decode(fallback="not every image is a JPEG file: decoded by PIL")
    # The fast-path options that took part key the features (fused kernels may round
    # apart); a decode that fell back to PIL is the CPU path's, and shares its entries.
    ex_key = ex.key() if ex is not None else {}
    if not jpeg:
        ex_key.pop("decode", None)
    parts = {
        **_model_key(model),
        **({"execution": ex_key} if ex_key else {}),
        "split": split.fingerprint,
        "preprocess": model.preprocess.to_dict(),
        "n": n,
    }
    return cache.get_or_compute(
        "image",
        parts,
        lambda: sharded_rows(
            n, lambda rows: _encode_images(model, split, opts, desc, rows, jpeg), align=opts.batch_size
        ),
        rows={"pre_logits": n, "embed": n},
        about={"model": model.name, "data": f"{desc} ({model.preprocess.size}px {model.preprocess.resize})"},
    )


def _encode_images(
    model: VLModel, split: ImageSplit, opts: RunOptions, desc: str, rows: range, jpeg: bool = False
) -> dict[str, np.ndarray]:
    items = split.items[rows.start : rows.stop]
    if jpeg:
        from silc_bench.data.gpu_decode import device_batches

        model.execution.note_decode(on=str(model.device))
        batches = device_batches(items, split, model.preprocess, model.device, opts.batch_size, opts.workers)
    read: list[str] | None = None
    if not jpeg:
        read = [] if split.digests is not None else None
        batches = _pil_batches(items, split, model, opts, read)
    out: dict[str, list[np.ndarray]] = {"pre_logits": [], "embed": []}
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not opts.progress, leave=False)
    for images, idx in batches:
        for k, v in _forward_halving_on_oom(model, images).items():
            arr = v.cpu().numpy()
            if not np.isfinite(arr).all():
                bad = np.where(~np.isfinite(arr).all(axis=1))[0]
                first = split.describe(items[int(idx[bad[0]])])
                raise UserError(
                    f"model {model.ref} produced NaN/inf image features "
                    f"({k}) for {len(bad)} image(s), first: {first}; "
                    f"try --precision fp32 or check the checkpoint"
                )
            out[k].append(arr)
        bar.update(len(idx))
    bar.close()
    if read is not None:
        _check_bytes_read(split, rows, read)
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


def _check_bytes_read(split: ImageSplit, rows: range, read: list[str]) -> None:
    """The bytes decoded must be those the dataset fingerprint hashed: a file edited while
    the run read it (even one restored since) would otherwise put its features in the cache
    under the original content's key. Raised before the cache or a result is written."""
    expected = split.digests[rows.start : rows.stop]
    for item, want, got in zip(split.items[rows.start : rows.stop], expected, read):
        if want != got:
            raise UserError(
                f"{split.describe(item)} changed while it was being read (its bytes are not those "
                f"the dataset fingerprint hashed): nothing cached, no result written; run again"
            )
    if len(read) != len(expected):
        raise UserError(f"split {split.name}: {len(read)} images read, {len(expected)} expected; run again")


def _pil_batches(
    items: list, split: ImageSplit, model: VLModel, opts: RunOptions, digests: list[str] | None = None
) -> Iterator[tuple]:
    """(images, indices) decoded and transformed by PIL in the loader workers; with `digests`,
    each item is read once as bytes and their sha256 is put there, in item order."""
    hashed = digests is not None
    pp = model.preprocess
    ds = ImageDataset(items, split.read, pp.transform(), pp.size, split.describe, hashed=hashed)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=opts.batch_size,
        shuffle=False,
        num_workers=opts.workers,
        persistent_workers=False,  # one pass per split: nothing to keep alive
        prefetch_factor=4 if opts.workers > 0 else None,
        pin_memory=model.device.type == "cuda",
    )
    warned_big = False
    for images, idx, status, read in loader:
        if digests is not None:
            digests.extend(read)
        errors = [s for s in status if s not in ("", "big")]
        if errors:
            raise UserError(errors[0])
        if "big" in status and not warned_big:
            first = split.describe(items[int(idx[list(status).index("big")])])
            warn(f"{first} is over PIL's image-size warning threshold; decoded anyway")
            warned_big = True
        yield images, idx


def _forward_halving_on_oom(model: VLModel, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """CUDA out of memory: split the batch in two and retry each half (down to one image),
    counted in the result's `env.execution.oom_halvings`. The size that fits is remembered
    (`oom_batch_cap`), so later batches go straight to it instead of running out again."""
    cap = model.execution.oom_batch_cap
    if cap and len(images) > cap:
        parts = [_forward_halving_on_oom(model, images[i : i + cap]) for i in range(0, len(images), cap)]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    try:
        return model.image_features(images)
    except torch.cuda.OutOfMemoryError:
        if len(images) == 1:
            raise
        torch.cuda.empty_cache()
        half = len(images) // 2
        model.execution.note_oom(batch_cap=len(images) - half)  # the larger half
        a, b = _forward_halving_on_oom(model, images[:half]), _forward_halving_on_oom(model, images[half:])
        return {k: torch.cat([a[k], b[k]]) for k in a}


def text_embeddings(
    model: VLModel,
    texts: list[str],
    cache: FeatureCache,
    opts: RunOptions,
    desc: str,
    normalize: bool = True,
) -> np.ndarray:
    """Text embeddings (T, D), float32, in input order; L2-normalised unless asked not to."""
    # no fast-path key: --compile, --channels-last and --decode gpu touch the image tower only
    parts = {**_model_key(model), "texts": hash_obj(texts), "tokenizer": model.info.get("tokenizer")}
    parts["rows"] = "each distinct text once"  # entries from before _encode_unique are not served
    if model.text_encoding_used != "full":  # full-length entries keep the keys they always had
        parts["text_encoding"] = model.text_encoding_used
    emb = cache.get_or_compute(
        "text",
        parts,
        lambda: _encode_unique(model, texts, opts, desc),
        rows={"emb": len(texts)},
        about={"model": model.name, "data": f"{len(texts)} prompts or captions"},
    )["emb"]
    if not normalize:
        return emb
    return torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(emb)), dim=-1).numpy()


def _encode_unique(model: VLModel, texts: list[str], opts: RunOptions, desc: str) -> dict[str, np.ndarray]:
    """Each distinct text encoded once, then every row filled from it. Identical captions
    must get identical embeddings: ranking breaks exact ties by index, and a copy encoded in
    another batch (cut to another length, or a batch of another size) would differ in its
    last bits and turn a tie into a coin toss. It also spares the repeats' forward passes."""
    unique = list(dict.fromkeys(texts))
    got = sharded_rows(
        len(unique),
        lambda r: _encode_texts(model, unique[r.start : r.stop], opts, desc),
        align=_text_batch(opts),
    )
    if len(unique) == len(texts):
        return got
    where = {t: i for i, t in enumerate(unique)}
    return {"emb": got["emb"][np.array([where[t] for t in texts], dtype=np.int64)]}


def _text_batch(opts: RunOptions) -> int:
    return max(opts.batch_size, 256)


def _encode_texts(model: VLModel, texts: list[str], opts: RunOptions, desc: str) -> dict[str, np.ndarray]:
    bs = _text_batch(opts)
    chunks = []
    bar = tqdm(total=len(texts), desc=desc, unit="txt", disable=not opts.progress, leave=False)
    for s in range(0, len(texts), bs):
        chunks.append(model.encode_text(model.tokenize(texts[s : s + bs])).cpu().numpy())
        bar.update(len(texts[s : s + bs]))
    bar.close()
    emb = np.concatenate(chunks).astype(np.float32)
    if not np.isfinite(emb).all():
        raise UserError(f"model {model.ref} produced NaN/inf text embeddings; check the checkpoint")
    return {"emb": emb}

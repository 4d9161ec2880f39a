"""Feature extraction, always behind the content-keyed cache.

Image features for a (checkpoint sha256, variant, dataset split fingerprint,
preprocessing, precision) are computed once and reused by every task on that split
(zs-cls and fs-cls share one pass). Text embeddings are cached per (checkpoint,
texts). Under torchrun each rank encodes its block of the split (silc_bench/dist.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from silc_bench.cache import FeatureCache
from silc_bench.data.classification import ImageSplit
from silc_bench.data.images import ImageDataset
from silc_bench.dist import sharded_rows
from silc_bench.errors import UserError, warn
from silc_bench.hashing import hash_obj
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
        **_execution_key(model),
    }


def _execution_key(model: VLModel) -> dict:
    ex = model.execution_options
    return {"execution": ex.key()} if ex is not None and ex.key() else {}


def image_features(
    model: VLModel, split: ImageSplit, cache: FeatureCache, opts: RunOptions, desc: str
) -> dict[str, np.ndarray]:
    """{"pre_logits": (N, W), "embed": (N, D)} float32, unnormalised, in split order."""
    parts = {
        **_model_key(model),
        "split": split.fingerprint,
        "preprocess": model.preprocess.to_dict(),
        "n": len(split),
    }
    n = len(split)
    ex = model.execution_options
    jpeg = False  # --decode gpu applies to a split whose every item is a JPEG file, decided once
    if ex is not None and ex.decode == "gpu":
        from silc_bench.data.gpu_decode import is_jpeg

        jpeg = all(is_jpeg(i) for i in split.items)
        if not jpeg:
            model.execution["decode_fallback"] = "not every image is a JPEG file: decoded by PIL"
    return cache.get_or_compute(
        "image",
        parts,
        lambda: sharded_rows(
            n, lambda rows: _encode_images(model, split, opts, desc, rows, jpeg), align=opts.batch_size
        ),
        rows={"pre_logits": n, "embed": n},
    )


def _encode_images(
    model: VLModel, split: ImageSplit, opts: RunOptions, desc: str, rows: range, jpeg: bool = False
) -> dict[str, np.ndarray]:
    items = split.items[rows.start : rows.stop]
    if jpeg:
        return _encode_jpegs_on_device(model, split, items, opts, desc)
    ds = ImageDataset(items, split.read, model.preprocess.transform(), model.preprocess.size, split.describe)
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=opts.batch_size,
        shuffle=False,
        num_workers=opts.workers,
        persistent_workers=False,  # one pass per split: nothing to keep alive
        prefetch_factor=4 if opts.workers > 0 else None,
        pin_memory=model.device.type == "cuda",
    )
    out: dict[str, list[np.ndarray]] = {"pre_logits": [], "embed": []}
    bar = tqdm(total=len(ds), desc=desc, unit="img", disable=not opts.progress, leave=False)
    warned_big = False
    for images, idx, status in loader:
        errors = [s for s in status if s not in ("", "big")]
        if errors:
            raise UserError(errors[0])
        if "big" in status and not warned_big:
            first = split.describe(items[int(idx[list(status).index("big")])])
            warn(f"{first} is over PIL's image-size warning threshold; decoded anyway")
            warned_big = True
        feats = _forward_halving_on_oom(model, images)
        for k, v in feats.items():
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
    return {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}


class _Bytes(torch.utils.data.Dataset):
    """File bytes only: decoding happens on the model's device."""

    def __init__(self, items: list) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from silc_bench.data.gpu_decode import read_bytes

        return read_bytes(self.items[i]), i


def _encode_jpegs_on_device(
    model: VLModel, split: ImageSplit, items: list, opts: RunOptions, desc: str
) -> dict[str, np.ndarray]:
    from PIL import Image

    from silc_bench.data.gpu_decode import decode, transform

    loader = torch.utils.data.DataLoader(
        _Bytes(items),
        batch_size=opts.batch_size,
        num_workers=opts.workers,
        collate_fn=lambda b: ([x for x, _ in b], [i for _, i in b]),
        prefetch_factor=4 if opts.workers > 0 else None,
    )
    out: dict[str, list[np.ndarray]] = {"pre_logits": [], "embed": []}
    bar = tqdm(total=len(items), desc=desc, unit="img", disable=not opts.progress, leave=False)
    limit = Image.MAX_IMAGE_PIXELS
    for blobs, idx in loader:
        try:
            imgs = decode(blobs, model.device)
        except RuntimeError:
            imgs = [_decode_one(b, items[i], split, model.device) for b, i in zip(blobs, idx)]
        for img, i in zip(imgs, idx):
            if limit and img.shape[1] * img.shape[2] > 2 * limit:  # PIL's own error threshold
                raise UserError(
                    f"{split.describe(items[i])}: {img.shape[2]}x{img.shape[1]} pixels is over the "
                    f"decompression-bomb limit of {2 * limit:,}; raise it with --max-image-pixels "
                    "if you trust it"
                )
        batch = torch.stack([transform(img, model.preprocess) for img in imgs])
        for k, v in _forward_halving_on_oom(model, batch).items():
            out[k].append(v.cpu().numpy())
        bar.update(len(idx))
    bar.close()
    model.execution["decoded_on"] = str(model.device)
    feats = {k: np.concatenate(v).astype(np.float32) for k, v in out.items()}
    if not all(np.isfinite(v).all() for v in feats.values()):
        raise UserError(f"model {model.ref} produced NaN/inf image features; try --precision fp32")
    return feats


def _decode_one(blob: torch.Tensor, item, split: ImageSplit, device: torch.device) -> torch.Tensor:  # noqa: ANN001
    """One file the batch decoder refused: a .jpg that is really a PNG goes through PIL,
    as the CPU path would read it; a file neither reads is the user's one-line error."""
    from silc_bench.data.gpu_decode import decode

    try:
        return decode([blob], device)[0]
    except RuntimeError:
        pass
    from silc_bench.data.images import decode_status, to_rgb

    try:
        img = to_rgb(split.read(item))
    except Exception as e:  # noqa: BLE001 - the same one-line report as the PIL path
        raise UserError(decode_status(e, split.describe(item))) from None
    arr = torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)
    return arr.to(device)


def _forward_halving_on_oom(model: VLModel, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """CUDA out of memory: split the batch in two and retry each half (down to one image),
    counted in the result's `env.execution.oom_halvings`."""
    try:
        return model.image_features(images)
    except torch.cuda.OutOfMemoryError:
        if len(images) == 1:
            raise
        torch.cuda.empty_cache()
        model.execution["oom_halvings"] = model.execution.get("oom_halvings", 0) + 1
        half = len(images) // 2
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
    parts = {**_model_key(model), "texts": hash_obj(texts), "tokenizer": model.info.get("tokenizer")}
    emb = cache.get_or_compute(
        "text",
        parts,
        lambda: sharded_rows(
            len(texts),
            lambda r: _encode_texts(model, texts[r.start : r.stop], opts, desc),
            align=_text_batch(opts),
        ),
        rows={"emb": len(texts)},
    )["emb"]
    if not normalize:
        return emb
    return torch.nn.functional.normalize(torch.from_numpy(np.ascontiguousarray(emb)), dim=-1).numpy()


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

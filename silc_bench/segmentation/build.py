"""Assemble a zs-seg run: text queries, the backend's window encoder, the segmentor, and
the mmseg test loop that feeds IoUMetric (with mmengine's sampler, for torchrun later)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from silc_bench.core import dist
from silc_bench.core.errors import UserError, first_line
from silc_bench.core.files import remove_stale_tmp
from silc_bench.core.hashing import hash_obj
from silc_bench.features.prompts import read_asset
from silc_bench.segmentation.dataset import build_dataset, check_label_map, seg_fingerprint
from silc_bench.segmentation.loading import check_bytes_read
from silc_bench.segmentation.rules import ScoreRule
from silc_bench.segmentation.text import parse_class_lines, queries, query_embeddings


def build_segmentor(ctx, p, opts: dict, lines: list[str], n_cls: int, class_file: str):  # noqa: ANN001, ANN201
    from silc_bench.segmentation.segmentor import ZeroShotSegmentor

    model = ctx.model
    data = ctx.spec.data
    backend = model.backend
    background = bool(data.get("background", False))
    kind = backend.score
    classes = parse_class_lines(lines, n_cls, class_file)
    first = 1 if background and (kind == "sigmoid" or not p.background_query) else 0
    names, owner = queries(classes, first)
    templates = read_asset("templates", p.templates)
    backend.check_options(opts)  # an option the backend cannot honour fails before text is encoded
    mode = backend.resolve_mode(opts["dense_mode"], model.dense_mode)
    text = query_embeddings(model, names, templates, p.text_average, ctx.cache, ctx.opts)
    encode = backend.window_encoder(text, mode, opts, model.autocast)
    mean = p.mean or [255.0 * m for m in model.preprocess.mean]
    std = p.std or [255.0 * s for s in model.preprocess.std]
    bg = p.bg_thresh_pamr if opts["pamr"] else p.bg_thresh
    rule = ScoreRule(
        kind, tuple(owner), n_cls, background, p.logit_scale, p.prob_thd, p.area_thd, bg, p.background_query
    )
    window_batch = p.window_batch or (8 if model.device.type == "cuda" else 1)
    seg = ZeroShotSegmentor(encode, rule, len(names), p.crop, p.stride, mean, std, window_batch)
    seg.to(model.device)
    info: dict[str, Any] = {
        "dense_mode": mode,
        "backend": backend.name,
        "score": kind,
        "class_file": class_file,
        "class_file_sha256": hash_obj(lines),
        "num_queries": len(names),
        "templates_sha256": hash_obj(templates),
        "num_templates": len(templates),
        "mean_255": [round(m, 4) for m in mean],
        "std_255": [round(s, 4) for s in std],
        "normalisation_source": "profile" if p.mean else "checkpoint",
        "background_rule": _background_rule(kind, background, p.background_query),
    }
    if background and kind != "sigmoid":
        info["background_rule_origin"] = p.cosine_background_origin
    return seg, info


def _background_rule(kind: str, background: bool, query: bool) -> str:
    if not background:
        return "none"
    if kind == "sigmoid":
        return "constant bg_thresh"
    return "sclip prob_thd" if query else "prob_thd only (no background query)"


def _same_size_groups(batch: dict) -> list[tuple[list[int], dict]]:
    """Split a collated batch into sub-batches whose images share a size (so they stack),
    each with the positions its images held in the batch."""
    groups: dict[tuple, list[int]] = {}
    for i, img in enumerate(batch["inputs"]):
        groups.setdefault(tuple(img.shape), []).append(i)
    return [(idx, {k: [batch[k][i] for i in idx] for k in batch}) for idx in groups.values()]


class _Readable(torch.utils.data.Dataset):
    """A segmentation dataset whose unreadable files become one clear error naming the file.

    mmcv's loaders fail with an assert or a decoder's error, which a DataLoader worker
    re-raises as a multi-line traceback. The failure travels as an item instead, and
    `_collate` turns it into a UserError in the main process (exit 2 on every rank)."""

    def __init__(self, ds: Any) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        try:
            return self.ds[i]
        except Exception as e:  # noqa: BLE001 - reported with the file's name
            info = self.ds.get_data_info(i)
            detail = first_line(e) or type(e).__name__
            files = f"{info.get('img_path')} (labels {info.get('seg_map_path')})"
            return {"error": f"{files}: cannot be read: {detail}"}


def _collate(items: list[dict]) -> dict:
    """mmengine's pseudo_collate, or the first unreadable file's error (raised by the main
    process: an exception raised in a loader worker would come back as a traceback)."""
    from mmengine.dataset import pseudo_collate

    errors = [item["error"] for item in items if "error" in item]
    return {"error": errors[0]} if errors else pseudo_collate(items)


def run_mmseg_loop(
    ctx,
    seg,
    resize: int,
    raw_classes: list[str],
    pred_dir: Path | None,  # noqa: ANN001, ANN201
    image_batch: int = 1,
):
    """Feed mmseg's IoUMetric exactly as its test loop would; return metrics, per-class IoU,
    the image count, the fingerprint and IoUMetric's per-image areas (the `--bootstrap`'s input).

    Up to `image_batch` images are drawn at a time; those of one size go through the
    sliding window together, so their windows share forwards.
    """
    from mmseg.evaluation import IoUMetric

    data = ctx.spec.data
    full_ds = build_dataset(data, ctx.data_root, resize, raw_classes)
    loader = _loader(ctx, _Readable(full_ds), image_batch)
    metric = IoUMetric(iou_metrics=["mIoU"], prefix="zs-seg")
    metric.dataset_meta = full_ds.metainfo
    world = dist.current()
    if world.size > 1 and pred_dir is not None:
        raise UserError("--save-predictions writes from one process only; run it without torchrun")
    preds = _Predictions(pred_dir)
    bar = tqdm(total=len(loader.sampler), desc=ctx.spec.dataset, unit="img", disable=not ctx.opts.progress,
               leave=False)  # fmt: skip
    score = _Scorer(seg, metric, int(data["num_classes"]), full_ds.data_root, preds.tmp, bar)
    try:
        if world.size == 1:
            score(loader)
        else:  # each rank scored mmengine's DefaultSampler share; the IoU areas are gathered
            parts = dist.gather_outcome(lambda: score(loader))  # strided shares, back in dataset order
            metric.results = dist.interleaved([part[0] for part in parts])
            score.files = dist.interleaved([part[1] for part in parts])
            score.read = dist.interleaved([part[3] for part in parts])
            # every rank's window batch agreed; the OOM counts are summed by the execution record
            seg.window_batch = min((part[2] for part in parts if part[2]), default=seg.window_batch)
        expected: list[str] = []  # the fingerprint's digests: image, label map, next image, ...
        fingerprint = seg_fingerprint(full_ds, data, raw_classes, digests=expected)
        check_bytes_read([f for pair in score.read for f in pair], expected)  # before any result
    except BaseException:  # interrupted or failed: no half-written predictions left behind
        preds.discard()
        raise
    bar.close()
    metrics, per_class = _summarise(metric)
    preds.commit()
    return metrics, per_class, len(score.files), fingerprint, metric.results


def _loader(ctx, ds: torch.utils.data.Dataset, image_batch: int) -> torch.utils.data.DataLoader:  # noqa: ANN001
    """mmengine's DefaultSampler without round-up: each image once, in dataset order per rank."""
    from mmengine.dataset import DefaultSampler

    if ctx.limit is not None:
        ds = torch.utils.data.Subset(ds, range(min(ctx.limit, len(ds))))
    return torch.utils.data.DataLoader(
        ds,
        batch_size=max(1, image_batch),
        sampler=DefaultSampler(ds, shuffle=False, round_up=False),
        collate_fn=_collate,
        num_workers=ctx.opts.workers,
    )


class _Predictions:
    """`--save-predictions`: PNGs written into a folder of this process's own, which takes
    the final name only once every image has been scored (never a half-written folder)."""

    def __init__(self, pred_dir: Path | None) -> None:
        self.final, self.tmp = pred_dir, None
        if pred_dir is not None:
            self.tmp = pred_dir.with_name(f".{pred_dir.name}.{os.getpid()}.tmp")
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp.mkdir(parents=True)

    def discard(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(self) -> None:
        if self.tmp is not None:
            shutil.rmtree(self.final, ignore_errors=True)
            os.replace(self.tmp, self.final)
            remove_stale_tmp(self.final.parent, f".{self.final.name}")  # left by interrupted runs


class _Scorer:
    """This process's share: predict each same-size group, check its labels, feed IoUMetric."""

    def __init__(self, seg, metric, n_cls: int, ds_root: str, tmp_pred: Path | None, bar) -> None:  # noqa: ANN001
        self.seg, self.metric, self.n_cls, self.ds_root = seg, metric, n_cls, ds_root
        self.tmp_pred, self.bar = tmp_pred, bar
        self.files: list[str] = []
        self.read: list[tuple] = []  # per image: (image, its sha256), (label map, its sha256)

    def __call__(self, loader: torch.utils.data.DataLoader) -> tuple[list, list[str], int | None, list]:
        order: list[int] = []  # each result's position in this process's loader order
        start = 0
        for batch in loader:
            if "error" in batch:
                raise UserError(batch["error"])
            for idx, group in _same_size_groups(batch):
                prepared = self.seg.data_preprocessor(group, False)
                samples = self.seg.predict(prepared["inputs"], prepared["data_samples"])
                for s in samples:
                    self._one(s)
                self.metric.process(group, [s.to_dict() for s in samples])
                order.extend(start + i for i in idx)
                self.bar.update(len(samples))
            start += len(batch["inputs"])
        # Back to loader order, which is dataset order: same-size grouping reorders images
        # within a batch, and float32 area sums depend on their order (mmseg's test loop adds
        # one image at a time, in dataset order).
        perm = sorted(range(len(order)), key=order.__getitem__)
        self.metric.results[:] = [self.metric.results[i] for i in perm]
        self.files[:] = [self.files[i] for i in perm]
        self.read[:] = [self.read[i] for i in perm]
        return self.metric.results, self.files, self.seg.window_batch, self.read

    def _one(self, s) -> None:  # noqa: ANN001
        gt = s.gt_sem_seg.data.cpu().numpy()[0]
        check_label_map(gt, s.metainfo["ori_shape"][:2], self.n_cls, s.metainfo["seg_map_path"])
        self.files.append(os.path.relpath(s.metainfo["img_path"], self.ds_root))
        m = s.metainfo  # the sha256 of the bytes the pipeline decoded (segmentation/loading.py)
        self.read.append(((m["img_path"], m["img_sha256"]), (m["seg_map_path"], m["seg_map_sha256"])))
        if self.tmp_pred is not None:
            stem = Path(s.metainfo["img_path"]).name.rsplit(".", 1)[0]
            pred = s.pred_sem_seg.data.cpu().numpy()[0].astype(np.uint8)
            Image.fromarray(pred).save(self.tmp_pred / f"{stem}.png")


def _summarise(metric) -> tuple[dict[str, float], dict[int, float]]:  # noqa: ANN001
    """mmseg's own summary (quietly: IoUMetric prints a table) and the per-class IoU."""
    from mmengine.logging import MMLogger
    from mmseg.evaluation import IoUMetric

    areas = [sum(r[i] for r in metric.results) for i in range(4)]
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # IoUMetric prints its own per-class table; ours is in the result
    try:
        summary = metric.compute_metrics(metric.results)
    finally:
        logger.setLevel(level)
    per = IoUMetric.total_area_to_metrics(*areas, ["mIoU"])
    per_class = {c: round(float(v) * 100, 2) for c, v in enumerate(per["IoU"].tolist()) if np.isfinite(v)}
    return {k: float(summary[k]) for k in ("mIoU", "mAcc", "aAcc")}, per_class

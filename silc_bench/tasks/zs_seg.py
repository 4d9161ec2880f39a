"""Zero-shot semantic segmentation on MMSeg (docs/protocols.md).

mmseg's dataset classes, pipeline and IoUMetric, fed by our BaseSegmentor with the
batched sliding window. Protocol profiles (`tcl`, the default for the SILC tables, and
`sclip`) live in `tasks/zs-seg/profiles/`. Every result records its profile and the
protocol audit: `refinement` (none|pamr) and `label_access` (none|tuned). `--bootstrap N`
adds a percentile interval of the mIoU over images (metrics/uncertainty.py) beside it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

from silc_bench.features.prompts import read_asset
from silc_bench.tasks.base import PLUGINS, TaskContext, TaskOutput, TaskPlugin


@dataclass
class ZsSegProtocol:
    resize: int = 448  # Resize(scale=(2048, resize), keep_ratio=True)
    crop: int = 448
    stride: int = 224
    mean: list[float] | None = None  # 0–255 scale; None: the checkpoint's
    std: list[float] | None = None
    classnames: str = "spaced"  # class-file style: spaced | mmseg | sclip
    templates: str = "tcl"
    text_average: str = "mean-then-normalise"
    logit_scale: float = 50.0  # background rule for cosine models
    prob_thd: float = 0.1
    background_query: bool = True  # false: class 0 is never queried, only thresholded (prob_thd)
    # Whose rule decides background for cosine-scored models: "sclip" (SCLIP's published
    # one) or "silc-bench" (ours: the tcl profile's, as neither TCL's code nor the SILC paper
    # gives one); recorded, and Table 4 marks the cells that rest on ours.
    cosine_background_origin: str = "sclip"
    area_thd: float | None = None
    bg_thresh: float = 0.5  # background rule for sigmoid masks (TCL)
    bg_thresh_pamr: float = 0.4
    window_batch: int | None = None  # speed only; None: 1 on CPU (memory), 8 on GPU
    image_batch: int | None = None  # speed only: images drawn together; same-size ones share window
    #                                 forwards. None: 1 on CPU, 4 on GPU


def _seg_options(ctx: TaskContext) -> dict:
    o = ctx.options
    return {
        "dense_mode": o.get("dense_mode"),
        "pamr": bool(o.get("pamr")),
        "tcl_ensemble": bool(o.get("tcl_ensemble")),
        "save_predictions": bool(o.get("save_predictions")),
    }


@PLUGINS.register("zs-seg")
class ZeroShotSegmentation(TaskPlugin):
    protocol_cls = ZsSegProtocol
    headline = ("mIoU", "mAcc", "aAcc")

    # bootstrap: resamples of the mIoU's interval (0: none); it adds a record, the numbers stay
    options = ("classnames", "dense_mode", "pamr", "tcl_ensemble", "save_predictions", "bootstrap")
    metric_decimals = 2  # mmseg's IoUMetric rounds its summary to 2 decimals
    # The dense sliding-window path reads the tower block by block and mmseg's loader decodes
    # the images: --compile, --channels-last and --decode gpu would not take part.
    execution_options = ()

    @staticmethod
    def fingerprint(spec, protocol, data_root):  # noqa: ANN001, ANN205
        from silc_bench.segmentation.dataset import build_dataset, seg_fingerprint
        from silc_bench.segmentation.text import parse_class_lines

        n_cls = int(spec.data["num_classes"])
        for style in (protocol.classnames, "mmseg"):  # a wrong class file is named before any work
            name = f"{style}-{spec.data['classes']}"
            parse_class_lines(read_asset("classnames", name), n_cls, name)
        raw_classes = read_asset("classnames", f"mmseg-{spec.data['classes']}")
        ds = build_dataset(spec.data, data_root, protocol.resize, raw_classes)
        return seg_fingerprint(ds, spec.data, raw_classes)

    @staticmethod
    def path_tags(options: dict) -> list[str]:
        tags = []
        if options.get("dense_mode"):
            tags.append(f"dense-{options['dense_mode']}")
        if options.get("pamr"):
            tags.append("pamr")
        if options.get("tcl_ensemble"):
            tags.append("tcl-ensemble")
        return tags

    def run(self, ctx: TaskContext, p: ZsSegProtocol) -> TaskOutput:
        from silc_bench.segmentation.build import build_segmentor, run_mmseg_loop

        opts = _seg_options(ctx)
        if ctx.options.get("classnames"):  # --classnames: another class-name style than the profile's
            p = dataclasses.replace(p, classnames=ctx.options["classnames"])
        data = ctx.spec.data
        n_cls = int(data["num_classes"])
        style_file = f"{p.classnames}-{data['classes']}"
        lines = read_asset("classnames", style_file)
        raw_classes = read_asset("classnames", f"mmseg-{data['classes']}")
        seg, info = build_segmentor(ctx, p, opts, lines, n_cls, style_file)
        pred_dir = ctx.artifacts_dir / "pred" if opts["save_predictions"] else None
        image_batch = p.image_batch or (4 if ctx.model.device.type == "cuda" else 1)
        metrics, per_class_iou, n_images, fingerprint, areas = run_mmseg_loop(
            ctx, seg, p.resize, raw_classes, pred_dir, image_batch
        )
        # keyed by the dataset's own class names, so per-class numbers line up across profiles
        names = [ln.strip() for ln in raw_classes]
        per_class = {
            names[c] if names.count(names[c]) == 1 else f"{names[c]} ({c})": v
            for c, v in per_class_iou.items()
        }
        rec = {
            **asdict(p),
            **info,
            "num_classes": n_cls,
            "num_images": n_images,
            "background": bool(data.get("background", False)),
            "reduce_zero_label": bool(data.get("reduce_zero_label", False)),
            "refinement": "pamr" if opts["pamr"] else "none",
            "label_access": "tuned" if opts["tcl_ensemble"] else "none",
            "window_batch_used": seg.window_batch,
            "image_batch_used": image_batch,
            "metric": "mmseg IoUMetric (summary rounded to 2 decimals as mmseg does)",
        }
        notes = []
        ctx.model.execution.note_window_oom(seg.oom_fallbacks, seg.window_batch)
        if opts["tcl_ensemble"]:
            notes.append("TCL+MaskCLIP ensemble: the 0.3 mixing factor was tuned on segmentation labels")
        out = TaskOutput(metrics, rec, fingerprint, per_class=per_class, notes=notes)
        if ctx.options.get("bootstrap"):
            interval = miou_bootstrap(areas, int(ctx.options["bootstrap"])) if len(areas) >= 2 else None
            if len(areas) < 2:  # every resample of one image is that image: no spread to show
                out.notes.append("--bootstrap: no interval (a resample of one image is that image)")
            elif interval is None:
                out.notes.append("--bootstrap: no interval (mIoU is undefined without labelled pixels)")
            else:
                out.uncertainty = {"mIoU": interval}
        return out


def miou_bootstrap(areas: list, resamples: int) -> dict | None:
    """The mIoU's bootstrap over images from IoUMetric's per-image (intersect, union,
    pred, label) areas, in dataset order on every rank (build.py gathers them)."""
    import numpy as np

    from silc_bench.metrics.uncertainty import BOOTSTRAP_SEED, bootstrap_interval

    if not areas:
        return None
    inter = np.stack([r[0].cpu().numpy() for r in areas]).astype(np.float64)
    union = np.stack([r[1].cpu().numpy() for r in areas]).astype(np.float64)
    return bootstrap_interval(inter, union, resamples, BOOTSTRAP_SEED)

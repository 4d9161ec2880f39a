"""zs-cls + retrieval: silc-bench against CLIP_benchmark's own `evaluate` functions.

    python -m silc_bench.bench.vs_clip_benchmark [--repeats 3] [--device cpu]

Same model (open_clip ViT-B/32 unless `--arch`, random weights, loaded once), same generated images
(ShapesWorld's shapes-cls and shapes-retrieval splits), same prompts and captions, amp off,
With `--prompts imagenet` (the default) zs-cls is ImageNet-shaped on the text side: the
shapes-cls images spread over 100 classes named by ImageNet's first 100 class names, with
the 80 ImageNet templates (8,000 prompts), so the text tower's share is realistic;
feature cache off, the same batch size and loader workers. Each tool's wall time is the
median of interleaved runs; silc-bench's is the result's `wall_s` (the task from its data to
its metrics), CLIP_benchmark's the `evaluate()` call. The metrics must agree. Writes
reports/perf.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from silc_bench.bench.random_model import load_random
from silc_bench.bench.report import publish
from silc_bench.core.paths import REPO_ROOT


def _accuracy_numpy2(output, target, topk=(1,)):  # noqa: ANN001, ANN202
    """CLIP_benchmark 1.6.2's `accuracy` with its numpy-2 `float()` bug fixed (docs/protocols.md)."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [float(correct[:k].reshape(-1).float().sum().item()) / len(target) for k in topk]


def _imagenet_shaped(tmp: Path, n_classes: int = 100) -> Path:
    """shapes-cls's test images spread round-robin over `n_classes` folders, named by the first
    ImageNet class names (`classnames.txt`); templates fall back to ImageNet's 80."""
    import shutil

    from silc_bench.config import load_task
    from silc_bench.data.classification import read_classification
    from silc_bench.features.prompts import read_asset

    split = read_classification(load_task("zs-cls", "shapes-cls").data, tmp).splits["eval"]
    root = tmp / "imagenet-shaped"
    for i, item in enumerate(split.items):
        folder = root / "test" / f"c{i % n_classes:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(item, folder / f"{i:05d}{Path(item).suffix}")  # names differ across classes
    (root / "classnames.txt").write_text("\n".join(read_asset("classnames", "imagenet")[:n_classes]) + "\n")
    return root


def main() -> int:
    import clip_benchmark.metrics.zeroshot_classification as zsc
    import clip_benchmark.metrics.zeroshot_retrieval as zsr

    from silc_bench.api import EvalOptions, evaluate
    from silc_bench.config import load_task
    from silc_bench.data.classification import read_classification
    from silc_bench.data.retrieval import read_karpathy
    from silc_bench.features.prompts import read_asset

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=1, help="untimed passes of each tool first")
    ap.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (random weights)")
    ap.add_argument("--label", default="", help="added to the section heading (e.g. 'dry run')")
    ap.add_argument("--prompts", choices=["imagenet", "shapes"], default="imagenet",
                    help="100 ImageNet names x 80 templates, or the dataset's own")  # fmt: skip
    ap.add_argument("--out", default=str(REPO_ROOT / "reports" / "perf.md"))
    args = ap.parse_args()
    zsc.accuracy = _accuracy_numpy2
    tmp = Path(tempfile.mkdtemp())
    model = load_random(args.arch, args.device, tmp)
    opts = EvalOptions(
        data_root=tmp,
        out=tmp / "r",
        device=args.device,
        workers=2,
        progress=False,
        batch_size=args.batch_size,
        cache=False,
        force=True,
    )
    cls_name = "shapes-cls"
    if args.prompts == "imagenet":
        cls_name = f"imagefolder:{_imagenet_shaped(tmp)}"
    cls_spec = load_task("zs-cls", cls_name)
    cls = read_classification(cls_spec.data, tmp)
    asked = cls_spec.protocol["templates"]
    templates = cls.templates or read_asset("templates", "imagenet" if asked == "dataset" else asked)
    split = cls.splits["eval"]
    tf = model.preprocess.transform()

    class Split(torch.utils.data.Dataset):
        classes = cls.classnames

        def __len__(self) -> int:
            return len(split)

        def __getitem__(self, i):  # noqa: ANN001, ANN204
            return tf(split.read(split.items[i]).convert("RGB")), int(split.labels[i])

    ret = read_karpathy(load_task("retrieval", "shapes-retrieval").data, tmp)
    caps = [[] for _ in range(len(ret.images))]
    for c, i in zip(ret.captions, ret.text_to_image):
        caps[i].append(c)

    class Captions(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(caps)

        def __getitem__(self, i):  # noqa: ANN001, ANN204
            return tf(ret.images.read(ret.images.items[i]).convert("RGB")), caps[i]

    def collate(batch):  # noqa: ANN001, ANN202
        return torch.stack([b[0] for b in batch]), [b[1] for b in batch]

    def peer(kind: str) -> tuple[float, dict]:
        t0 = time.perf_counter()
        if kind == "zs-cls":
            loader = torch.utils.data.DataLoader(Split(), batch_size=args.batch_size, num_workers=2)
            out = zsc.evaluate(
                model.module, loader, model.tokenizer, cls.classnames, templates, args.device, amp=False
            )
        else:
            loader = torch.utils.data.DataLoader(
                Captions(), batch_size=args.batch_size, num_workers=2, collate_fn=collate
            )
            out = zsr.evaluate(
                model.module, loader, model.tokenizer, args.device, amp=False, recall_k_list=[1, 5, 10]
            )
        return time.perf_counter() - t0, out

    def ours(kind: str) -> tuple[float, dict]:
        dataset = cls_name if kind == "zs-cls" else "shapes-retrieval"
        res = evaluate(model, kind, dataset, opts).result
        return res.wall_s, res.metrics

    for _ in range(args.warmup):  # untimed: first loader start-up, the data fingerprint's memo
        for kind in ("zs-cls", "retrieval"):
            ours(kind), peer(kind)
    times: dict[tuple[str, str], list[float]] = {}
    metrics: dict[tuple[str, str], dict] = {}
    for r in range(args.repeats):
        for kind in ("zs-cls", "retrieval"):
            for tool in ("silc-bench", "CLIP_benchmark") if r % 2 == 0 else ("CLIP_benchmark", "silc-bench"):
                wall, m = (ours if tool == "silc-bench" else peer)(kind)
                times.setdefault((kind, tool), []).append(wall)
                metrics[(kind, tool)] = m
    agree = abs(
        metrics[("zs-cls", "silc-bench")]["top1"] - 100 * metrics[("zs-cls", "CLIP_benchmark")]["acc1"]
    ) < 1e-4 and all(
        abs(
            metrics[("retrieval", "silc-bench")][f"t2i_recall@{k}"]
            - 100 * metrics[("retrieval", "CLIP_benchmark")][f"image_retrieval_recall@{k}"]
        )
        < 1e-4
        for k in (1, 5, 10)
    )
    rows = ["| task | images | silc-bench (s) | CLIP_benchmark (s) | speed ratio |", "|---|---|---|---|---|"]
    for kind, n in (("zs-cls", len(split)), ("retrieval", len(ret.images))):
        a = statistics.median(times[(kind, "silc-bench")])
        b = statistics.median(times[(kind, "CLIP_benchmark")])
        rows.append(f"| {kind} | {n} | {a:.2f} | {b:.2f} | {b / a:.2f}× |")
    label = ", ".join(x for x in (args.label, args.device if args.device != "cpu" else "") if x)
    arch_arg = f" --arch {args.arch}" if args.arch != "ViT-B-32" else ""
    shaped = ", ImageNet-shaped: `--prompts imagenet`" if args.prompts == "imagenet" else ""
    warm_arg = f" --warmup {args.warmup}" if args.warmup != 1 else ""
    text = "\n".join(
        [
            "## zs-cls + retrieval vs CLIP_benchmark's `evaluate`" + (f" ({label})" if label else ""),
            "",
            f"Written by `python -m silc_bench.bench.vs_clip_benchmark --repeats {args.repeats} --device "
            f"{args.device}{arch_arg}{warm_arg}`: open_clip {args.arch} (random weights, loaded once), "
            f"ShapesWorld's shapes-cls ({len(split)} test images; {len(cls.classnames)} class names × "
            f"{len(templates)} templates{shaped}) and shapes-retrieval ({len(ret.images)} "
            f"images, {len(ret.captions)} captions), amp off, feature cache off, batch {args.batch_size}, "
            f"2 loader workers each; median of {args.repeats} interleaved runs after {args.warmup} untimed "
            "one(s). Speed ratio = "
            "CLIP_benchmark time / silc-bench time (above 1: silc-bench is faster).",
            "",
            *rows,
            "",
            f"Metrics agree (top-1; t2i recall@1/5/10 to 1e-4): {'yes' if agree else 'NO'}. Goals on this "
            "CPU with trimmed text encoding (the default): zs-cls ≥ 1.5×, retrieval ≥ 2× "
            "(`bench/gpu.sh` measures a GPU).",
            "",
        ]
    )
    publish(Path(args.out), text)
    if not agree:
        print("bench.vs_clip_benchmark: the metrics disagree with CLIP_benchmark's", file=sys.stderr)
    return 0 if agree else 1


if __name__ == "__main__":
    raise SystemExit(main())

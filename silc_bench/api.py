"""`evaluate()`: the one function the CLI, torchrun workers and tests call.

It resolves the task (fast, before any model is loaded), skips an existing result
unless forced, runs the plugin, and writes one Result file atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from silc_bench.cache import FeatureCache
from silc_bench.config import build, load_task
from silc_bench.errors import UserError
from silc_bench.features import RunOptions
from silc_bench.models import VLModel, load_model, parse_model_ref
from silc_bench.results import (
    Result,
    environment,
    git_commit,
    now_iso,
    read_result,
    result_path,
    write_result,
)
from silc_bench.tasks import PLUGINS, TaskContext


@dataclass
class EvalOptions:
    data_root: Path = Path("data")
    out: Path = Path("results")
    device: str = "auto"
    precision: str = "fp32"
    batch_size: int = 64
    workers: int = 2
    limit: int | None = None
    force: bool = False
    profile: str | None = None  # None: the task's default profile
    weights: str | None = None
    cache: bool = True
    progress: bool = True
    task_options: dict = field(default_factory=dict)  # e.g. zs-seg: dense_mode, pamr, tcl_ensemble


@dataclass
class Outcome:
    result: Result
    path: Path
    skipped: bool


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda, but no CUDA device is available (use --device cpu or auto)")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise UserError(f"--device must be auto, cpu or cuda, not {device!r}")
    return device


class LazyModel:
    """A model reference that loads on first use, once: runs over several datasets load the
    model only if some result is not already on disk."""

    def __init__(self, ref: str, opts: EvalOptions) -> None:
        self.ref = ref
        self._ref = parse_model_ref(ref, opts.weights)  # validates the name now
        self._opts = opts
        self._model: VLModel | None = None

    def get(self) -> VLModel:
        if self._model is None:
            device = resolve_device(self._opts.device)
            self._model = load_model(self._ref, device, self._opts.precision)
        return self._model


def evaluate(model: str | VLModel | LazyModel, task: str, dataset: str, opts: EvalOptions) -> Outcome:
    spec = load_task(task, dataset, opts.profile)
    model_ref = model if isinstance(model, str) else model.ref
    plugin_cls = PLUGINS.get(spec.type)
    path = result_path(opts.out, model_ref, task, dataset, spec.profile, spec.default_profile)
    tags = plugin_cls.path_tags(opts.task_options)
    if tags:
        path = path.with_name(f"{path.stem}+{'+'.join(tags)}.json")
    if path.exists() and not opts.force:
        return Outcome(read_result(path), path, skipped=True)
    protocol = build(plugin_cls.protocol_cls, spec.protocol, f"tasks/{task} protocol ({dataset})")
    if opts.limit is not None and opts.limit < 1:
        raise UserError(f"--limit must be a positive number of images, not {opts.limit}")
    needs_root = not dataset.startswith("imagefolder:") and "generated" not in spec.data
    if needs_root and not Path(opts.data_root).is_dir():
        raise UserError(f"--data-root: folder not found: {opts.data_root}")
    if isinstance(model, str):
        model = LazyModel(model, opts)
    if isinstance(model, LazyModel):
        model = model.get()
    ctx = TaskContext(
        spec=spec,
        model=model,
        data_root=Path(opts.data_root),
        cache=FeatureCache(enabled=opts.cache),
        opts=RunOptions(opts.batch_size, opts.workers, opts.progress),
        limit=opts.limit,
        options=dict(opts.task_options),
        artifacts_dir=path.with_suffix(""),
    )
    t0 = time.perf_counter()
    out = plugin_cls().run(ctx, protocol)
    wall = time.perf_counter() - t0
    protocol_record = {
        "profile": spec.profile,
        "profile_version": spec.profile_version,
        "data": spec.data,
        "preprocess": model.preprocess.to_dict(),
        "limit": opts.limit,
        **out.protocol,
    }
    result = Result(
        model=model.ref,
        variant=model.variant,
        checkpoint_sha256=model.checkpoint_sha256,
        task=task,
        task_version=spec.version,
        dataset=dataset,
        dataset_fingerprint=out.dataset_fingerprint,
        protocol=protocol_record,
        metrics={k: round(float(v), 6) for k, v in out.metrics.items()},
        precision=model.precision,
        seeds=out.seeds,
        per_class=out.per_class,
        profile=spec.profile,
        wall_s=round(wall, 3),
        notes=out.notes,
        git_commit=git_commit(),
        created=now_iso(),
        env={
            **environment(str(model.device)),
            "model": model.info,
            "cache": {"hits": ctx.cache.hits, "misses": ctx.cache.misses},
        },
    )
    write_result(path, result)
    return Outcome(result, path, skipped=False)

"""The training loop shared by the SILC and PACL objectives.

One optimizer update = `grad_accum` micro-batches of `batch_size` per process; the
effective batch is batch_size × grad_accum × processes. Each micro-batch is its own
contrastive batch (negatives do not cross micro-batches or processes). Under torchrun the
trainable module is wrapped in DistributedDataParallel (gradients averaged across
processes, `no_sync` inside the accumulation), each process reads its DistributedSampler
share, and only rank 0 writes logs, checkpoints and the export.

Everything that can be checked is checked before the first step: the config (already
typed), a resume's config against the checkpoint's, every data row, the batch size.

Rank 0 shows a progress bar and a line per checkpoint (train/progress.py) unless told to
be quiet, and draws the curves of `train_log.jsonl` at the end (train/plot.py).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml

from silc_bench.core.errors import UserError
from silc_bench.train import distributed
from silc_bench.train.augment import MultiCrop
from silc_bench.train.checkpoint import check_same_config, checkpoint_path, load_checkpoint, save_checkpoint
from silc_bench.train.config import TrainConfig, to_dict
from silc_bench.train.data import (
    Pair,
    PairDataset,
    group_sampling,
    index_shards,
    manifest_path,
    micro_batches,
    read_manifest,
)
from silc_bench.train.export import preprocess_record, write_bundle, write_entry
from silc_bench.train.overrides import Overrides, command_line
from silc_bench.train.progress import TrainProgress
from silc_bench.train.schedules import make_schedule


class Objective(Protocol):
    crops: MultiCrop
    image_size: int

    def trainable(self) -> torch.nn.Module: ...
    def loss(
        self, module: torch.nn.Module, batch: dict[str, Any], step: int
    ) -> tuple[torch.Tensor, dict]: ...
    def after_update(self) -> None: ...
    def state_dict(self) -> dict[str, torch.Tensor]: ...
    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None: ...
    def export_tensors(self) -> dict[str, torch.Tensor]: ...
    def entry(self) -> dict[str, Any]: ...
    def context_length(self) -> int: ...


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    history: list[dict[str, float]] = field(default_factory=list)  # rank 0's per-step losses
    files: list[Path] = field(default_factory=list)  # the export (rank 0 only)
    entry: Path | None = None
    checkpoints: list[Path] = field(default_factory=list)
    curves: Path | None = None  # the training curves PNG (rank 0 only)
    seconds: float = 0.0  # wall time of the steps this call trained


def open_pairs(cfg: TrainConfig) -> list[Pair]:
    if cfg.data.manifest is not None:
        return read_manifest(manifest_path(cfg.data.manifest, cfg.data.world_version))
    return index_shards(str(cfg.data.shards))


def build_objective(cfg: TrainConfig, device: torch.device) -> Objective:
    if cfg.pacl is not None:
        from silc_bench.train.pacl import PACLObjective

        return PACLObjective(cfg, device)
    from silc_bench.train.silc import SILCObjective

    return SILCObjective(cfg, device)


def make_optimizer(module: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW; like open_clip, gains, biases and logit scale/bias get no weight decay."""
    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim < 2 or any(s in name for s in ("bn", "ln", "bias", "logit_scale"))
        (no_decay if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": cfg.optim.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=cfg.optim.betas, eps=cfg.optim.eps)


def _check_image_size(cfg: TrainConfig, objective: Objective) -> None:
    if cfg.data.image_size is not None and cfg.data.image_size != objective.image_size:
        raise UserError(
            f"data.image_size {cfg.data.image_size} differs from the model's input size "
            f"{objective.image_size}; change the model's vision_cfg.image_size instead"
        )


@dataclass(frozen=True)
class RunOptions:
    """How a run was asked for, beyond its config: for the record and for the screen."""

    config_path: Path | None = None
    resume: Path | None = None
    overrides: Overrides = field(default_factory=Overrides)
    progress: bool = False  # the bar and the checkpoint lines on stderr (rank 0)


def train(
    cfg: TrainConfig,
    config_path: Path | None = None,
    resume: Path | None = None,
    overrides: Overrides | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train, checkpoint and export as `cfg` says; returns rank 0's record of the run."""
    opts = RunOptions(config_path, Path(resume) if resume else None, overrides or Overrides(), progress)
    config = to_dict(cfg)
    ckpt, extends = None, False
    if opts.resume is not None:  # refuse a mismatched resume before reading any data
        ckpt = load_checkpoint(opts.resume)
        extends = check_same_config(ckpt, config, opts.resume)
    pairs = open_pairs(cfg)
    d = distributed.setup(cfg.device)
    agreed = True  # a failing rank must not wait at the teardown barrier for its peers
    try:
        return _run(cfg, config, opts, ckpt, extends, pairs, d)
    except BaseException:
        agreed = False
        raise
    finally:
        distributed.teardown(d, sync=agreed)


def _cpu_threads(cfg: TrainConfig, d: distributed.Dist) -> None:
    """On a CPU, leave a core to each loader worker and share the rest among the ranks:
    torch's default (one thread a core) makes the step's threads and the workers fight over
    the same cores, which on 2 cores ran 3-6x slower. `OMP_NUM_THREADS` set by the user wins."""
    import os

    if d.device.type != "cpu" or os.environ.get("OMP_NUM_THREADS"):
        return
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores // max(1, d.world) - cfg.workers))


def _run(
    cfg: TrainConfig,
    config: dict[str, Any],
    opts: RunOptions,
    ckpt: dict[str, Any] | None,
    extends: bool,
    pairs: list[Pair],
    d: distributed.Dist,
) -> TrainResult:
    out_dir = Path(cfg.out_dir)
    _cpu_threads(cfg, d)
    torch.manual_seed(cfg.seed)
    objective = build_objective(cfg, d.device)
    _check_image_size(cfg, objective)
    module = objective.trainable()
    optimizer = make_optimizer(module, cfg)
    step = _restore(ckpt, module, objective, optimizer, opts.resume)
    wrapped = _wrap(module, d)
    dataset = PairDataset(pairs, objective.crops, cfg.seed)
    batches = micro_batches(
        dataset,
        cfg.batch_size,
        d.world,
        d.rank,
        cfg.workers,
        start=step * cfg.grad_accum,
        groups=group_sampling(cfg.data, cfg.grad_accum),
    )
    schedule = make_schedule(cfg.optim)
    result = TrainResult(out_dir, step)
    log_file = out_dir / "train_log.jsonl"
    if d.is_main:
        _start_out_dir(out_dir, config, log_file, step, opts)
    ln_k = math.log(cfg.objective.head.out_dim) if getattr(objective, "distill", False) else None
    shown = TrainProgress(cfg.optim.steps, step, opts.progress and d.is_main, ln_k)
    _say_resume(shown, cfg, opts, step, extends, schedule)
    module.train()
    started = time.perf_counter()
    while step < cfg.optim.steps:
        t0 = time.perf_counter()
        lr = schedule(step)
        totals = _update(cfg, objective, module, wrapped, optimizer, batches, lr, step)
        step += 1
        _check_finite(totals, step, d, shown)
        record = {"step": step, "lr": lr, **totals, "seconds": round(time.perf_counter() - t0, 4)}
        result.history.append(record)
        shown.step(record)
        if d.is_main:
            saved = _record_step(cfg, config, out_dir, log_file, record, module, objective, optimizer, step)
            if saved is not None:
                result.checkpoints.append(saved)
                shown.checkpoint(saved)
    shown.close()
    result.step, result.seconds = step, time.perf_counter() - started
    if d.is_main:
        _export(cfg, config, opts, objective, step, result)
        if log_file.is_file() and log_file.stat().st_size:
            from silc_bench.train.plot import plot_curves

            result.curves = plot_curves(out_dir)
    distributed.barrier(d)
    return result


def _say_resume(
    shown: TrainProgress,
    cfg: TrainConfig,
    opts: RunOptions,
    step: int,
    extends: bool,
    schedule: Callable[[int], float],
) -> None:
    """One line when a resume extends a finished run, or has nothing left to train."""
    if extends:
        shown.line(
            f"silc-bench train: extending the finished {step}-step run of {opts.resume} to "
            f"{cfg.optim.steps} steps; its {cfg.optim.schedule} schedule now spans {cfg.optim.steps} "
            f"steps (lr {schedule(step):.2e} at step {step})"
        )
    elif opts.resume is not None and step >= cfg.optim.steps:
        shown.line(
            f"silc-bench train: {opts.resume} is the end of its {cfg.optim.steps}-step run: nothing to "
            "train, exporting it again (--steps N, larger, extends it)"
        )


def _restore(
    ckpt: dict[str, Any] | None,
    module: torch.nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    path: Path | None = None,
) -> int:
    """A resume continues from the checkpoint's weights, optimizer, RNG and step; returns the step.

    The fields' kinds were checked on load (checkpoint.py); whether they fit this model is
    torch's to say, in a many-line error that becomes one line here."""
    if ckpt is None:
        return 0
    try:
        module.load_state_dict(ckpt["model"])
        objective.load_state_dict(ckpt["objective"])
        optimizer.load_state_dict(ckpt["optimizer"])
        _check_optimizer_state(optimizer)
        torch.set_rng_state(ckpt["rng"])
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError) as e:
        raise UserError(
            f"--resume {path}: not a checkpoint of this model/config ({_reason(e)}); resume from "
            "a checkpoint of this config's run or start a new run"
        ) from None
    return int(ckpt["step"])


def _check_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """AdamW's moments must have their parameter's shape: torch loads them unchecked and the
    first step would fail (or broadcast) far from the cause."""
    for group in optimizer.param_groups:
        for p in group["params"]:
            for name, value in optimizer.state.get(p, {}).items():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != p.shape:
                    raise ValueError(
                        f"optimizer state {name} has shape {list(value.shape)}, its parameter {list(p.shape)}"
                    )


def _reason(e: BaseException) -> str:
    """The line of a load error that says what differs (torch's first is only a heading)."""
    if isinstance(e, KeyError):
        return f"no key {e.args[0]!r}" if e.args else "a missing key"
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        lines = lines[1:]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= 200 else text[:197] + "..."


def _check_finite(totals: dict[str, float], step: int, d: distributed.Dist, shown: TrainProgress) -> None:
    """Stop at the first non-finite loss, before its log line: a diverged run trains nothing
    more, and NaN/Infinity are not JSON. Under torchrun every rank stops alike."""
    bad = {k: v for k, v in totals.items() if not math.isfinite(v)}
    anywhere = bool(bad)
    if d.world > 1:
        flag = torch.tensor([float(anywhere)], device=d.device)
        torch.distributed.all_reduce(flag)
        anywhere = bool(flag.item())
    if not anywhere:
        return
    shown.close()
    found = ", ".join(f"{k}={v}" for k, v in bad.items()) if bad else "on another process"
    raise UserError(f"step {step}: the loss is not finite ({found}); lower optim.lr or check the data")


def _wrap(module: torch.nn.Module, d: distributed.Dist) -> torch.nn.Module:
    """Under several processes, DistributedDataParallel averages the gradients."""
    if d.world > 1:
        ids = [d.device.index] if d.device.type == "cuda" else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)
    return module


def _start_out_dir(
    out_dir: Path, config: dict[str, Any], log_file: Path, step: int, opts: RunOptions
) -> None:
    """Rank 0 records the run's config and drops log lines a resume will rewrite.

    The config is the resolved one (overrides included); a header names the command's
    overrides, so the file says both what ran and what differs from the config file.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    header = ""
    if opts.overrides:
        header = f"# the config file with the command line's overrides: {' '.join(opts.overrides.flags())}\n"
    (out_dir / "config.yaml").write_text(header + yaml.safe_dump(config, sort_keys=False))
    _truncate_log(log_file, step)


def _update(
    cfg: TrainConfig,
    objective: Objective,
    module: torch.nn.Module,
    wrapped: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[dict[str, Any]],
    lr: float,
    step: int,
) -> dict[str, float]:
    """One optimizer update over `grad_accum` micro-batches; returns the averaged losses."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    totals: dict[str, float] = {}
    for micro in range(cfg.grad_accum):
        batch = next(batches)
        last = micro == cfg.grad_accum - 1
        sync = contextlib.nullcontext() if last or wrapped is module else wrapped.no_sync()
        with sync:
            loss, parts = objective.loss(wrapped, batch, step)
            (loss / cfg.grad_accum).backward()
        for k, v in {"loss": float(loss.detach()), **parts}.items():
            totals[k] = totals.get(k, 0.0) + v / cfg.grad_accum
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    objective.after_update()
    return totals


def _record_step(
    cfg: TrainConfig,
    config: dict[str, Any],
    out_dir: Path,
    log_file: Path,
    record: dict[str, Any],
    module: torch.nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    step: int,
) -> Path | None:
    """Rank 0 appends the step's log line and checkpoints when due (always at the last step);
    returns the checkpoint written, if one was."""
    with log_file.open("a") as f:
        f.write(json.dumps(record) + "\n")
    if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.optim.steps:
        path = checkpoint_path(out_dir, step)
        state = {
            "step": step,
            "model": module.state_dict(),
            "objective": objective.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": torch.get_rng_state(),
        }
        save_checkpoint(path, state, config)
        return path
    return None


def _truncate_log(path: Path, step: int) -> None:
    """A resumed run rewrites the steps after its checkpoint: drop their old log lines."""
    if path.is_file():
        keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
        path.write_text("".join(line + "\n" for line in keep))


def _export(
    cfg: TrainConfig,
    config: dict[str, Any],
    opts: RunOptions,
    objective: Objective,
    step: int,
    result: TrainResult,
) -> None:
    name = str(cfg.export.name)
    fields = objective.entry()
    preprocess = preprocess_record(objective.image_size)
    tokenizer = {"type": "open_clip", "context_length": objective.context_length()}
    record = {
        "config": config,
        "preprocess": preprocess,
        "tokenizer": tokenizer,
        "step": step,
        "arch": fields["arch"],
        "backend": fields.get("backend", "open_clip"),
        "variants": sorted(fields.get("variants", {})),
    }
    out_dir = Path(cfg.out_dir) / "export"  # apart from the run's own files: no name can collide
    files = write_bundle(
        objective.export_tensors(), out_dir, name, record, cfg.export.fp16, cfg.export.max_file_mb
    )
    where = str(opts.config_path.resolve()) if opts.config_path else "CONFIG"
    reproduce = command_line(where, opts.overrides)
    entry_fields = {
        "description": f"trained by silc-bench train ({step} steps)",
        **fields,
        "preprocess": preprocess,
        "tokenizer": tokenizer,
        "reproduce": reproduce,
    }
    result.files = files
    result.entry = write_entry(out_dir, name, files, entry_fields)

"""The `run` command: flags to checked options, every dataset prepared before any runs,
then each evaluated (or its stored result reused) and the summary table printed. Under
torchrun the process group is joined first, so every later error is agreed across ranks."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from silc_bench.cli.flags import PATH_FORMS, add_device, add_list, add_results
from silc_bench.core import paths
from silc_bench.core.errors import UserError, did_you_mean

MAX_BATCH = 2**20  # images or prompts per forward; beyond it a number is a typo, not a batch


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    r = sub.add_parser("run", parents=[common], help="evaluate a model on a task")
    add_list(
        r,
        "--task",
        required=True,
        help="zs-cls, fs-cls, retrieval, zs-seg (see `list tasks`); several: a sweep",
    )
    add_list(
        r, "--model", required=True,
        help="NAME, NAME:teacher|student, hf-hub:ORG/NAME, open_clip:ARCH[/TAG]; several: each loaded once",
    )  # fmt: skip
    add_list(
        r, "--dataset", keep_whole=PATH_FORMS,
        help="NAME, imagefolder:PATH or wds:PATH|ORG/NAME (default: all of each task's)",
    )  # fmt: skip
    r.add_argument(
        "--data-root",
        default=paths.data_root(),
        help="folder holding the datasets ($SILC_BENCH_DATA or ./data)",
    )
    add_results(r)
    r.add_argument("--weights", help="checkpoint file (for open_clip:ARCH, or to override a registry path)")
    r.add_argument(
        "--protocol", default=None, help="protocol profile (default: the task's; see `list tasks`)"
    )
    add_device(r)
    r.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="numeric precision")
    r.add_argument("--batch-size", type=int, default=64, help="images or prompts per forward")
    r.add_argument("--compile", action="store_true", help="torch.compile the image tower (recorded)")
    r.add_argument("--channels-last", action="store_true", help="channels-last image tensors (recorded)")
    r.add_argument(
        "--decode", choices=["cpu", "gpu"], default="cpu", help="gpu: JPEGs decoded on the model's device"
    )
    r.add_argument(
        "--text-encoding",
        choices=["trimmed", "full"],
        default="trimmed",
        help="trimmed: each batch of prompts cut to its longest text, where the tower provably allows it "
        "(same numbers up to float rounding; recorded); full: every prompt at the full context length",
    )
    r.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="image decoding workers")
    r.add_argument("--limit", type=int, help="evaluate only the first N images (smoke tests)")
    r.add_argument("--force", action="store_true", help="recompute even if the result exists")
    r.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    r.add_argument(
        "--verify-data",
        action="store_true",
        help="re-hash every data file for the fingerprint, ignoring the memo of earlier hashes",
    )
    r.add_argument(
        "--max-image-pixels",
        type=int,
        help="raise PIL's decompression-bomb limit for images you trust (default: PIL's, ~179M pixels)",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bars")
    r.add_argument(
        "--offline",
        action="store_true",
        help="download nothing: hf-hub: and open_clip:ARCH/TAG read the local cache (as HF_HUB_OFFLINE=1)",
    )
    _zs_seg_flags(r.add_argument_group("zs-seg"))


def _zs_seg_flags(seg: argparse._ArgumentGroup) -> None:
    """The flags only zero-shot segmentation reads (other tasks refuse them)."""
    seg.add_argument(
        "--dense-mode",
        help="patch-proj, maskclip, sclip, clearclip, naclip (default: the model's, from checkpoints.yaml)",
    )
    seg.add_argument(
        "--classnames",
        choices=["mmseg", "spaced", "sclip"],
        help="class-name style instead of the profile's (tcl: mmseg's names, as TCL queries them)",
    )
    seg.add_argument("--pamr", action="store_true", help="TCL only: PAMR refinement (not raw zero-shot)")
    seg.add_argument(
        "--tcl-ensemble",
        action="store_true",
        help="TCL only: the label-tuned 0.3 MaskCLIP mix (not raw zero-shot)",
    )
    seg.add_argument(
        "--save-predictions",
        action="store_true",
        help="write one PNG per image to <out>/<model>/zs-seg/<dataset>/pred/",
    )
    seg.add_argument(
        "--bootstrap",
        type=int,
        default=0,
        metavar="N",
        help="a 95%% interval of the mIoU from N resamples of the images (seeded, recorded; 0: none)",
    )


def run(a: argparse.Namespace) -> int:
    from silc_bench.core import dist

    if not dist.launched():
        return _run(a)
    world = dist.init(a.device)  # first: later errors are agreed, and printed by rank 0 alone
    device = dist.resolve_device(a.device)
    if device.startswith("cuda"):
        a.device = f"cuda:{world.local_rank}"  # one GPU per rank
    if not world.main:
        a.quiet = True
    agreed = True  # every rank gets here together unless one of them failed
    try:
        return _run(a)
    except UserError:
        raise  # raised on every rank (errors are agreed before work starts)
    except BaseException:
        agreed = False
        raise
    finally:
        dist.shutdown(sync=agreed)


def _run(a: argparse.Namespace) -> int:
    if not a.offline:
        return _run_all(a)
    before = os.environ.get("SILC_BENCH_OFFLINE")
    os.environ["SILC_BENCH_OFFLINE"] = "1"  # read at call time by models/hub_fetch.py
    try:
        return _run_all(a)
    finally:  # this run's choice, not the next one's (`main` may be called again in-process)
        if before is None:
            os.environ.pop("SILC_BENCH_OFFLINE", None)
        else:
            os.environ["SILC_BENCH_OFFLINE"] = before


def _run_all(a: argparse.Namespace) -> int:
    """Every (model, task, dataset) of the sweep: names and numbers checked first (a typo
    answers before torch is imported), every evaluation prepared before any runs, each
    model loaded once, one table at the end."""
    if not a.model or not all(a.model):
        raise UserError("--model: empty model name; use NAME[,NAME]")
    if a.weights and len(a.model) > 1:
        raise UserError("--weights goes with one --model, not a sweep of several")
    jobs = _jobs(a)
    _check_numbers(a)
    from silc_bench.api import LazyModel, agree_on_reuse, execute, prepare
    from silc_bench.core import dist
    from silc_bench.data.images import image_pixel_limit
    from silc_bench.results.summary import markdown_table

    opts = _options(a)
    models = {name: LazyModel(name, opts) for name in a.model}  # loaded on first use, once
    outcomes = []
    with image_pixel_limit(a.max_image_pixels):
        # every check before any work; under torchrun a failure on any rank stops all of them
        # alike, and every rank follows rank 0's reading of the stored results
        def plan_all():  # noqa: ANN202
            return [prepare(models[m], task, ds, opts) for m in a.model for task, ds in jobs]

        for plan in agree_on_reuse(dist.agreed(plan_all)):
            out = execute(plan, opts)
            state = "skipped (exists; --force to recompute)" if out.skipped else f"{out.result.wall_s:.1f}s"
            if dist.current().main:
                print(f"{out.path}: {state}", file=sys.stderr)
            outcomes.append(out)
    if dist.current().main:
        print(markdown_table(o.result for o in outcomes))
    return 0


def _jobs(a: argparse.Namespace) -> list[tuple[str, str]]:
    """(task, dataset) pairs. With several tasks, a named dataset runs under each task that
    has it, and a name no task has is an error (a typo is never skipped)."""
    from silc_bench.config import list_datasets, list_tasks

    if not all(a.task):
        raise UserError("--task: empty task name; use NAME[,NAME]")
    for task in a.task:
        if task not in list_tasks():
            raise did_you_mean("task", task, list_tasks())
    if len(a.task) == 1 or a.dataset is None:
        return [(task, ds) for task in a.task for ds in _datasets(a, task, a.dataset)]
    jobs = []
    for name in a.dataset:
        owners = [t for t in a.task if name.startswith(PATH_FORMS) or name in list_datasets(t)]
        if not owners:
            known = sorted({d for t in a.task for d in list_datasets(t)})
            raise did_you_mean(f"dataset of {', '.join(a.task)}", name, known)
        jobs += [(task, ds) for task in owners for ds in _datasets(a, task, [name])]
    return jobs


def _datasets(a: argparse.Namespace, task: str, named: list[str] | None) -> list[str]:
    """The datasets of `task` to run, every name validated first; with no --dataset and no
    data folder, the task's generated ones (ShapesWorld) only."""
    from silc_bench.config import list_datasets, load_task
    from silc_bench.core import dist
    from silc_bench.data.wds_hub import check_hub_names

    if named is not None:
        if not all(named):
            raise UserError("--dataset: empty dataset name; use NAME[,NAME], imagefolder:PATH or wds:PATH")
        datasets = list(named)
    else:
        datasets = [d for d in list_datasets(task) if f"{d}:" not in PATH_FORMS]
    specs = [load_task(task, ds, a.protocol) for ds in datasets]  # validate every name first
    check_hub_names(datasets, Path(a.data_root))  # a typo of a known wds: name, before any download
    if named is None and not Path(a.data_root).is_dir():
        # all of the task's datasets, but no data folder: run the generated ones (ShapesWorld)
        missing = [s.dataset for s in specs if "generated" not in s.data]
        datasets = [s.dataset for s in specs if "generated" in s.data]
        if missing and dist.current().main:
            print(
                f"silc-bench: no --data-root folder {a.data_root}: skipping {', '.join(missing)}",
                file=sys.stderr,
            )
        if not datasets:
            raise UserError(
                f"--data-root: folder not found: {a.data_root} (the folder that holds the datasets; "
                "`silc-bench list datasets` shows where each is read from, `silc-bench data get NAME` "
                "fetches one)"
            )
    return datasets


def _check_numbers(a: argparse.Namespace) -> None:
    """Counts a user typed: a typo is an error before any work, not a huge allocation."""
    for n, least, flag in (
        (a.batch_size, 1, "--batch-size"),
        (a.workers, 0, "--workers"),
        (a.limit, 1, "--limit"),
    ):
        if n is not None and n < least:
            raise UserError(f"{flag} must be {'positive' if least else '0 or more'}, not {n}")
    if a.batch_size > MAX_BATCH:
        raise UserError(f"--batch-size must be at most {MAX_BATCH:,}")
    if a.workers > max_workers():
        raise UserError(
            f"--workers must be at most {max_workers()} on this machine (4 per CPU core), not {a.workers:,}"
        )
    if a.max_image_pixels is not None and a.max_image_pixels < 1:
        raise UserError("--max-image-pixels must be positive")
    if a.bootstrap:
        from silc_bench.metrics.uncertainty import resamples_problem  # numpy only, no torch

        if problem := resamples_problem(a.bootstrap):
            raise UserError(problem)


def max_workers() -> int:
    """The most DataLoader workers a run may ask for: 4 per usable core (at least 8). Past
    the cores a worker only adds decode contention; far past them, the forked processes
    exhaust memory and the run dies by SIGKILL (exit 137) with no message."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(8, 4 * (cores or 1))


def _options(a: argparse.Namespace):  # noqa: ANN202
    """The flags as the pipeline's `EvalOptions`."""
    from silc_bench.api import EvalOptions

    return EvalOptions(
        data_root=Path(a.data_root),
        out=Path(a.results),
        device=a.device,
        precision=a.precision,
        batch_size=a.batch_size,
        workers=a.workers,
        limit=a.limit,
        force=a.force,
        profile=a.protocol,
        weights=a.weights,
        cache=not a.no_cache,
        progress=not a.quiet,
        verify_data=a.verify_data,
        compile=a.compile,
        channels_last=a.channels_last,
        decode=a.decode,
        text_encoding=a.text_encoding,
        task_options={
            k: v
            for k, v in (
                ("classnames", a.classnames),
                ("dense_mode", a.dense_mode),
                ("pamr", a.pamr),
                ("tcl_ensemble", a.tcl_ensemble),
                ("save_predictions", a.save_predictions),
                ("bootstrap", a.bootstrap),
            )
            if v
        },
    )

"""`evaluate()`: the one function the CLI, torchrun workers and tests call.

It resolves the task (fast, before any model is loaded), computes the run key (model
identity, dataset fingerprint, protocol, options, precision, limit), reuses an existing
result only when its stored key matches exactly (and says why otherwise), checks that
the output can be written, and only then loads the model, runs the plugin and writes one
Result file atomically.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from silc_bench.config import TaskSpec, build, load_task
from silc_bench.core import dist
from silc_bench.core.console import warn
from silc_bench.core.errors import UserError
from silc_bench.core.files import writable_dir
from silc_bench.core.hashing import VERIFY_DATA, canonical_json, hash_obj
from silc_bench.core.paths import ASSETS
from silc_bench.features.cache import FeatureCache
from silc_bench.features.extract import RunOptions
from silc_bench.metrics.uncertainty import BOOTSTRAP_SEED, resamples_problem
from silc_bench.models import VLModel, load_model, parse_model_ref
from silc_bench.models.execution import Execution, ExecutionRecord
from silc_bench.models.execution import apply as apply_execution
from silc_bench.models.resolve import model_identity, model_location
from silc_bench.models.text_encoding import MODES as TEXT_ENCODINGS
from silc_bench.results.key import (
    ResultKey,
    execution_tags,
    limit_tags,
    option_tags,
    text_tags,
    weights_tags,
)
from silc_bench.results.schema import (
    Result,
    environment,
    git_commit,
    now_iso,
    read_result,
    write_result,
)
from silc_bench.tasks import PLUGINS, TaskContext, TaskOutput, TaskPlugin


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
    compile: bool = False  # torch.compile the image tower (recorded; in the run key)
    channels_last: bool = False
    decode: str = "cpu"  # or "gpu": JPEGs decoded on the model's device
    verify_data: bool = False  # re-hash every data file, ignoring the fingerprint memo
    text_encoding: str = "trimmed"  # or "full": every prompt at the full context length


@dataclass
class Outcome:
    result: Result
    path: Path
    skipped: bool


class LazyModel:
    """A model reference that loads on first use, once: runs over several datasets load the
    model only if some result is not already on disk. Its identity (weights sha256 and
    registry settings) is known without loading it."""

    def __init__(self, ref: str, opts: EvalOptions) -> None:
        self.ref = ref
        self._ref = parse_model_ref(ref, opts.weights)  # validates the name now
        self._opts = opts
        self._model: VLModel | None = None
        self._identity: dict | None = None

    def identity(self) -> dict:
        if self._identity is None:
            self._identity = model_identity(self._ref)
        return self._identity

    def get(self) -> VLModel:
        """The model; with the cache on, one whose towers are built only if a feature is
        not cached (models/deferred.py), so a fully cached run never builds it."""
        if self._model is None:
            from silc_bench.models.deferred import FactsMemo, load_or_defer

            device = dist.resolve_device(self._opts.device)
            precision = self._opts.precision
            self._model = load_or_defer(
                self.ref,
                self.identity(),
                lambda: model_location(self._ref),
                precision,
                device,
                lambda: load_model(self._ref, device, precision),
                FactsMemo() if self._opts.cache else None,
            )
            apply_execution(self._model, execution_of(self._opts))
        return self._model


def _folder(spec: TaskSpec) -> str:
    """The dataset's folder under --data-root, as its dataset file names it."""
    return str(spec.data.get("path") or spec.data.get("data_root") or "")


def _fetch_hint(dataset: str, opts: EvalOptions) -> str:
    from silc_bench.data.get.catalogue import fetch_hint

    return fetch_hint(dataset, opts.data_root)


def _identity(model: VLModel | LazyModel) -> dict:
    return model.identity() if isinstance(model, LazyModel) else model.identity


def run_key(
    spec: TaskSpec, identity: dict, fingerprint: str, opts: EvalOptions, precision: str
) -> dict[str, Any]:
    """Everything that decides a number, as asked for by this run (before any model loads)."""
    return {
        "model": identity,
        "task": spec.task,
        "task_version": spec.version,
        "dataset": spec.dataset,
        "dataset_fingerprint": fingerprint,
        "data": spec.data,
        "profile": spec.profile,
        "profile_version": spec.profile_version,
        "protocol": spec.protocol,
        "options": {k: v for k, v in sorted(opts.task_options.items()) if k != "bootstrap"},
        "assets_sha256": assets_sha256(),  # class-name and template files
        "precision": precision,
        "limit": opts.limit,
        "text_encoding": opts.text_encoding,
        # identical texts share one embedding (features/extract.py): results from before
        # that rule could break an exact tie by float noise, so they are not reused
        "text_rows": "each distinct text once",
        **({"execution": ex} if (ex := execution_of(opts).key()) else {}),
        # --bootstrap adds an interval and changes no number: a part of its own, only when asked,
        # so a stored result with an interval still answers a run that asks for none
        **({"bootstrap": {"resamples": n, "seed": BOOTSTRAP_SEED}} if (n := _resamples(opts)) else {}),
    }


def _resamples(opts: EvalOptions) -> int:
    return int(opts.task_options.get("bootstrap") or 0)


def execution_of(opts: EvalOptions) -> Execution:
    return Execution(compile=opts.compile, channels_last=opts.channels_last, decode=opts.decode)


@functools.cache
def assets_sha256() -> str:
    """One hash over the packaged class-name and template files: editing any of them
    changes the prompts, so a stored result must not be reused."""
    files = sorted(p for kind in ("classnames", "templates") for p in (ASSETS / kind).glob("*.txt"))
    return hash_obj([[p.relative_to(ASSETS).as_posix(), p.read_text()] for p in files])


def _short(value: Any) -> str:
    text = canonical_json(value) if not isinstance(value, str) else value
    return text if len(text) <= 60 else text[:28] + "…" + text[-28:]


def _short_pair(old: Any, new: Any) -> tuple[str, str]:
    """Both values shortened, cut around where they first differ when the usual cut
    would leave them looking alike."""
    a, b = _short(old), _short(new)
    if a != b:
        return a, b
    ta = canonical_json(old) if not isinstance(old, str) else old
    tb = canonical_json(new) if not isinstance(new, str) else new
    at = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x != y), min(len(ta), len(tb)))
    start = max(0, at - 20)

    def cut(t: str) -> str:
        piece = t[start : start + 50]
        return ("…" if start else "") + piece + ("…" if start + 50 < len(t) else "")

    return cut(ta), cut(tb)


def _deepest_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any]:
    """The dotted path of the first field that differs, as deep as both sides are dicts."""
    while isinstance(old, dict) and isinstance(new, dict):
        differ = [
            k for k in sorted(set(old) | set(new)) if canonical_json(old.get(k)) != canonical_json(new.get(k))
        ]
        if not differ:
            break
        sub = differ[0]
        path, old, new = f"{path}.{sub}", old.get(sub), new.get(sub)
    return path, old, new


def key_difference(stored: dict, wanted: dict) -> str | None:
    """Why a stored result does not answer this run (None: it does), naming the deepest
    field that differs (`model.spec.preprocess.mean`), so two long values that share
    their ends never read alike."""
    if not stored:
        return "it records no run key (written by an older silc-bench)"
    for part in wanted:
        old, new = stored.get(part), wanted[part]
        if canonical_json(old) == canonical_json(new):
            continue
        where, old, new = _deepest_difference(old, new, part)
        a, b = _short_pair(old, new)
        return f"its {where} was {a}, this run has {b}"
    return None


@dataclass
class Plan:
    """One evaluation, checked and keyed, before any model loads (see `prepare`)."""

    model: VLModel | LazyModel
    plugin_cls: type[TaskPlugin]
    spec: TaskSpec
    protocol: Any
    path: Path
    key: dict
    reuse: Result | None  # the stored result, when its run key matches
    why: str | None  # why a stored result is replaced


def prepare(model: str | VLModel | LazyModel, task: str, dataset: str, opts: EvalOptions) -> Plan:
    """Every check that can fail before the work: names, options, layout, dataset
    fingerprint, model identity, and whether a stored result answers this run. `run`
    prepares every dataset first, so a bad second dataset fails before the first runs."""
    spec = load_task(task, dataset, opts.profile)
    plugin_cls = PLUGINS.get(spec.type)
    if opts.limit is not None and opts.limit < 1:
        raise UserError(f"--limit must be a positive number of images, not {opts.limit}")
    if problem := resamples_problem(opts.task_options.get("bootstrap") or 0):
        raise UserError(problem)
    dist.resolve_device(opts.device)  # a bad --device is an error even when the result exists
    if opts.text_encoding not in TEXT_ENCODINGS:
        modes = ", ".join(TEXT_ENCODINGS)
        raise UserError(f"--text-encoding must be one of {modes}, not {opts.text_encoding!r}")
    foreign = sorted(k for k, v in opts.task_options.items() if v and k not in plugin_cls.options)
    if foreign:
        flags = ", ".join("--" + k.replace("_", "-") for k in foreign)
        raise UserError(f"{flags}: not an option of --task {task} ({spec.type})")
    unused = sorted(set(execution_of(opts).key()) - set(plugin_cls.execution_options))
    if unused:
        flags = ", ".join("--" + k.replace("_", "-") + (" gpu" if k == "decode" else "") for k in unused)
        raise UserError(f"{flags}: --task {task} does not use it (only the whole-image tasks do)")
    protocol = build(plugin_cls.protocol_cls, spec.protocol, f"tasks/{task} protocol ({dataset})")
    needs_root = not dataset.startswith(("imagefolder:", "wds:")) and "generated" not in spec.data
    if needs_root and not Path(opts.data_root).is_dir():
        raise UserError(
            f"--data-root: folder not found: {opts.data_root} (the folder that holds the datasets: "
            f"{dataset} is read from {Path(opts.data_root) / _folder(spec)}{_fetch_hint(dataset, opts)})"
        )
    model_ref = model if isinstance(model, str) else model.ref
    if isinstance(model, str):
        model = LazyModel(model, opts)
    precision = model.precision if isinstance(model, VLModel) else opts.precision
    ex_tags = execution_tags(precision, execution_of(opts).key())
    identity = _identity(model)
    tags = option_tags(opts.task_options) + limit_tags(opts.limit) + ex_tags + weights_tags(identity)
    tags += text_tags(opts.text_encoding)
    rkey = ResultKey(model_ref, task, dataset, spec.profile, spec.default_profile, tags)
    path = rkey.to_path(opts.out, Path(opts.data_root))
    token = VERIFY_DATA.set(opts.verify_data)
    try:
        fingerprint = plugin_cls.fingerprint(spec, protocol, Path(opts.data_root))
    except UserError as e:
        if needs_root and not (Path(opts.data_root) / _folder(spec)).exists():
            raise UserError(f"{e}{_fetch_hint(dataset, opts)}") from None
        raise
    finally:
        VERIFY_DATA.reset(token)
    key = run_key(spec, identity, fingerprint, opts, precision)
    reuse, why = None, None
    if path.exists() and not opts.force:
        try:
            stored = read_result(path)
            why = key_difference(stored.run_key, key)
            reuse = stored if why is None else None
        except UserError as e:
            why = f"it is unreadable ({str(e).removeprefix(str(path) + ': ')})"
    if reuse is None and dist.current().main and not writable_dir(path.parent):  # rank 0 writes
        raise UserError(f"--out: cannot write results into {path.parent} (not a writable folder)")
    return Plan(model, plugin_cls, spec, protocol, path, key, reuse, why)


def agree_on_reuse(plans: list[Plan]) -> list[Plan]:
    """Under torchrun, every rank must be running the same evaluation, and takes rank 0's
    reading of the stored results.

    The same run: each rank computed the whole run key itself (every weight file's sha256,
    the dataset fingerprint of its own `--data-root`, the options, `--limit`), and any
    difference from rank 0's stops every rank alike before any work, naming the part (ranks
    with node-local files of one name but other bytes would otherwise be mixed silently,
    and the mixture cached). The same reading: ranks that each read their own `--out` must
    not split into some that skip and some that compute."""
    if dist.current().size == 1:
        return plans
    keys = dist.all_gather([(p.key, p.path.name) for p in plans])
    for rank, theirs in enumerate(keys[1:], start=1):
        if len(theirs) != len(keys[0]):
            raise UserError(f"the ranks are not running the same evaluations: rank 0 has {len(keys[0])} "
                            f"datasets, rank {rank} has {len(theirs)}")  # fmt: skip
        for (key0, name0), (key, name) in zip(keys[0], theirs):
            why = key_difference(key0, key) or (None if name == name0 else f"its result file is {name}")
            if why is not None:
                why = why.replace("its ", "rank 0's ", 1).replace("this run has", f"rank {rank}'s is", 1)
                raise UserError(f"the ranks are not running the same evaluation ({name0}): {why}")
    decided = dist.broadcast([(p.reuse, p.why) for p in plans])
    return [replace(p, reuse=reuse, why=why) for p, (reuse, why) in zip(plans, decided)]


def execute(plan: Plan, opts: EvalOptions) -> Outcome:
    """Run a prepared evaluation (or reuse its stored result) and write its Result."""
    if plan.reuse is not None:
        return Outcome(plan.reuse, plan.path, skipped=True)
    if plan.why:
        warn(f"replacing {plan.path}: {plan.why}")
    cache = FeatureCache(enabled=opts.cache)
    cache.check_writable()
    model = plan.model.get() if isinstance(plan.model, LazyModel) else plan.model
    model.text_encoding = opts.text_encoding
    token = VERIFY_DATA.set(opts.verify_data)
    try:
        return _run(model, plan.plugin_cls, plan.spec, plan.protocol, plan.path, plan.key, cache, opts)
    finally:
        VERIFY_DATA.reset(token)


def evaluate(model: str | VLModel | LazyModel, task: str, dataset: str, opts: EvalOptions) -> Outcome:
    return execute(prepare(model, task, dataset, opts), opts)


def _run(
    model: VLModel,
    plugin_cls: type[TaskPlugin],
    spec: TaskSpec,
    protocol: Any,
    path: Path,
    key: dict,
    cache: FeatureCache,
    opts: EvalOptions,
) -> Outcome:
    ctx = TaskContext(
        spec=spec,
        model=model,
        data_root=Path(opts.data_root),
        cache=cache,
        opts=RunOptions(opts.batch_size, opts.workers, opts.progress),
        limit=opts.limit,
        options=dict(opts.task_options),
        artifacts_dir=path.with_suffix(""),
    )
    model.execution.begin_evaluation()  # this evaluation's record, not the last one's
    t0 = time.perf_counter()
    out = plugin_cls().run(ctx, protocol)
    wall = time.perf_counter() - t0
    if out.dataset_fingerprint != key["dataset_fingerprint"]:
        raise UserError(
            f"dataset {spec.dataset} changed while it was being evaluated "
            f"({key['dataset_fingerprint'][:19]}… then {out.dataset_fingerprint[:19]}…); run again"
        )
    n, standard = out.protocol.get("num_images"), spec.standard_images
    if opts.limit is None and standard and n != standard:
        note = (
            f"{spec.dataset}: scored {n} images, the published split has {standard:,}: "
            f"not comparable with published numbers"
        )
        out.notes.append(note)
        out.protocol["partial_split"] = {"scored": n, "published": standard}
        warn(note)
    out.protocol["text_encoding"] = model.text_encoding_used  # as the text was encoded
    if dist.current().size > 1:  # what every rank did, not rank 0's share alone
        model.execution = ExecutionRecord.merge(dist.all_gather(model.execution))
    c = model.execution.compile
    if c.get("requested") and c.get("took_effect") is None:  # nothing ran through the compiled tower
        c["took_effect"] = None
        c["why_unknown"] = "no image was encoded: every feature came from the cache"
    result = build_result(model, spec, out, wall, key, cache, plugin_cls.metric_decimals, opts.limit)
    if dist.current().main:  # every rank holds the same result; one writes it
        try:
            write_result(path, result)
        except OSError as e:  # a full disk: the old result stays intact, the numbers are not lost
            numbers = ", ".join(f"{k} {v}" for k, v in result.metrics.items())
            raise UserError(f"cannot write {path} ({e.strerror or e}); the numbers were: {numbers}") from None
    return Outcome(result, path, skipped=False)


def build_result(
    model: VLModel,
    spec: TaskSpec,
    out: TaskOutput,
    wall: float,
    key: dict,
    cache: FeatureCache,
    decimals: int,
    limit: int | None,
) -> Result:
    """A task's output as a Result: the one contract that tables and checks read."""
    protocol_record = {
        "profile": spec.profile,
        "profile_version": spec.profile_version,
        "data": spec.data,
        "preprocess": model.preprocess.to_dict(),
        "limit": limit,
        **out.protocol,
    }
    return Result(
        model=model.ref,
        variant=model.variant,
        checkpoint_sha256=model.checkpoint_sha256,
        task=spec.task,
        task_version=spec.version,
        dataset=spec.dataset,
        dataset_fingerprint=out.dataset_fingerprint,
        protocol=protocol_record,
        metrics={k: round(float(v), decimals) for k, v in out.metrics.items()},
        precision=model.precision,
        seeds=out.seeds,
        per_class=out.per_class,
        uncertainty=out.uncertainty,
        profile=spec.profile,
        wall_s=round(wall, 3),
        notes=[*out.notes, *cache.events],
        git_commit=git_commit(),
        created=now_iso(),
        env={
            **environment(str(model.device)),
            "model": model.info,
            "cache": {"hits": cache.hits, "misses": cache.misses, "repaired": len(cache.events)},
            "execution": model.execution.as_dict(),
        },
        run_key=key,
        world_size=dist.current().size,
        options={k: v for k, v in sorted(key["options"].items()) if v not in (None, False)},
    )

"""YAML → validated, frozen dataclasses: task specs (`tasks/`) and model specs (`checkpoints.yaml`).

Unknown keys are errors, so a typo in a YAML file cannot silently change a protocol.
Discovery walks the `tasks/` folder: a new dataset or protocol variant is one YAML
file and no Python.

Task layout::

    tasks/<task>/_task.yaml           type (plugin), version, protocol defaults
    tasks/<task>/<dataset>.yaml       data (reader + paths) and dataset protocol overrides
    tasks/<task>/profiles/<name>.yaml a named protocol profile (`--protocol NAME`)

A dataset YAML may `include:` another dataset file of the same task and override keys.
Protocol merge order: task defaults < dataset < profile (< profile's per-dataset block).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from silc_bench.core.errors import UserError, did_you_mean, first_line
from silc_bench.core.paths import checkpoint_files, task_roots

DEFAULT_PROFILE = "default"


def _find(task: str, rel: str) -> Path | None:
    """`<root>/<task>/<rel>` in exactly one task root (None: in none)."""
    hits = [r / task / rel for r in task_roots() if (r / task / rel).is_file()]
    if len(hits) > 1:
        raise UserError(f"{task}/{rel} is defined twice: {hits[0]} and {hits[1]}; rename one")
    return hits[0] if hits else None


def _names(task: str, pattern: str) -> list[str]:
    found = {p.stem for r in task_roots() for p in (r / task).glob(pattern) if not p.name.startswith("_")}
    return sorted(found)


MAX_YAML_NODES = 200_000  # after alias expansion; the whole registry is a few thousand


def _expanded_nodes(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes the document holds once every alias is expanded, counted without expanding it
    (a shared node is counted from the memo): nested aliases (a "billion laughs" file) would
    otherwise hang every command that walks the data."""
    key = id(node)
    if key not in memo:
        memo[key] = 0  # a cycle counts once
        if isinstance(node, yaml.MappingNode):
            memo[key] = 1 + sum(_expanded_nodes(k, memo) + _expanded_nodes(v, memo) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            memo[key] = 1 + sum(_expanded_nodes(v, memo) for v in node.value)
        else:
            memo[key] = 1
    return memo[key]


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is not None and _expanded_nodes(root, {}) > MAX_YAML_NODES:
            raise UserError(
                f"{path}: its aliases expand to more than {MAX_YAML_NODES:,} nodes; "
                "not a configuration file (a YAML alias bomb?)"
            )
        data = yaml.safe_load(text)
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except yaml.YAMLError as e:
        raise UserError(f"{path}: invalid YAML ({first_line(e)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping at the top level, found {type(data).__name__}")
    return data


def build(cls: type, raw: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass `cls` from `raw`, refusing unknown keys with a clear message."""
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(names)}")
    try:
        return cls(**raw)
    except TypeError as e:
        raise UserError(f"{where}: {e}") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `over` wins, nested mappings merge key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


# ---------------------------------------------------------------- tasks


@dataclass(frozen=True)
class TaskSpec:
    """One (task, dataset, profile): everything the plugin needs besides the model."""

    task: str
    type: str
    version: int
    dataset: str
    data: dict[str, Any]
    protocol: dict[str, Any]
    profile: str = DEFAULT_PROFILE
    default_profile: str = DEFAULT_PROFILE
    profile_version: int | None = None
    description: str = ""
    standard_images: int | None = None  # the published split's size, when there is one


@dataclass
class _TaskFile:
    type: str
    version: int
    description: str = ""
    default_profile: str = DEFAULT_PROFILE
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass
class _DatasetFile:
    data: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    include: str | None = None
    standard_images: int | None = None


@dataclass
class _ProfileFile:
    description: str = ""
    version: int = 1
    protocol: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)


def list_tasks() -> list[str]:
    return sorted({p.parent.name for r in task_roots() for p in r.glob("*/_task.yaml")})


def _task_folder(task: str) -> Path:
    found = _find(task, "_task.yaml")
    if found is None:
        raise did_you_mean("task", task, list_tasks())
    return found.parent


def list_datasets(task: str) -> list[str]:
    _task_folder(task)
    return _names(task, "*.yaml")


def list_profiles(task: str) -> list[str]:
    folder = _task_folder(task)
    named = _names(task, "profiles/*.yaml")
    return named if _default_profile(folder) in named else [DEFAULT_PROFILE, *named]


def _default_profile(folder: Path) -> str:
    return str(read_yaml(folder / "_task.yaml").get("default_profile", DEFAULT_PROFILE))


def task_default_profile(task: str) -> str:
    """The profile a task runs when `--protocol` is not given. A task the suite does not run
    itself (`ov-seg`, imported) has only the default."""
    found = _find(task, "_task.yaml")
    if found is None:
        return DEFAULT_PROFILE
    return _default_profile(found.parent)


def task_version(task: str) -> int | None:
    """The version a result of `task` must record to stand for today's protocol (None: a
    task the suite does not run itself)."""
    found = _find(task, "_task.yaml")
    if found is None:
        return None
    return build(_TaskFile, read_yaml(found), str(found)).version


def _dataset_raw(folder: Path, name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = _find(folder.name, f"{name}.yaml")
    if path is None or name.startswith("_"):
        raise did_you_mean(f"{folder.name} dataset", name, list_datasets(folder.name))
    if name in seen:
        raise UserError(f"{path}: include cycle {' -> '.join(seen + (name,))}")
    ds = build(_DatasetFile, read_yaml(path), str(path))
    raw = {
        "data": ds.data,
        "protocol": ds.protocol,
        "description": ds.description,
        "standard_images": ds.standard_images,
        "lineage": [name],
    }
    if ds.include:
        parent = _dataset_raw(folder, ds.include, seen + (name,))
        raw = merge(parent, {k: v for k, v in raw.items() if v and k != "lineage"})
        raw["lineage"] = [*parent["lineage"], name]
    return raw


def load_task(task: str, dataset: str, profile: str | None = None) -> TaskSpec:
    """Resolve `tasks/<task>/<dataset>.yaml` (+ profile) into a frozen TaskSpec.

    `dataset` may be `imagefolder:PATH`: the task's `imagefolder.yaml` with `path` set.
    `profile` None means the task's default profile.
    """
    folder = _task_folder(task)
    tf = build(_TaskFile, read_yaml(folder / "_task.yaml"), str(folder / "_task.yaml"))
    profile = profile or tf.default_profile
    if profile == DEFAULT_PROFILE and tf.default_profile != DEFAULT_PROFILE:
        profile = tf.default_profile
    base_name, _, arg = dataset.partition(":")
    raw = _dataset_raw(folder, base_name)
    data = dict(raw["data"])
    if arg:
        if data.get("format") not in ("imagefolder", "wds"):
            raise UserError(f"dataset {dataset!r}: only 'imagefolder:PATH' and 'wds:PATH' take a path")
        data["path"] = arg
    elif data.get("format") in ("imagefolder", "wds") and "path" not in data:
        fmt = data["format"]
        raise UserError(f"dataset {fmt!r} needs a path: use --dataset {fmt}:PATH")
    protocol = merge(tf.protocol, raw["protocol"])
    version = tf.version
    profile_version = None
    ppath = _find(task, f"profiles/{profile}.yaml")
    if profile != DEFAULT_PROFILE or ppath is not None:
        if ppath is None:
            raise did_you_mean(f"{task} protocol profile", profile, list_profiles(task))
        pf = build(_ProfileFile, read_yaml(ppath), str(ppath))
        protocol = merge(protocol, pf.protocol)
        for name in raw["lineage"]:  # a variant that includes a dataset gets its overrides too
            protocol = merge(protocol, pf.datasets.get(name, {}))
        profile_version = pf.version
    return TaskSpec(
        task=task,
        type=tf.type,
        version=version,
        dataset=dataset,
        data=data,
        protocol=protocol,
        profile=profile,
        default_profile=tf.default_profile,
        profile_version=profile_version,
        description=raw["description"] or tf.description,
        standard_images=None if arg else raw["standard_images"],
    )


# ---------------------------------------------------------------- models


@dataclass(frozen=True)
class ModelSpec:
    """One entry of checkpoints.yaml. Preprocessing lives with the checkpoint (timm's rule)."""

    name: str
    arch: dict[str, Any]
    backend: str = "open_clip"
    weights: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    tokenizer: dict[str, Any] = field(default_factory=dict)
    dense_mode: str = "maskclip"
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    default_variant: str | None = None
    paper: dict[str, Any] = field(default_factory=dict)
    paper_row: dict[str, str] = field(default_factory=dict)  # {model, size} in the paper's tables
    expected: dict[str, Any] = field(default_factory=dict)
    tolerance: dict[str, Any] = field(default_factory=dict)  # keyed like expected; default ±1 point
    description: str = ""
    reproduce: str = ""
    tags: tuple[str, ...] = ()


def _numbers(value: Any, where: str, minimum: float | None = None) -> dict[str, dict[str, float]]:
    """`task/dataset: {metric: number}` with finite numbers (a typo must not pass a check)."""
    import math

    if not isinstance(value, dict):
        raise UserError(f"{where}: expected a mapping of task/dataset keys to {{metric: number}}")
    for key, metrics in value.items():
        if not isinstance(metrics, dict):
            raise UserError(f"{where}: {key}: expected {{metric: number}}, found {metrics!r}")
        for metric, v in metrics.items():
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            if not ok or (minimum is not None and v < minimum):
                bound = f" >= {minimum:g}" if minimum is not None else ""
                raise UserError(f"{where}: {key}: {metric} must be a finite number{bound}, not {v!r}")
    return value


def _check_reference_numbers(entry: dict[str, Any], where: str) -> None:
    """expected, paper and tolerance (on the entry and on each variant) are well formed, and
    every tolerance names a metric that has an expected number."""
    variants = entry.get("variants") or {}
    scopes = [("", entry)] + [
        (f" variant {v!r}", e or {}) for v, e in variants.items() if isinstance(e, dict)
    ]
    base_expected = _numbers(entry.get("expected", {}), f"{where} expected")
    for label, scope in scopes:
        expected = _numbers(scope.get("expected", {}), f"{where}{label} expected")
        _numbers(scope.get("paper", {}), f"{where}{label} paper")
        tolerance = _numbers(scope.get("tolerance", {}), f"{where}{label} tolerance", minimum=0.0)
        for key, metrics in tolerance.items():
            known = {**base_expected.get(key, {}), **expected.get(key, {})}
            if not label:  # an entry-level tolerance may bound its variants' numbers
                for _, other in scopes[1:]:
                    known.update((other.get("expected") or {}).get(key, {}))
            stray = sorted(set(metrics) - set(known))
            if stray:
                raise UserError(f"{where}{label} tolerance: {key} {stray} has no expected number to bound")


def load_models() -> dict[str, ModelSpec]:
    """Every registry file in order. A later file may redefine a model only with
    `override: true` in its entry: a silent redefinition would change every number."""
    models: dict[str, ModelSpec] = {}
    origin: dict[str, Path] = {}
    for path in checkpoint_files():
        raw = read_yaml(path).get("models", {}) or {}
        if not isinstance(raw, dict):
            raise UserError(f"{path}: `models` must be a mapping of model names to entries")
        for name, entry in raw.items():
            if not isinstance(entry, dict):
                raise UserError(f"{path}: model {name!r} must be a mapping")
            entry = dict(entry)
            override = entry.pop("override", False)
            if name in origin and override is not True:
                raise UserError(
                    f"{path}: model {name!r} is already defined in {origin[name]}; "
                    f"add `override: true` to its entry to replace it on purpose"
                )
            origin[name] = path
            entry["tags"] = tuple(entry.get("tags", ()))
            _check_reference_numbers(entry, f"{path}: model {name!r}")
            models[name] = build(ModelSpec, {"name": name, **entry}, f"{path}: model {name!r}")
    return models

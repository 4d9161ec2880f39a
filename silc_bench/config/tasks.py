"""Task specs: `tasks/<task>/_task.yaml`, its dataset files and its protocol profiles.

Discovery walks the `tasks/` folders: a new dataset or protocol variant is one YAML file
and no Python.

Task layout::

    tasks/<task>/_task.yaml           type (plugin), version, protocol defaults
    tasks/<task>/<dataset>.yaml       data (reader + paths) and dataset protocol overrides
    tasks/<task>/profiles/<name>.yaml a named protocol profile (`--protocol NAME`)

A dataset YAML may `include:` another dataset file of the same task and override keys.
Protocol merge order: task defaults < dataset < profile (< profile's per-dataset block).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from silc_bench.config.files import DEFAULT_PROFILE, build, find_task_file, merge, read_yaml, task_file_names
from silc_bench.config.schemas import DATA_SCHEMAS
from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.core.paths import task_roots
from silc_bench.core.typed import Check, SchemaError, check_mapping

Positive = Annotated[int, Check(min=1)]


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
    version: Positive
    description: str = ""
    default_profile: str = DEFAULT_PROFILE
    protocol: dict[str, Any] = field(default_factory=dict)


@dataclass
class _DatasetFile:
    data: dict[str, Any] = field(default_factory=dict)
    protocol: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    include: str | None = None
    standard_images: Positive | None = None


@dataclass
class _ProfileFile:
    description: str = ""
    version: Positive = 1
    protocol: dict[str, Any] = field(default_factory=dict)
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)


def list_tasks() -> list[str]:
    return sorted({p.parent.name for r in task_roots() for p in r.glob("*/_task.yaml")})


def _task_folder(task: str) -> Path:
    found = find_task_file(task, "_task.yaml")
    if found is None:
        raise did_you_mean("task", task, list_tasks())
    return found.parent


def list_datasets(task: str) -> list[str]:
    _task_folder(task)
    return task_file_names(task, "*.yaml")


def list_profiles(task: str) -> list[str]:
    folder = _task_folder(task)
    named = task_file_names(task, "profiles/*.yaml")
    return named if _default_profile(folder) in named else [DEFAULT_PROFILE, *named]


def _default_profile(folder: Path) -> str:
    return str(read_yaml(folder / "_task.yaml").get("default_profile", DEFAULT_PROFILE))


def task_default_profile(task: str) -> str:
    """The profile a task runs when `--protocol` is not given. A task the suite does not run
    itself (`ov-seg`, imported) has only the default."""
    found = find_task_file(task, "_task.yaml")
    if found is None:
        return DEFAULT_PROFILE
    return _default_profile(found.parent)


def task_version(task: str) -> int | None:
    """The version a result of `task` must record to stand for today's protocol (None: a
    task the suite does not run itself)."""
    found = find_task_file(task, "_task.yaml")
    if found is None:
        return None
    return build(_TaskFile, read_yaml(found), str(found)).version


def _dataset_raw(folder: Path, name: str, seen: tuple[str, ...] = ()) -> dict[str, Any]:
    path = find_task_file(folder.name, f"{name}.yaml")
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
    schema = DATA_SCHEMAS.get(tf.type)
    if schema is not None:
        try:
            check_mapping(data, schema, "data")
        except SchemaError as e:
            raise SchemaError(f"{find_task_file(task, f'{base_name}.yaml')}: {e}") from None
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
    ppath = find_task_file(task, f"profiles/{profile}.yaml")
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

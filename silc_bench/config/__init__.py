"""YAML → validated, frozen dataclasses: task specs (`tasks/`) and model specs (`checkpoints.yaml`).

Every file kind has a typed schema (core/typed.py): unknown keys and wrong types are errors
that name the file and the field, so a typo in a YAML file cannot silently change a protocol.

- `files`: reading YAML safely (alias expansion capped) and `build` (dataclass from a mapping);
- `tasks`: `_task.yaml`, dataset files, protocol profiles → `TaskSpec`;
- `models`: registry entries → `ModelSpec`, each block checked by `schemas`.
"""

from silc_bench.config.files import DEFAULT_PROFILE, build, merge, read_yaml
from silc_bench.config.models import ModelSpec, load_models
from silc_bench.config.tasks import (
    TaskSpec,
    list_datasets,
    list_profiles,
    list_tasks,
    load_task,
    task_default_profile,
    task_version,
)

__all__ = [
    "DEFAULT_PROFILE", "ModelSpec", "TaskSpec", "build", "list_datasets", "list_profiles", "list_tasks",
    "load_models", "load_task", "merge", "read_yaml", "task_default_profile", "task_version",
]  # fmt: skip

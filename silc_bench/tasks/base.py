"""What a task plugin is: a protocol dataclass plus `run(ctx) -> TaskOutput`.

The plugin gets a loaded model, the resolved TaskSpec and the cache; it returns metrics
(percentages) and the protocol it actually applied. It never writes files: `api.evaluate`
turns the output into a Result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from silc_bench.config import TaskSpec
from silc_bench.core.registry import Registry
from silc_bench.features.cache import FeatureCache
from silc_bench.features.extract import RunOptions
from silc_bench.models.adapter import VLModel


@dataclass
class TaskContext:
    spec: TaskSpec
    model: VLModel
    data_root: Path
    cache: FeatureCache
    opts: RunOptions
    limit: int | None = None
    options: dict[str, Any] = field(default_factory=dict)  # task-specific CLI options
    artifacts_dir: Path = Path(".")  # where a task may write extra files


@dataclass
class TaskOutput:
    metrics: dict[str, float]
    protocol: dict[str, Any]  # every parameter that decides the number
    dataset_fingerprint: str
    per_class: dict[str, float] | None = None
    seeds: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # a metric's spread, beside the metric (zs-seg --bootstrap: {"mIoU": {...}}); never changes it
    uncertainty: dict[str, dict[str, Any]] = field(default_factory=dict)


class TaskPlugin:
    """Subclass, set `protocol_cls` (a dataclass of protocol options) and `headline`."""

    protocol_cls: ClassVar[type]
    headline: ClassVar[tuple[str, ...]] = ()  # metrics shown in the summary table
    options: ClassVar[tuple[str, ...]] = ()  # task options (CLI flags) this task accepts
    # Fast-path options (models/execution.py) this task's encoding honours; any other one is
    # refused rather than recorded as if it had taken part.
    execution_options: ClassVar[tuple[str, ...]] = ("compile", "channels_last", "decode")
    # Stored metrics are rounded to this many decimals: the precision the metric has,
    # without float noise (81.96, not 81.959999).
    metric_decimals: ClassVar[int] = 4

    @staticmethod
    def fingerprint(spec: TaskSpec, protocol: Any, data_root: Path) -> str:
        """The dataset's content fingerprint, computed without a model: a stored result is
        reused only if it was measured on exactly this data. `run` reports the same value."""
        raise NotImplementedError

    @staticmethod
    def path_tags(options: dict[str, Any]) -> list[str]:
        """Suffixes for the result file name when options change the number."""
        return []

    def run(self, ctx: TaskContext, protocol: Any) -> TaskOutput:  # pragma: no cover
        raise NotImplementedError


PLUGINS: Registry[type[TaskPlugin]] = Registry("task type")

"""Task plugins: one module per task type. Importing this package registers them all."""

import importlib
import pkgutil

from silc_bench.tasks.base import PLUGINS, TaskContext, TaskOutput, TaskPlugin

for _m in pkgutil.iter_modules(__path__):
    if _m.name != "base":
        importlib.import_module(f"{__name__}.{_m.name}")

__all__ = ["PLUGINS", "TaskContext", "TaskOutput", "TaskPlugin"]

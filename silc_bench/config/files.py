"""Reading the suite's YAML files: safely, with alias expansion capped, into typed dataclasses.

Unknown keys and wrong types are errors naming the file and the field (core/typed.py), so a
typo in a YAML file can never silently change a protocol.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from silc_bench.core.errors import UserError, first_line
from silc_bench.core.paths import task_roots
from silc_bench.core.typed import conform

DEFAULT_PROFILE = "default"


def find_task_file(task: str, rel: str) -> Path | None:
    """`<root>/<task>/<rel>` in exactly one task root (None: in none)."""
    hits = [r / task / rel for r in task_roots() if (r / task / rel).is_file()]
    if len(hits) > 1:
        raise UserError(f"{task}/{rel} is defined twice: {hits[0]} and {hits[1]}; rename one")
    return hits[0] if hits else None


def task_file_names(task: str, pattern: str) -> list[str]:
    found = {p.stem for r in task_roots() for p in (r / task).glob(pattern) if not p.name.startswith("_")}
    return sorted(found)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads `1e-4` as the number YAML 1.2 says it is (PyYAML's YAML 1.1
    resolver needs a dot: `1.0e-4`, and gives the text "1e-4" otherwise)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)

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
        root = yaml.compose(text, Loader=_Loader)
        if root is not None and _expanded_nodes(root, {}) > MAX_YAML_NODES:
            raise UserError(
                f"{path}: its aliases expand to more than {MAX_YAML_NODES:,} nodes; "
                "not a configuration file (a YAML alias bomb?)"
            )
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
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
    """Instantiate dataclass `cls` from `raw` after checking every key and type against it."""
    try:
        return conform(cls, raw, where)
    except TypeError as e:  # a dataclass's own __post_init__ refusing a value
        raise UserError(f"{where}: {e}") from None


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; `over` wins, nested mappings merge key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out

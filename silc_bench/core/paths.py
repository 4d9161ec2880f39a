"""Every folder silc-bench reads or writes, and every environment variable that moves one.

One module, so a reader looks in one place to learn where things go, and so nothing
above the ground floor needs another module just to find a folder (the cache root used to
live in the feature cache, which is why hashing and the cache imported each other).
Everything is read from the environment at call time: tests and users may change it
between runs in one process.

| variable | default | holds |
|---|---|---|
| SILC_BENCH_CACHE | ~/.cache/silc-bench | features, generated datasets, the content-hash memo |
| SILC_BENCH_WEIGHTS | ~/.cache/silc-bench/weights | registry checkpoints, tokenizers |
| SILC_BENCH_DATA | ./data | the datasets, in their standard layouts |
| SILC_BENCH_TASKS | <data home>/tasks | the task YAML folder |
| SILC_BENCH_TASK_PATH | (none) | more task folders, `:`-separated |
| SILC_BENCH_CHECKPOINTS | (none) | more model registries, `:`-separated |
| XDG_CONFIG_HOME | ~/.config | silc-bench/models.yaml, the user models file |
| HF_HUB_CACHE, HF_HOME | ~/.cache/huggingface/hub | the Hugging Face cache (hf-hub:, wds:) |
| OPEN_CLIP_CACHE | ~/.cache/clip | open_clip's URL-hosted pretrained files |
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = PACKAGE_DIR.parent
ASSETS = PACKAGE_DIR / "assets"
DEFAULT_DATA_ROOT = "data"


def _data_home() -> Path:
    """Where checkpoints.yaml, tasks/ and reports/paper/ live: the checkout around the package
    (an editable install reads the top-level files), else the copies a wheel carries."""
    if (REPO_ROOT / "checkpoints.yaml").is_file() and (REPO_ROOT / "tasks").is_dir():
        return REPO_ROOT
    return PACKAGE_DIR / "_bundled"


DATA_HOME = _data_home()


def _env(name: str, default: Path | str) -> str:
    """$name, where an empty value means unset (an empty SILC_BENCH_CACHE must never make
    the current folder the cache, whose `cache clear` would then delete from it)."""
    return os.environ.get(name) or str(default)


def _env_list(name: str) -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(name, "").split(os.pathsep) if p]


def cache_root() -> Path:
    return Path(_env("SILC_BENCH_CACHE", Path.home() / ".cache" / "silc-bench"))


def weights_dir() -> Path:
    return Path(_env("SILC_BENCH_WEIGHTS", Path.home() / ".cache" / "silc-bench" / "weights"))


def data_root() -> str:
    """The default of every `--data-root`."""
    return _env("SILC_BENCH_DATA", DEFAULT_DATA_ROOT)


def tasks_dir() -> Path:
    return Path(_env("SILC_BENCH_TASKS", DATA_HOME / "tasks"))


def task_roots() -> list[Path]:
    """The task folder, then your own ones in $SILC_BENCH_TASK_PATH, each laid out the same
    way (lm-eval's include_path, for tasks)."""
    return [tasks_dir(), *_env_list("SILC_BENCH_TASK_PATH")]


def user_models_file() -> Path:
    """The user's own registry (`convert --register` writes it)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "silc-bench" / "models.yaml"


def checkpoint_files() -> list[Path]:
    """The model registry, the user models file (if any), then $SILC_BENCH_CHECKPOINTS."""
    files = [DATA_HOME / "checkpoints.yaml"]
    if user_models_file().is_file():
        files.append(user_models_file())
    return files + [Path(p) for p in os.environ.get("SILC_BENCH_CHECKPOINTS", "").split(os.pathsep) if p]


def hub_cache() -> Path:
    """The Hugging Face cache folder, as huggingface_hub itself resolves it."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(_env("HF_HOME", Path.home() / ".cache" / "huggingface")) / "hub"


def open_clip_cache() -> Path:
    return Path(_env("OPEN_CLIP_CACHE", Path.home() / ".cache" / "clip"))

"""TrainConfig: one YAML file → nested frozen dataclasses, with every key and type checked.

A training run is expensive and its config is its record, so a typo must fail loudly: an
unknown key names itself and the valid keys of its section, and a value of the wrong type
names its dotted path. A file may `include:` another (a path relative to itself); the
including file's keys win, mappings merge key by key. Relative data and output paths are
taken from the current directory, as open_clip and big_vision do.

Sections (defaults in the dataclasses below):

    model:      open_clip: NAME | config: {open_clip.CLIP kwargs}; init_weights, init_variant
    data:       manifest: CSV/JSONL (image, caption) | shards: GLOB of tars; image_size;
                world_version, hard_negative_group, curriculum_steps (ShapesWorld v3)
    objective:  contrastive softmax|sigmoid, distill, head {hidden, bottleneck, out_dim},
                temperatures, centering, EMA momentum, multi-crop counts, scales and local size
    optim:      adamw lr, weight_decay, betas, eps; schedule cosine|rsqrt; warmup, cooldown,
                timescale; steps (optimizer updates)
    batch_size (per process and micro-batch), grad_accum, seed, workers, checkpoint_every,
    out_dir, device, export {name, fp16, max_file_mb}, pacl (optional, see train/pacl.py)
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from silc_bench.config import merge, read_yaml
from silc_bench.core.errors import UserError
from silc_bench.core.typed import conform


@dataclass(frozen=True)
class ModelConfig:
    """The student CLIP: an open_clip architecture name or open_clip.CLIP kwargs."""

    open_clip: str | None = None
    config: dict[str, Any] | None = None
    init_weights: str | None = None  # an open_clip state dict or bundle to start from (fine-tuning)
    init_variant: str | None = None  # for a bundle: which variant (teacher|student) to start from


@dataclass(frozen=True)
class DataConfig:
    manifest: str | None = None  # CSV or JSONL with image, caption; images relative to its folder
    shards: str | None = None  # glob of WebDataset-style tars: <key>.jpg|png + <key>.txt
    image_size: int | None = None  # None: the model's own input size (the only size supported)
    # ShapesWorld v3 training data (data/shapesworld_v3.py), all opt-in. None keeps a
    # checkpoint saved before these keys existed resumable (a missing key reads as None).
    world_version: int | None = None  # a `shapesworld:` manifest's generator: 2 (None) or 3
    hard_negative_group: int | None = None  # scenes per group in a batch (None, 1: no groups)
    curriculum_steps: int | None = None  # first steps on single-object groups only (None, 0: none)


@dataclass(frozen=True)
class HeadConfig:
    """DINO projection head (SILC supplementary §7.2)."""

    hidden: int = 2048
    bottleneck: int = 256
    out_dim: int = 65536


@dataclass(frozen=True)
class ObjectiveConfig:
    contrastive: Literal["softmax", "sigmoid"] = "softmax"
    distill: bool = True
    head: HeadConfig = field(default_factory=HeadConfig)
    student_temp: float = 0.1
    teacher_temp: float = 0.04
    teacher_temp_final: float = 0.07
    teacher_temp_warmup_steps: int = 0  # 0: the final temperature from the first step
    center_momentum: float = 0.9
    ema_momentum: float = 0.996
    n_global: int = 2
    n_local: int = 8
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    # None: image_size * 3/7 rounded to a multiple of the patch size (DINO's 96 px for 224)
    local_size: int | None = None


@dataclass(frozen=True)
class OptimConfig:
    name: Literal["adamw"] = "adamw"
    lr: float = 5e-4
    weight_decay: float = 0.2
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-6
    schedule: Literal["cosine", "rsqrt"] = "cosine"
    warmup_steps: int = 0
    cooldown_steps: int = 0
    timescale: int = 10000
    steps: int = 1000


@dataclass(frozen=True)
class ExportConfig:
    name: str | None = None  # None: the config file's stem
    fp16: bool = False  # store tensors as float16 (the loader casts back to the model's dtype)
    max_file_mb: float = 25.0


@dataclass(frozen=True)
class PACLConfig:
    """PACL: train an embedder on a frozen CLIP (see silc_bench/train/pacl.py)."""

    base_arch: str
    base_weights: str
    base_variant: str | None = None


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    batch_size: int = 32
    grad_accum: int = 1
    seed: int = 0
    workers: int = 2
    checkpoint_every: int = 1000  # 0: only at the end
    out_dir: str = "runs/silc"
    device: str = "auto"  # auto, cpu, cuda
    export: ExportConfig = field(default_factory=ExportConfig)
    pacl: PACLConfig | None = None


# ---------------------------------------------------------------- building from raw YAML


def _read_with_includes(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise UserError(f"{path}: include cycle {' -> '.join(str(p) for p in (*seen, path))}")
    raw = read_yaml(path)
    include = raw.pop("include", None)
    if include is None:
        return raw
    if not isinstance(include, str):
        raise UserError(f"{path}: include must be a path (string), found {include!r}")
    parent = _read_with_includes(path.parent / include, (*seen, path))
    return merge(parent, raw)


def config_from_dict(raw: dict[str, Any], where: str = "train config") -> TrainConfig:
    cfg = conform(TrainConfig, raw, where)
    validate(cfg, where)
    return cfg


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Read, merge includes, type-check and validate a training config file.

    `overrides` (a nested mapping, from `--set`/`--steps`/`--out`: train/overrides.py) merge
    over the file before the check, so they are read and refused as the file's own keys are.
    """
    path = Path(path)
    raw = _read_with_includes(path)
    where = str(path)
    if overrides:
        raw = merge(raw, overrides)
        where = f"{path} with the command line's overrides"
    export = raw.get("export") or {}
    if isinstance(export, dict) and export.get("name") is None:
        raw = merge(raw, {"export": {"name": path.stem}})
    return config_from_dict(raw, where)


def to_dict(cfg: TrainConfig) -> dict[str, Any]:
    """Plain JSON types (tuples as lists): what checkpoints and exports record."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def flat_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts."""
    out = []
    for k in sorted(set(a) | set(b)):
        key = f"{prefix}{k}"
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict) and k != "config":
            out += flat_diff(va, vb, key + ".")
        elif va != vb:
            out.append(key)
    return out


# ---------------------------------------------------------------- cross-field rules


def _check(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise UserError(f"{where}: {message}")


def _validate_finite(cfg: TrainConfig, where: str) -> None:
    """Every number is finite: YAML reads `.inf`, `.nan` and `1e400` as floats, and an inf
    passes a `> 0` range (`optim.lr: 1e400` trained to NaN)."""
    import math

    def walk(value: Any, key: str) -> None:
        if isinstance(value, float):
            _check(math.isfinite(value), where, f"{key} must be a finite number, found {value}")
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(v, f"{key}[{i}]")

    walk(dataclasses.asdict(cfg), "")


def validate(cfg: TrainConfig, where: str) -> None:
    """Rules that single types cannot say (ranges, exactly-one-of, pairings)."""
    _validate_finite(cfg, where)
    _validate_sources(cfg, where)
    _validate_ranges(cfg, where)
    _validate_pairings(cfg, where)
    _validate_groups(cfg, where)


def _validate_sources(cfg: TrainConfig, where: str) -> None:
    """The model and the data must each come from exactly one place."""
    m, d = cfg.model, cfg.data
    if cfg.pacl is None:
        _check(
            (m.open_clip is None) != (m.config is None),
            where,
            "model needs exactly one of 'open_clip: NAME' or 'config: {...}'",
        )
    else:
        _check(
            m == ModelConfig(),
            where,
            "with a pacl section the model is pacl.base_arch/base_weights; leave the model section out",
        )
    _check(
        (d.manifest is None) != (d.shards is None),
        where,
        "data needs exactly one of 'manifest: FILE' or 'shards: GLOB'",
    )


def _validate_ranges(cfg: TrainConfig, where: str) -> None:
    """Counts, rates, temperatures, momenta and crop scales must lie in their ranges."""
    o, opt = cfg.objective, cfg.optim
    for key, value in (
        ("batch_size", cfg.batch_size),
        ("grad_accum", cfg.grad_accum),
        ("optim.steps", opt.steps),
        ("optim.timescale", opt.timescale),
        ("objective.n_global", o.n_global),
        ("objective.head.hidden", o.head.hidden),
        ("objective.head.bottleneck", o.head.bottleneck),
        ("objective.head.out_dim", o.head.out_dim),
    ):
        _check(value >= 1, where, f"{key} must be at least 1, found {value}")
    for key, value in (
        ("workers", cfg.workers),
        ("checkpoint_every", cfg.checkpoint_every),
        ("objective.n_local", o.n_local),
        ("objective.teacher_temp_warmup_steps", o.teacher_temp_warmup_steps),
        ("optim.warmup_steps", opt.warmup_steps),
        ("optim.cooldown_steps", opt.cooldown_steps),
        ("optim.weight_decay", opt.weight_decay),
    ):
        _check(value >= 0, where, f"{key} must not be negative, found {value}")
    for key, value in (("optim.lr", opt.lr), ("export.max_file_mb", cfg.export.max_file_mb)):
        _check(value > 0, where, f"{key} must be positive, found {value}")
    for key, value in (
        ("objective.student_temp", o.student_temp),
        ("objective.teacher_temp", o.teacher_temp),
        ("objective.teacher_temp_final", o.teacher_temp_final),
    ):
        _check(value > 0, where, f"{key} must be positive, found {value}")
    for key, value in (
        ("objective.center_momentum", o.center_momentum),
        ("objective.ema_momentum", o.ema_momentum),
        ("optim.betas[0]", opt.betas[0]),
        ("optim.betas[1]", opt.betas[1]),
    ):
        _check(0 <= value <= 1, where, f"{key} must be within [0, 1], found {value}")
    for key, (lo, hi) in (
        ("objective.global_scale", o.global_scale),
        ("objective.local_scale", o.local_scale),
    ):
        _check(0 < lo <= hi <= 1, where, f"{key} must be [low, high] with 0 < low <= high <= 1")


def _validate_pairings(cfg: TrainConfig, where: str) -> None:
    """Optional and free-form fields: local crop size, distillation's views, device, export name."""
    o = cfg.objective
    if o.local_size is not None:
        _check(o.local_size >= 1, where, f"objective.local_size must be positive, found {o.local_size}")
    if o.distill and cfg.pacl is None:
        _check(
            o.n_global + o.n_local >= 2,
            where,
            "distillation needs at least two views (objective.n_global + objective.n_local >= 2)",
        )
    _check(
        cfg.device in ("auto", "cpu", "cuda") or cfg.device.startswith("cuda:"),
        where,
        f"device must be auto, cpu or cuda, found {cfg.device!r}",
    )
    name = cfg.export.name or ""
    _check(
        bool(name) and "/" not in name and "\\" not in name and not name.startswith("."),
        where,
        f"export.name must be a plain file name, found {name!r}",
    )


def _validate_groups(cfg: TrainConfig, where: str) -> None:
    """ShapesWorld v3 and grouped batches: a version that exists, groups that fill a batch."""
    d = cfg.data
    generated = (d.manifest or "").startswith("shapesworld:")
    if d.world_version is not None:
        _check(
            d.world_version in (2, 3), where, f"data.world_version must be 2 or 3, found {d.world_version}"
        )
        _check(
            generated,
            where,
            "data.world_version selects the generated ShapesWorld; it needs "
            f"data.manifest: 'shapesworld:train/manifest.csv', found {d.manifest or d.shards!r}",
        )
    v3 = generated and d.world_version == 3
    k = d.hard_negative_group
    if k is not None:
        _check(k >= 1, where, f"data.hard_negative_group must be at least 1, found {k}")
        if k > 1:
            _check(
                d.manifest is not None and (v3 or not generated),
                where,
                "data.hard_negative_group needs a manifest with a group column: ShapesWorld v3 "
                "(data.world_version: 3) or your own manifest",
            )
            _check(
                cfg.batch_size % k == 0,
                where,
                f"batch_size {cfg.batch_size} must be a multiple of data.hard_negative_group {k} "
                "(a batch is made of whole groups)",
            )
        if v3:
            from silc_bench.data.shapesworld_v3 import GROUP_SCENES

            _check(
                k <= GROUP_SCENES,
                where,
                f"data.hard_negative_group must be at most {GROUP_SCENES} for ShapesWorld v3 "
                f"(a group of single-object scenes holds each shape once), found {k}",
            )
    c = d.curriculum_steps
    if c is not None:
        _check(c >= 0, where, f"data.curriculum_steps must not be negative, found {c}")
        if c > 0:
            _check(
                d.manifest is not None and (v3 or not generated),
                where,
                "data.curriculum_steps needs a manifest with group and objects columns: "
                "ShapesWorld v3 (data.world_version: 3) or your own manifest",
            )

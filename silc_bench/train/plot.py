"""A run's training curves as one PNG, drawn from its `train_log.jsonl`.

The log is the record (one JSON line per optimizer step); the figure is for looking: each
loss term, the learning rate and, when distilling, the teacher's entropy against ln K (a
teacher near ln K is uniform and teaches nothing, the collapse DINO's centring and
sharpening prevent). Raw per-step values are drawn faintly under a running mean, since a
small batch makes single steps noisy. `silc-bench train` writes it at the end of a run;
`silc-bench train-plot RUN` draws it again (or for a run still going).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from silc_bench.core.errors import UserError
from silc_bench.train.progress import terms

LOG = "train_log.jsonl"
FIGURE = "train_curves.png"


def read_log(run: Path) -> list[dict[str, Any]]:
    """The log's records, in order; `run` is a run folder (out_dir) or its log file."""
    path = run / LOG if run.is_dir() else run
    if not path.is_file():
        raise UserError(f"{run}: no {LOG} there; give a training run's folder (its out_dir)")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise UserError(f"{path}:{n}: not a JSON line") from None
        if not (isinstance(row, dict) and isinstance(row.get("step"), int) and {"lr", "loss"} <= set(row)):
            raise UserError(f"{path}:{n}: not a training log record (needs step, lr and loss)")
        rows.append(row)
    if not rows:
        raise UserError(f"{path}: no steps logged yet")
    return rows


def _saved_config(run: Path) -> dict[str, Any]:
    """The run's resolved config.yaml, or {} (a log alone still plots, without references)."""
    try:
        cfg = yaml.safe_load((run / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def references(cfg: dict[str, Any]) -> tuple[float | None, float | None, str]:
    """(ln B, ln K, name): the softmax contrastive loss of a model that guesses (ln batch
    size; PACL's is the same InfoNCE), the uniform teacher's entropy, the export name."""
    try:
        objective = cfg.get("objective", {})
        softmax = objective.get("contrastive", "softmax") == "softmax"
        ln_b = math.log(cfg["batch_size"]) if softmax else None
        ln_k = math.log(objective["head"]["out_dim"]) if objective.get("distill") else None
        return ln_b, ln_k, str((cfg.get("export") or {}).get("name") or "")
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, None, ""


def running_mean(values: list[float], window: int) -> np.ndarray:
    """Trailing mean over up to `window` steps (shorter at the start, so no step is lost)."""
    x = np.asarray(values, dtype=float)
    csum = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(1, len(x) + 1)
    lo = np.maximum(0, idx - window)
    return (csum[idx] - csum[lo]) / (idx - lo)


def _legend_below(ax: Any) -> None:
    """Under the panel, never over a curve (the curves go anywhere in a short run)."""
    handles, _ = ax.get_legend_handles_labels()
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=min(len(handles), 2), fontsize=8, frameon=False
    )


def plot_curves(run: Path, out: Path | None = None) -> Path:
    """Write the figure (default RUN/train_curves.png) and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    run = Path(run)
    folder = run if run.is_dir() else run.parent
    rows = read_log(run)
    ln_b, ln_k, name = references(_saved_config(folder))
    steps = [r["step"] for r in rows]
    names = list(dict.fromkeys(k for r in rows for k in terms(r)))
    entropy = [r.get("teacher_entropy") for r in rows]
    has_entropy = any(isinstance(h, int | float) and math.isfinite(h) for h in entropy)
    window = max(1, len(rows) // 25)
    panels = 3 if has_entropy else 2
    fig, axes = plt.subplots(1, panels, figsize=(4.4 * panels, 3.7), squeeze=False)
    ax = axes[0][0]
    for i, term in enumerate(names):
        colour = "black" if term == "loss" else f"C{i}"
        values = [terms(r).get(term, math.nan) for r in rows]
        ax.plot(steps, values, color=colour, alpha=0.25, linewidth=0.8)
        ax.plot(steps, running_mean(values, window), color=colour, linewidth=1.6, label=term)
    if ln_b is not None and any(t in names for t in ("contrastive", "pacl")):
        ax.axhline(ln_b, color="grey", linestyle="--", linewidth=1.0, label=f"chance: ln B = {ln_b:.2f}")
    ax.set_title("loss terms" + (f" (running mean of {window})" if window > 1 else ""), fontsize=9)
    _legend_below(ax)
    ax = axes[0][1]
    ax.plot(steps, [r["lr"] for r in rows], color="C3", linewidth=1.4)
    ax.set_title("learning rate", fontsize=9)
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    if has_entropy:
        ax = axes[0][2]
        values = [h if isinstance(h, int | float) else math.nan for h in entropy]
        ax.plot(steps, values, color="C4", alpha=0.25, linewidth=0.8)
        ax.plot(steps, running_mean(values, window), color="C4", linewidth=1.6, label="teacher")
        if ln_k is not None:
            ax.axhline(ln_k, color="grey", linestyle="--", linewidth=1.0, label=f"uniform: ln K = {ln_k:.2f}")
        ax.set_title("teacher entropy (nats)", fontsize=9)
        _legend_below(ax)
    for a in axes[0]:
        a.set_xlabel("step", fontsize=8)
        a.tick_params(labelsize=8)
        a.grid(alpha=0.3, linewidth=0.5)
        a.xaxis.set_major_locator(MaxNLocator(integer=True))
    here = folder.resolve().name
    title = f"{name} ({here})" if name and name != here else here
    fig.suptitle(f"{title}: {steps[-1]} steps", fontsize=10)
    fig.tight_layout()
    path = Path(out) if out is not None else folder / FIGURE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path

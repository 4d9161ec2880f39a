"""What `silc-bench train` shows while it runs, on stderr: a bar and one line per checkpoint.

A run of the shipped tiny models takes minutes and a paper-scale one days; without a word
on screen a user cannot tell a slow run from a stuck one, nor a collapsing teacher from a
learning one. The bar (tqdm: step, steps/s, ETA) carries the step's loss terms, the
learning rate and, when distilling, the teacher's entropy against ln K: near ln K the
teacher is uniform and teaches nothing. At every checkpoint (and so at the last step) a
line that stays on screen gives the same terms averaged since the previous line.
Everything here is off with `--quiet`, and on every rank but 0 under torchrun.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

# log fields that are not loss terms
NOT_TERMS = ("step", "lr", "loss", "seconds", "teacher_temp", "teacher_entropy")


def terms(record: dict[str, Any]) -> dict[str, float]:
    """The loss terms of a log record; the total only when it is a sum of several."""
    parts = {k: float(v) for k, v in record.items() if k not in NOT_TERMS and isinstance(v, int | float)}
    if len(parts) > 1:
        return {"loss": float(record["loss"]), **parts}
    return parts or {"loss": float(record["loss"])}


def describe(record: dict[str, Any], ln_k: float | None, sep: str = " ") -> str:
    """`loss=6.012 contrastive=4.101 distill=1.911 lr=3.6e-04 H(teacher)=7.10/8.32`."""
    words = [f"{k}={v:.3f}" for k, v in terms(record).items()]
    words.append(f"lr={record['lr']:.2e}")
    entropy = record.get("teacher_entropy")
    if entropy is not None and ln_k is not None:
        words.append(f"H(teacher)={entropy:.2f}/{ln_k:.2f}")
    return sep.join(words)


def mean_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every numeric field averaged (the last step's `step` and `lr` kept as they are)."""
    out: dict[str, Any] = {}
    for k in records[-1]:
        values = [r[k] for r in records if isinstance(r.get(k), int | float)]
        out[k] = sum(values) / len(values) if values else records[-1][k]
    out["step"], out["lr"] = records[-1]["step"], records[-1]["lr"]
    return out


class TrainProgress:
    """The bar and the checkpoint lines of one run (silent when `enabled` is False)."""

    def __init__(self, total: int, start: int, enabled: bool, ln_k: float | None = None) -> None:
        self.enabled, self.total, self.ln_k = enabled, total, ln_k
        tty = sys.stderr.isatty()
        self.bar = tqdm(
            total=total,
            initial=start,
            desc="train",
            unit="step",
            disable=not enabled,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.2 if tty else 15.0,  # a log file gets a line every 15 s, not every step
            leave=True,
        )
        self.window: list[dict[str, Any]] = []
        self.window_t0 = time.perf_counter()

    def step(self, record: dict[str, Any]) -> None:
        self.window.append(record)
        self.bar.set_postfix_str(describe(record, self.ln_k), refresh=False)
        self.bar.update(1)

    def checkpoint(self, path: Path | None) -> None:
        """One line that stays: the terms averaged since the last one, speed, the checkpoint."""
        if not self.window:
            return
        seconds = time.perf_counter() - self.window_t0
        rate = len(self.window) / seconds if seconds > 0 else float("inf")
        avg = mean_record(self.window)
        where = f"  checkpoint {path}" if path is not None else ""
        terms_ = describe(avg, self.ln_k, "  ")
        self.line(f"step {avg['step']}/{self.total}  {terms_}  {rate:.2f} step/s{where}")
        self.window, self.window_t0 = [], time.perf_counter()

    def line(self, text: str) -> None:
        """A line above the bar (the bar is redrawn under it)."""
        if self.enabled:
            self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()

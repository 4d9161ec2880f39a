"""Learning-rate schedules as pure functions of the optimizer step (0-based).

Both follow big_vision's `create_learning_rate_schedule`, so a step means the same thing
as there: the warmup factor is min(1, step / warmup) (the first update of a warmed-up run
has lr 0), and the linear cooldown min(1, (total - step) / cooldown) multiplies whatever
the decay gives. The paper's fine-tuning stage is `rsqrt` with no warmup and a 50k cooldown.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from silc_bench.train.config import OptimConfig


def _ramps(step: int, total: int, warmup: int, cooldown: int) -> float:
    factor = 1.0
    if warmup:
        factor *= min(1.0, step / warmup)
    if cooldown:
        factor *= min(1.0, (total - step) / cooldown)
    return factor


def rsqrt_lr(
    step: int, base: float, total: int, warmup: int = 0, cooldown: int = 0, timescale: int = 10000
) -> float:
    """base / sqrt(1 + (step - warmup) / timescale), flat at `base` until the warmup ends."""
    decay = 1.0 / math.sqrt(1.0 + max(0, step - warmup) / timescale)
    return base * decay * _ramps(step, total, warmup, cooldown)


def cosine_lr(step: int, base: float, total: int, warmup: int = 0, cooldown: int = 0) -> float:
    """Half a cosine from `base` to 0 over the steps after the warmup."""
    span = max(1, total - warmup)
    progress = min(1.0, max(0.0, (step - warmup) / span))
    return base * 0.5 * (1.0 + math.cos(math.pi * progress)) * _ramps(step, total, warmup, cooldown)


def make_schedule(optim: OptimConfig) -> Callable[[int], float]:
    """step → learning rate for the configured schedule."""
    if optim.schedule == "rsqrt":
        return lambda s: rsqrt_lr(
            s, optim.lr, optim.steps, optim.warmup_steps, optim.cooldown_steps, optim.timescale
        )
    return lambda s: cosine_lr(s, optim.lr, optim.steps, optim.warmup_steps, optim.cooldown_steps)

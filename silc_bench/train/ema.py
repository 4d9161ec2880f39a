"""The EMA teacher update: t = m·t + (1 − m)·s, with a fixed momentum (SILC, like DINO's EMA).

SILC keeps the momentum fixed rather than DINO's cosine ramp to 1; buffers are copied, not
averaged, because they are statistics or constants rather than learned weights.
"""

from __future__ import annotations

import torch


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, momentum: float) -> None:
    """In place on `teacher`; the two modules must have the same structure."""
    t_params = dict(teacher.named_parameters())
    s_params = dict(student.named_parameters())
    if t_params.keys() != s_params.keys():
        raise ValueError("EMA teacher and student have different parameters")  # a bug, not input
    for name, t in t_params.items():
        t.mul_(momentum).add_(s_params[name].detach().to(t.dtype), alpha=1.0 - momentum)
    s_buffers = dict(student.named_buffers())
    for name, b in teacher.named_buffers():
        b.copy_(s_buffers[name])


def make_teacher(module: torch.nn.Module) -> torch.nn.Module:
    """A frozen deep copy: the teacher starts equal to the student and never gets gradients."""
    import copy

    teacher = copy.deepcopy(module)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher

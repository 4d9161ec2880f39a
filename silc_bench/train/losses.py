"""The SILC objective's terms: an image–text contrastive loss plus DINO self-distillation.

The two are summed with no weights (SILC supplementary §7.2). The contrastive term is
CLIP's softmax InfoNCE or SigLIP's pairwise sigmoid; both take L2-normalised features.
Negatives are the other pairs of the same micro-batch on the same process (no feature
gathering across processes).
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F


def symmetric_ce(logits: torch.Tensor) -> torch.Tensor:
    """InfoNCE both ways over a square (images × texts) logit matrix; pair i matches i."""
    target = torch.arange(len(logits), device=logits.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def clip_softmax_loss(image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """CLIP: symmetric cross-entropy over scale·image·textᵀ."""
    return symmetric_ce(logit_scale * image @ text.T)


def siglip_sigmoid_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, logit_bias: torch.Tensor
) -> torch.Tensor:
    """−Σ log σ(z·(scale·image·textᵀ + bias)) / N, z = +1 on the diagonal and −1 elsewhere."""
    logits = logit_scale * image @ text.T + logit_bias
    labels = 2 * torch.eye(len(image), device=image.device, dtype=logits.dtype) - 1
    return -F.logsigmoid(labels * logits).sum() / len(image)


def teacher_temperature(step: int, start: float, final: float, warmup_steps: int) -> float:
    """DINO's schedule: `linspace(start, final, warmup_steps)[step]`, then `final`.

    The linspace includes its end point, so the warmup's last step (warmup_steps − 1)
    already uses `final` (facebookresearch/dino `main_dino.py`, lightly's `DINOLoss`).
    """
    if warmup_steps <= 0 or step >= warmup_steps:
        return final
    if warmup_steps == 1:
        return start
    return start + (final - start) * step / (warmup_steps - 1)


class DINOLoss(torch.nn.Module):
    """Cross-entropy between the centred, sharpened teacher and the student, over view pairs.

    For each teacher global view i and student view v ≠ i:
    H(softmax((t_i − c) / T_t), log_softmax(s_v / T_s)), averaged over pairs and the batch.
    Student views are ordered globals first (the same crops the teacher saw), then locals,
    so "v ≠ i" skips only the identical view. The centre c is an EMA of the teacher's mean
    output (momentum `center_momentum`), updated after the loss is computed; centring with
    sharpening is what keeps the teacher from collapsing to one output.
    """

    def __init__(
        self,
        out_dim: int,
        student_temp: float = 0.1,
        teacher_temp: float = 0.04,
        teacher_temp_final: float = 0.07,
        teacher_temp_warmup_steps: int = 0,
        center_momentum: float = 0.9,
    ) -> None:
        super().__init__()
        self.student_temp = student_temp
        self.teacher_temp = teacher_temp
        self.teacher_temp_final = teacher_temp_final
        self.warmup_steps = teacher_temp_warmup_steps
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.last_teacher_entropy = math.nan

    def temperature(self, step: int) -> float:
        return teacher_temperature(step, self.teacher_temp, self.teacher_temp_final, self.warmup_steps)

    def forward(self, student: list[torch.Tensor], teacher: list[torch.Tensor], step: int) -> torch.Tensor:
        temp = self.temperature(step)
        targets = [F.softmax((t.detach() - self.center) / temp, dim=-1) for t in teacher]
        log_probs = [F.log_softmax(s / self.student_temp, dim=-1) for s in student]
        with torch.no_grad():  # the collapse watch: ln K means a uniform teacher that teaches nothing
            probs = torch.cat(targets)
            self.last_teacher_entropy = float(-(probs * probs.clamp_min(1e-30).log()).sum(-1).mean())
        total, pairs = student[0].new_zeros(()), 0
        for i, q in enumerate(targets):
            for v, lp in enumerate(log_probs):
                if v == i:
                    continue
                total = total + torch.sum(-q * lp, dim=-1).mean()
                pairs += 1
        self.update_center(teacher)
        return total / pairs

    @torch.no_grad()
    def update_center(self, teacher: list[torch.Tensor]) -> None:
        """c ← m·c + (1 − m)·mean of the teacher outputs (over all processes when distributed)."""
        out = torch.cat([t.detach() for t in teacher])
        total = out.sum(dim=0, keepdim=True)
        count = torch.tensor(float(len(out)), device=out.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(total)
            dist.all_reduce(count)
        batch_center = total / count
        # DINO's expression, two roundings: an in-place add_(alpha=) is fused (one rounding)
        # and drifts from the reference in the last bit
        m = self.center_momentum
        self.center.copy_(self.center * m + batch_center * (1 - m))

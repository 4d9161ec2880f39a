"""The SILC objective: CLIP contrastive on the first global crop + local-to-global DINO distillation.

Student: the whole open_clip CLIP plus a DINO head on its image embedding (the pooled,
projected output of `visual`); its image tower sees every crop. Teacher: an EMA copy of the
student's image tower and head; it sees the global crops only, without gradients. With
`distill: false` there is no head, no teacher and a single crop: plain CLIP training on the
same code path.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from silc_bench.train.augment import MultiCrop, default_local_size
from silc_bench.train.config import TrainConfig
from silc_bench.train.ema import ema_update, make_teacher
from silc_bench.train.heads import DINOHead
from silc_bench.train.losses import DINOLoss, clip_softmax_loss, siglip_sigmoid_loss
from silc_bench.train.model import (
    arch_entry,
    build_clip,
    image_size,
    load_init_weights,
    patch_size_of,
    tokenizer_for,
    visual_forward,
)

MAX_LOGIT_SCALE = math.log(100.0)  # open_clip's clamp


def view_major(x: torch.Tensor) -> torch.Tensor:
    """(B, V, C, H, W) → (V·B, C, H, W), so that `.chunk(V)` gives one tensor per view."""
    return x.transpose(0, 1).reshape(-1, *x.shape[2:])


class Student(torch.nn.Module):
    """What the optimizer (and DDP) sees: the CLIP and, when distilling, the DINO head."""

    def __init__(self, clip: torch.nn.Module, head: DINOHead | None) -> None:
        super().__init__()
        self.clip = clip
        self.head = head

    def forward(
        self, globals_: torch.Tensor, locals_: torch.Tensor | None, text: torch.Tensor
    ) -> dict[str, Any]:
        n = len(text)
        g = self.clip.visual(globals_)
        out: dict[str, Any] = {
            "image": g[:n],  # the first global crop
            "text": self.clip.encode_text(text),
            "logit_scale": self.clip.logit_scale.exp(),
            "logit_bias": self.clip.logit_bias,
        }
        if self.head is not None:
            feats = [g] if locals_ is None else [g, visual_forward(self.clip.visual, locals_)]
            out["views"] = list(self.head(torch.cat(feats)).split(n))
        return out


class SILCObjective:
    """Student, teacher and losses for one run; the loop sees only this small interface."""

    def __init__(self, cfg: TrainConfig, device: torch.device) -> None:
        o = cfg.objective
        self.cfg = cfg
        self.device = device
        self.sigmoid = o.contrastive == "sigmoid"
        self.arch = arch_entry(cfg.model.open_clip, cfg.model.config, self.sigmoid)
        clip = build_clip(self.arch)
        if cfg.model.init_weights:
            load_init_weights(clip, cfg.model.init_weights, cfg.model.init_variant)
        self.tokenizer = tokenizer_for(self.arch)
        self.image_size = image_size(clip)
        self.distill = o.distill
        head = None
        if self.distill:
            head = DINOHead(clip.visual.output_dim, o.head.hidden, o.head.bottleneck, o.head.out_dim)
        self.student = Student(clip, head).to(device)
        self.teacher: torch.nn.ModuleDict | None = None
        self.dino: DINOLoss | None = None
        if self.distill:
            self.teacher = make_teacher(self._student_parts()).to(device).eval()  # no dropout of any kind
            self.dino = DINOLoss(
                o.head.out_dim,
                o.student_temp,
                o.teacher_temp,
                o.teacher_temp_final,
                o.teacher_temp_warmup_steps,
                o.center_momentum,
            ).to(device)
        local = o.local_size or default_local_size(self.image_size, patch_size_of(clip.visual))
        self.crops = MultiCrop(
            image_size=self.image_size,
            local_size=local,
            n_global=o.n_global if self.distill else 1,
            n_local=o.n_local if self.distill else 0,
            global_scale=o.global_scale,
            local_scale=o.local_scale,
        )

    def _student_parts(self) -> torch.nn.ModuleDict:
        """The student's image tower and head, named as the teacher's are (for the EMA)."""
        return torch.nn.ModuleDict({"visual": self.student.clip.visual, "head": self.student.head})

    def trainable(self) -> torch.nn.Module:
        return self.student

    def loss(
        self, module: torch.nn.Module, batch: dict[str, Any], step: int
    ) -> tuple[torch.Tensor, dict[str, float]]:
        globals_ = view_major(batch["globals"]).to(self.device)
        locals_ = view_major(batch["locals"]).to(self.device) if batch["locals"].shape[1] else None
        text = self.tokenizer(list(batch["caption"])).to(self.device)
        out = module(globals_, locals_, text)
        image, txt = F.normalize(out["image"], dim=-1), F.normalize(out["text"], dim=-1)
        if self.sigmoid:
            contrastive = siglip_sigmoid_loss(image, txt, out["logit_scale"], out["logit_bias"])
        else:
            contrastive = clip_softmax_loss(image, txt, out["logit_scale"])
        parts = {"contrastive": float(contrastive.detach())}
        total = contrastive
        if self.teacher is not None and self.dino is not None:
            with torch.no_grad():
                t = self.teacher["head"](self.teacher["visual"](globals_)).split(len(text))
            distill = self.dino(out["views"], list(t), step)
            parts["distill"] = float(distill.detach())
            parts["teacher_temp"] = self.dino.temperature(step)
            parts["teacher_entropy"] = self.dino.last_teacher_entropy  # vs ln K: near it = collapsed
            total = contrastive + distill
        return total, parts

    @torch.no_grad()
    def after_update(self) -> None:
        self.student.clip.logit_scale.clamp_(0, MAX_LOGIT_SCALE)
        if self.teacher is not None:
            ema_update(self.teacher, self._student_parts(), self.cfg.objective.ema_momentum)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Training state beyond the student's weights: the teacher and the DINO centre."""
        if self.teacher is None or self.dino is None:
            return {}
        return {
            **{f"teacher.{k}": v for k, v in self.teacher.state_dict().items()},
            "dino.center": self.dino.center,
        }

    def load_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        if self.teacher is not None and self.dino is not None:
            self.teacher.load_state_dict(
                {k[len("teacher.") :]: v for k, v in sd.items() if k.startswith("teacher.")}
            )
            self.dino.center.copy_(sd["dino.center"])

    def export_tensors(self) -> dict[str, torch.Tensor]:
        """open_clip names; distilled: the towers under `teacher.`/`student.`, the rest shared."""
        clip_sd = self.student.clip.state_dict()
        if self.teacher is None:
            return dict(clip_sd)
        out = {(f"student.{k}" if k.startswith("visual.") else k): v for k, v in clip_sd.items()}
        out.update({f"teacher.visual.{k}": v for k, v in self.teacher["visual"].state_dict().items()})
        return out

    def entry(self) -> dict[str, Any]:
        """The checkpoints.yaml fields this objective decides."""
        entry: dict[str, Any] = {"arch": self.arch}
        if self.distill:
            entry.update(
                dense_mode="patch-proj", variants={"teacher": {}, "student": {}}, default_variant="teacher"
            )
        return entry

    def context_length(self) -> int:
        return int(getattr(self.tokenizer, "context_length", 77))

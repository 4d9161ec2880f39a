"""From per-query logits at the original resolution to a class map.

Three rules, chosen by the model's score type and whether the dataset's class 0 is
background (voc21, pc60, coco-object):
- cosine, no background: each class scores the max over its synonyms' cosines; argmax.
- cosine, background (SCLIP's rule): softmax over logit_scale·cos across all queries,
  max over each class's synonyms, optional area filter, argmax, and pixels whose top
  probability is under `prob_thd` go to class 0.
- cosine, background by threshold only (`background_query: false`): class 0 has no query;
  the softmax runs over the other classes' queries and pixels whose top probability is
  under `prob_thd` are background (for worlds whose captions never name a background).
- sigmoid masks (TCL): max over synonyms; for background datasets a constant
  `bg_thresh` channel is prepended as class 0; argmax.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ScoreRule:
    kind: str  # "cosine" or "sigmoid"
    query_class: tuple[int, ...]  # query index → class index (into the scored classes)
    num_classes: int  # classes in the label space (background included)
    background: bool = False
    logit_scale: float = 50.0
    prob_thd: float = 0.0
    area_thd: float | None = None
    bg_thresh: float = 0.5
    background_query: bool = True  # cosine + background: is class 0 scored by its own query?

    def _max_over_synonyms(self, q: torch.Tensor, n: int) -> torch.Tensor:
        if len(self.query_class) == n:  # no synonyms: queries are the classes, in order
            return q
        idx = torch.as_tensor(self.query_class, device=q.device)
        return torch.stack([q[idx == c].amax(dim=0) for c in range(n)])

    def predict(self, logits: torch.Tensor) -> torch.Tensor:
        """(Q, H, W) → (H, W) int64 class map in the metric's label space."""
        if self.kind == "sigmoid":
            n_scored = self.num_classes - 1 if self.background else self.num_classes
            scores = self._max_over_synonyms(logits, n_scored)
            if self.background:
                bg = scores.new_full((1, *scores.shape[1:]), self.bg_thresh)
                scores = torch.cat([bg, scores], dim=0)
            return scores.argmax(dim=0)
        if not self.background:
            return self._max_over_synonyms(logits, self.num_classes).argmax(dim=0)
        if not self.background_query:
            probs = self._max_over_synonyms((self.logit_scale * logits).softmax(dim=0), self.num_classes - 1)
            top, pred = probs.max(dim=0)
            pred = pred + 1
            pred[top < self.prob_thd] = 0
            return pred
        probs = (self.logit_scale * logits).softmax(dim=0)
        probs = self._max_over_synonyms(probs, self.num_classes)
        if self.area_thd is not None:
            pred = probs.argmax(dim=0)
            area = torch.bincount(pred.flatten(), minlength=self.num_classes).to(probs.dtype)
            keep = area[1:] > self.area_thd * area[1:].sum()
            probs = torch.cat([probs[:1], probs[1:] * keep.view(-1, 1, 1).to(probs.dtype)], dim=0)
        top, pred = probs.max(dim=0)
        pred[top < self.prob_thd] = 0
        return pred

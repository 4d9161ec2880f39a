"""DINO-style multi-crop, deterministic for a given torch.Generator.

Each image gives `n_global` crops at `image_size` (RandomResizedCrop, scale `global_scale`)
and `n_local` crops at `local_size` (scale `local_scale`), each flipped with probability
1/2, normalised with the OpenAI CLIP mean/std (the exported preprocessing).

The contrastive loss uses the student's embedding of the FIRST global crop: SILC's
image–text term is on the global view, and reusing it costs no extra forward pass. The
first global crop is drawn first from the generator, so with `distill: false` (one global
crop, no locals) the contrastive input is exactly the same image as with distillation on:
switching distillation off changes nothing else.

Local size default: image_size · 3/7 rounded to a multiple of the patch size (at least one
patch), which is DINO's 96 px for 224 px inputs with patch 16.

The crop is resampled by torchvision v2's uint8 bicubic kernel, which matches PIL's (DINO
crops PIL images; the evaluation preprocessing resizes PIL images too). The float kernel
that `transforms.functional` uses on tensors clamps only at the end and lands up to ~10
grey levels away from PIL at sharp edges. Each view equals lightly's `DINOViewTransform`
with its colour augmentations off (tests/test_train_reference.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF
from torchvision.transforms.v2 import functional as F2

from silc_bench.models.preprocess import OPENAI_MEAN, OPENAI_STD

RATIO = (3 / 4, 4 / 3)


def default_local_size(image_size: int, patch_size: int) -> int:
    return max(patch_size, round(image_size * 3 / 7 / patch_size) * patch_size)


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A generator for one sample of one epoch: the same crops whatever the worker count or rank."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=gen))


def crop_params(
    height: int, width: int, scale: tuple[float, float], gen: torch.Generator
) -> tuple[int, int, int, int]:
    """torchvision's RandomResizedCrop.get_params, drawing from `gen` instead of the global RNG."""
    area = height * width
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    for _ in range(10):
        target = area * _uniform(gen, *scale)
        aspect = math.exp(_uniform(gen, log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            i = int(torch.randint(0, height - h + 1, (), generator=gen))
            j = int(torch.randint(0, width - w + 1, (), generator=gen))
            return i, j, h, w
    ratio = width / height  # fallback: the largest centred crop within the ratio range
    if ratio < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif ratio > RATIO[1]:
        h, w = height, round(height * RATIO[1])
    else:
        w, h = width, height
    return (height - h) // 2, (width - w) // 2, h, w


@dataclass(frozen=True)
class MultiCrop:
    image_size: int
    local_size: int
    n_global: int = 2
    n_local: int = 8
    global_scale: tuple[float, float] = (0.4, 1.0)
    local_scale: tuple[float, float] = (0.05, 0.4)
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD

    def view(
        self, img: torch.Tensor, size: int, scale: tuple[float, float], gen: torch.Generator
    ) -> torch.Tensor:
        """One view of a (3, H, W) uint8 image: crop, resize, flip with p = 1/2, normalise.

        Draws from `gen` in torchvision's order (crop parameters, then the flip), so a
        generator seeded s gives the view RandomResizedCrop + RandomHorizontalFlip give
        after `torch.manual_seed(s)`.
        """
        i, j, h, w = crop_params(img.shape[-2], img.shape[-1], scale, gen)
        out = F2.resized_crop(img, i, j, h, w, [size, size], InterpolationMode.BICUBIC, antialias=True)
        if float(torch.rand((), generator=gen)) < 0.5:
            out = F2.horizontal_flip(out)
        return TF.normalize(out.float() / 255.0, self.mean, self.std)

    def __call__(
        self, image: Image.Image, gen: torch.Generator
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """(global crops, local crops), each (3, size, size) float tensors."""
        img = TF.pil_to_tensor(image.convert("RGB"))
        globals_ = [self.view(img, self.image_size, self.global_scale, gen) for _ in range(self.n_global)]
        locals_ = [self.view(img, self.local_size, self.local_scale, gen) for _ in range(self.n_local)]
        return globals_, locals_

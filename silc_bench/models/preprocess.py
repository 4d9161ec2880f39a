"""Checkpoint-owned preprocessing, as a small spec recorded in every result.

Three modes cover the paper's models and protocols:
- `shortest` (OpenAI/open_clip): resize the short side to `size`, centre-crop `size`;
- `squash` (big_vision/SigLIP): resize straight to `size`×`size`;
- `squash_crop` (big_vision's few-shot and `get_disclf` configs): squash to int(size/0.875),
  then centre-crop `size` (256 → 224).
The operation order mirrors open_clip's eval transform (resize, crop, RGB, tensor,
normalise), so that palette and greyscale images come out the same as there.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from silc_bench.core.errors import UserError

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZE_MODES = ("shortest", "squash", "squash_crop")
SQUASH_CROP_RATIO = 0.875  # big_vision's `_square875` and few-shot `resize(256)|central_crop(224)`
INTERPOLATIONS = ("bicubic", "bilinear", "nearest")  # torchvision's InterpolationMode, by name
if TYPE_CHECKING:
    from torchvision.transforms import Compose


@dataclass(frozen=True)
class Preprocess:
    size: int = 224
    resize: str = "shortest"
    interpolation: str = "bicubic"
    mean: tuple[float, ...] = OPENAI_MEAN
    std: tuple[float, ...] = OPENAI_STD

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str) -> Preprocess:
        known = {"size", "resize", "interpolation", "mean", "std"}
        unknown = set(d) - known
        if unknown:
            raise UserError(f"{where}: unknown preprocess key(s) {sorted(unknown)}; valid: {sorted(known)}")
        p = cls(**{k: tuple(v) if k in ("mean", "std") else v for k, v in d.items()})
        if p.resize not in RESIZE_MODES:
            modes = ", ".join(RESIZE_MODES)
            raise UserError(f"{where}: preprocess.resize must be one of {modes}, not {p.resize!r}")
        if p.interpolation not in INTERPOLATIONS:
            raise UserError(f"{where}: preprocess.interpolation must be one of {sorted(INTERPOLATIONS)}")
        return p

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        return d

    def transform(self) -> Compose:
        # torchvision is imported here, not at the top: it costs seconds (its ops import
        # torch._dynamo), and a run whose every feature is cached never transforms an image.
        from torchvision import transforms as T

        interp = T.InterpolationMode(self.interpolation)
        if self.resize == "shortest":
            geo = [T.Resize(self.size, interpolation=interp), T.CenterCrop(self.size)]
        elif self.resize == "squash_crop":
            big = int(self.size / SQUASH_CROP_RATIO)
            geo = [T.Resize((big, big), interpolation=interp), T.CenterCrop(self.size)]
        else:
            geo = [T.Resize((self.size, self.size), interpolation=interp)]
        return T.Compose([*geo, T.Lambda(_to_rgb), T.ToTensor(), T.Normalize(self.mean, self.std)])


def _to_rgb(img):  # noqa: ANN001 - a PIL image
    return img.convert("RGB")

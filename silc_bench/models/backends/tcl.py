"""TCL (Cha et al., CVPR 2023) segmentation inference on top of a frozen open_clip ViT.

TCL freezes CLIP and trains a small "masker" on the output of block L-2:
- a fine-tuned copy of the last block, run with MaskCLIP identity attention (every token
  attends only to itself; the residual and the MLP are kept);
- a decoder of two upsampling stages (nearest 2×, then two gated pre-activation 3×3 convs);
- a fine-tuned copy of `ln_post` and `proj`;
- a sigmoid on `w·cos + b`.

The result is a soft mask per class at 4× the patch grid. The released checkpoint holds
only the masker, so the frozen CLIP comes from open_clip (ViT-B-16-quickgelu with OpenAI
weights). Our module names are our own, and `from_authors` maps the authors' key layout
onto them.

Inference, in the order of the authors' `generate_masks`:
1. Zero-pad the image symmetrically to a multiple of the patch size.
2. Run the masker.
3. Optionally apply PAMR, at mask resolution.
4. Optionally mix in the "kp" branch: the frozen CLIP with a MaskCLIP last block, squashed
   by sigmoid((cos − 0.25)·10).
5. Upsample bilinearly to the padded size and crop the pad.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from silc_bench.core.errors import UserError
from silc_bench.models.backends.base import Encoder
from silc_bench.models.backends.open_clip import OpenCLIPViT
from silc_bench.models.pamr import pamr as pamr_refine
from silc_bench.models.vit import batch_first, embed_tokens, identity_attention, run_blocks
from silc_bench.models.weights import _short, load_into, unwrap

KP_SHIFT = 0.25
KP_SCALE = 10.0
NORMALIZE_EPS = 1e-6  # TCL's own normalize()

# The authors' prefixes → ours. `{last}` is the index of CLIP's last block: the masker's
# copy keeps its original name because slicing an nn.Sequential keeps module names.
# A key ending in "." is a prefix; any other key matches exactly. The longest match wins.
_NET = "masker.image_encoder.decoder.decoder.net"
AUTHORS_PREFIX: dict[str, str] = {
    "masker.image_encoder.backbone.transformer.resblocks.{last}.": "block.",
    **{
        f"{_NET}.{i}.{theirs}.": f"decoder.{i}.{ours}."
        for i in (0, 1)
        for theirs, ours in (("conv", "conv1"), ("conv2", "conv2"))
    },
    **{
        f"{_NET}.{i}.{theirs}.gate.gate": f"decoder.{i}.{ours}.gate"
        for i in (0, 1)
        for theirs, ours in (("conv", "conv1"), ("conv2", "conv2"))
    },
    "masker.image_encoder.decoder.image_proj.": "image_proj.",
    "masker.sim2mask.w": "mask_w",
    "masker.sim2mask.b": "mask_b",
}
# Parts of the authors' full model that a checkpoint may carry but we never load: the frozen
# CLIP towers (we take them from open_clip) and the training losses' logit scales.
AUTHORS_IGNORED = ("clip_text_encoder.", "clip_image_encoder.", "tcli_loss.", "tclf_loss.")


def key_provenance(origin: Mapping[str, str]) -> dict[str, dict[str, int]]:
    """Per file: how many keys fed the CLIP backbone, the TCL masker, or nothing (the release's
    own CLIP copy and loss parameters, which TCL's inference does not use)."""
    out: dict[str, dict[str, int]] = {}
    for key, file in origin.items():
        kind = "clip"
        if key.startswith("masker."):
            kind = "tcl_masker"
        elif key.startswith(AUTHORS_IGNORED):
            kind = "unused"
        out.setdefault(file, {}).setdefault(kind, 0)
        out[file][kind] += 1
    return out


def authors_prefix(last_block: int) -> dict[str, str]:
    """AUTHORS_PREFIX for a CLIP whose last block has index `last_block` (11 for ViT-B/16)."""
    return {k.format(last=last_block): v for k, v in AUTHORS_PREFIX.items()}


def _rename(key: str, mapping: Mapping[str, str]) -> str:
    """Apply the longest matching entry of a prefix map. A key that matches nothing is kept as it is."""
    hits = [a for a in mapping if key == a or (a.endswith(".") and key.startswith(a))]
    if not hits:
        return key
    best = max(hits, key=len)
    return mapping[best] + key[len(best) :]


def from_authors(sd: Mapping[str, torch.Tensor], last_block: int) -> dict[str, torch.Tensor]:
    """The authors' masker keys → ours. Keys it does not know pass through, so a load can report them."""
    mapping = authors_prefix(last_block)
    return {_rename(k, mapping): v for k, v in sd.items()}


def to_authors(key: str, last_block: int) -> str:
    """One of our keys → the authors' name for it, so that error messages name what the file lacks."""
    return _rename(key, {v: k for k, v in authors_prefix(last_block).items()})


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a BCHW map."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


class ConvBlock(nn.Module):
    """Pre-activation conv: tanh(gate)·conv(GELU(LN(x))).

    The gate starts at 0, so an untrained block adds nothing to the residual stream.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = LayerNorm2d(channels, eps=1e-5)
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=True)
        self.gate = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.gate) * self.conv(F.gelu(self.norm(x)))


class UpStage(nn.Module):
    """Nearest 2× upsampling, then two residual ConvBlocks."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ConvBlock(channels)
        self.conv2 = ConvBlock(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = x + self.conv1(x)
        return x + self.conv2(x)


class ImageProj(nn.Module):
    """CLIP's `ln_post` and `proj`, applied per pixel of a BCHW map: width → embed_dim."""

    def __init__(self, ln: nn.Module, proj: torch.Tensor) -> None:
        super().__init__()
        self.ln = ln
        self.proj = nn.Parameter(proj)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.ln(x.permute(0, 2, 3, 1)) @ self.proj).permute(0, 3, 1, 2)


def cosine_map(emb: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """(B, D, h, w) image embeddings and (C, D) text → (B, C, h, w) cosine similarities."""
    emb = F.normalize(emb, dim=1, eps=NORMALIZE_EPS)
    text = F.normalize(text.to(emb.dtype), dim=-1, eps=NORMALIZE_EPS)
    return torch.einsum("bdhw,cd->bchw", emb, text)


class TCLMasker(nn.Module):
    """The trained part of TCL: block L-2 tokens → (B, C, 4h, 4w) soft masks."""

    def __init__(self, clip: nn.Module, n_stages: int = 2) -> None:
        super().__init__()
        visual = clip.visual
        if getattr(visual, "proj", None) is None:
            raise ValueError("TCL needs a CLIP visual tower with a projection (`visual.proj`)")
        ref = visual.conv1.weight
        width = visual.transformer.width
        self.batch_first = batch_first(visual)
        self.block = copy.deepcopy(visual.transformer.resblocks[-1])
        self.decoder = nn.Sequential(*(UpStage(width) for _ in range(n_stages)))
        self.image_proj = ImageProj(copy.deepcopy(visual.ln_post), visual.proj.detach().clone())
        self.mask_w = nn.Parameter(torch.tensor(10.0))  # the authors' initial values
        self.mask_b = nn.Parameter(torch.tensor(-2.5))
        self.to(device=ref.device, dtype=ref.dtype)

    def embed(self, tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """(B, 1+h·w, width) block L-2 output, CLS first → (B, embed_dim, 4h, 4w) pixel embeddings."""
        x = identity_attention(self.block, tokens, self.batch_first)[:, 1:]
        b, _, c = x.shape
        x = x.transpose(1, 2).reshape(b, c, *hw)
        return self.image_proj(self.decoder(x))

    def forward(self, tokens: torch.Tensor, hw: tuple[int, int], text: torch.Tensor) -> torch.Tensor:
        """Soft masks sigmoid(w·cos + b) for (C, D) text embeddings → (B, C, 4h, 4w)."""
        return torch.sigmoid(cosine_map(self.embed(tokens, hw), text) * self.mask_w + self.mask_b)


def load_tcl_masker(
    clip: nn.Module, state_dict: Mapping[str, object], source: str = "TCL checkpoint"
) -> TCLMasker:
    """A TCLMasker for `clip` with the weights of an authors'-layout checkpoint (e.g. tcl.pth).

    The checkpoint can still be wrapped in `{"model": ...}`. Keys of the frozen CLIP and of
    the training losses are ignored. Any other mismatch raises a UserError that lists the
    missing and the unexpected keys, both under the authors' names.
    """
    masker = TCLMasker(clip)
    last = len(clip.visual.transformer.resblocks) - 1
    sd = unwrap(dict(state_dict), Path(source))
    sd = {k: v for k, v in sd.items() if not k.startswith(AUTHORS_IGNORED)}
    mapping = authors_prefix(last)
    renamed = {k: _rename(k, mapping) for k in sd}
    ours = {renamed[k]: v for k, v in sd.items()}
    own = masker.state_dict()
    missing = sorted(to_authors(k, last) for k in own if k not in ours)
    unexpected = sorted(k for k, o in renamed.items() if o not in own)
    if missing or unexpected:
        raise UserError(
            f"{source}: checkpoint does not match the TCL masker for this CLIP "
            f"(last block {last}): missing keys {_short(missing)}; "
            f"unexpected keys {_short(unexpected)}"
        )
    load_into(masker, ours, source)
    return masker.eval().requires_grad_(False)


def pad_to_multiple(images: torch.Tensor, patch: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Zero-pad (B, 3, H, W) symmetrically (the extra pixel at the bottom/right) → padded, (top, left)."""
    ph, pw = (-images.shape[-2]) % patch, (-images.shape[-1]) % patch
    top, left = ph // 2, pw // 2
    if ph or pw:
        images = F.pad(images, (left, pw - left, top, ph - top))
    return images, (top, left)


def kp_mix(mask: torch.Tensor, cos_clip: torch.Tensor, kp_w: float) -> torch.Tensor:
    """kp_w·up(sigmoid((cos − 0.25)·10)) + (1 − kp_w)·mask.

    `up` resizes bilinearly (align_corners=False) from the patch grid to the mask size.
    """
    kp = torch.sigmoid((cos_clip - KP_SHIFT) * KP_SCALE)
    kp = F.interpolate(kp, size=mask.shape[-2:], mode="bilinear", align_corners=False)
    return kp_w * kp + (1.0 - kp_w) * mask


class TCLSegmenter:
    """Frozen open_clip CLIP + TCLMasker → per-class soft masks at the input size."""

    def __init__(self, clip: nn.Module, masker: TCLMasker) -> None:
        self.visual = clip.visual
        self.masker = masker
        self.patch = int(self.visual.conv1.kernel_size[0])

    def frozen_tokens(self, images: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, 3, H, W), H and W multiples of the patch → block L-2 output (B, 1+h·w, width), (h, w)."""
        x, hw = embed_tokens(self.visual, images)
        return run_blocks(self.visual, x, stop=-1), hw

    def clip_dense(self, tokens: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        """The frozen last block as MaskCLIP, then ln_post and proj → (B, embed_dim, h, w).

        This matches `dense_features(visual, images, "maskclip")`, but it reuses the block L-2
        tokens the masker already needed, so the frozen tower runs only once.
        """
        last = self.visual.transformer.resblocks[-1]
        x = identity_attention(last, tokens, batch_first(self.visual))
        x = self.visual.ln_post(x[:, 1:]) @ self.visual.proj
        return x.transpose(1, 2).reshape(x.shape[0], -1, *hw)

    @torch.no_grad()
    def masks(
        self, images: torch.Tensor, text_emb: torch.Tensor, pamr: bool = False, kp_w: float = 0.0
    ) -> torch.Tensor:
        """(B, 3, H, W) normalised images, (C, D) text embeddings → (B, C, H, W) float32 masks in (0, 1).

        The order follows the authors: PAMR first (at mask resolution), then the kp mix.
        """
        h, w = images.shape[-2:]
        dtype = self.visual.conv1.weight.dtype
        padded, (top, left) = pad_to_multiple(images.to(dtype), self.patch)
        tokens, hw = self.frozen_tokens(padded)
        text = text_emb.to(device=padded.device, dtype=dtype)
        mask = self.masker(tokens, hw, text)
        if pamr:
            small = F.interpolate(padded, size=mask.shape[-2:], mode="bilinear", align_corners=True)
            mask = pamr_refine(small, mask)
        if kp_w:
            mask = kp_mix(mask, cosine_map(self.clip_dense(tokens, hw), text), kp_w)
        mask = F.interpolate(mask, size=padded.shape[-2:], mode="bilinear", align_corners=False)
        return mask[..., top : top + h, left : left + w].float()


class TCLBackend(OpenCLIPViT):
    """The frozen open_clip CLIP (classification, retrieval) plus the masker (`parts["tcl"]`)."""

    name = "tcl"

    score = "sigmoid"
    modes = ("tcl",)
    options = ("pamr", "tcl_ensemble")

    def window_encoder(self, text: torch.Tensor, mode: str, options: dict, autocast) -> Encoder:  # noqa: ANN001
        """Windows → (N, Q, h, w) sigmoid masks at window size; `tcl_ensemble` mixes in kp at 0.3."""
        self.check_options(options)
        seg = TCLSegmenter(self.module, self.parts["tcl"])
        text = text.to(next(self.module.parameters()).device)
        pamr, kp_w = bool(options.get("pamr")), 0.3 if options.get("tcl_ensemble") else 0.0

        def encode(windows: torch.Tensor) -> torch.Tensor:
            with autocast():
                return seg.masks(windows, text, pamr=pamr, kp_w=kp_w)

        return encode

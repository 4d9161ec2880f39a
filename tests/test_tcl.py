"""TCL inference: checkpoint mapping, the masker against a written-out reference, PAMR, kp mixing.

The tiny open_clip ViT (width 64, 2 blocks, patch 8, embed 32) stands in for ViT-B/16. Its
last block has index 1, so the authors' masker block keys read `resblocks.1.`.
"""

from __future__ import annotations

import contextlib
import functools
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F

import silc_bench.models.resolve  # noqa: F401  (registers ViT-Tiny-P8)
from silc_bench.core.errors import UserError
from silc_bench.models.backends.tcl import TCLBackend, TCLSegmenter, kp_mix, load_tcl_masker
from silc_bench.models.dense import dense_features
from silc_bench.models.pamr import pamr

WIDTH, EMBED, MLP = 64, 32, 256
BLK = "masker.image_encoder.backbone.transformer.resblocks.1."
NET = "masker.image_encoder.decoder.decoder.net."
PROJ = "masker.image_encoder.decoder.image_proj."

# Each of the authors' keys → where it must land in our masker (attribute path), written out
# independently of the module's own AUTHORS_PREFIX.
LANDING: dict[str, str] = {
    **{
        BLK + k: "block." + k
        for k in (
            "attn.in_proj_weight",
            "attn.in_proj_bias",
            "attn.out_proj.weight",
            "attn.out_proj.bias",
            "ln_1.weight",
            "ln_1.bias",
            "mlp.c_fc.weight",
            "mlp.c_fc.bias",
            "mlp.c_proj.weight",
            "mlp.c_proj.bias",
            "ln_2.weight",
            "ln_2.bias",
        )
    },
    **{
        f"{NET}{i}.{theirs}.{k}": f"decoder.{i}.{ours}.{k}"
        for i in (0, 1)
        for theirs, ours in (("conv", "conv1"), ("conv2", "conv2"))
        for k in ("norm.weight", "norm.bias", "conv.weight", "conv.bias")
    },
    **{
        f"{NET}{i}.{theirs}.gate.gate": f"decoder.{i}.{ours}.gate"
        for i in (0, 1)
        for theirs, ours in (("conv", "conv1"), ("conv2", "conv2"))
    },
    PROJ + "ln.weight": "image_proj.ln.weight",
    PROJ + "ln.bias": "image_proj.ln.bias",
    PROJ + "proj": "image_proj.proj",
    "masker.sim2mask.w": "mask_w",
    "masker.sim2mask.b": "mask_b",
}


def _shape(key: str) -> tuple[int, ...]:
    w = WIDTH
    table = {
        "attn.in_proj_weight": (3 * w, w),
        "attn.in_proj_bias": (3 * w,),
        "attn.out_proj.weight": (w, w),
        "mlp.c_fc.weight": (MLP, w),
        "mlp.c_fc.bias": (MLP,),
        "mlp.c_proj.weight": (w, MLP),
        "conv.weight": (w, w, 3, 3),
        "gate.gate": (),
        "image_proj.proj": (w, EMBED),
        "sim2mask.w": (),
        "sim2mask.b": (),
    }
    return next((s for suffix, s in table.items() if key.endswith(suffix)), (w,))


def authors_checkpoint(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random masker weights in the authors' key layout, with sensible scales."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key in LANDING:
        t = torch.randn(_shape(key), generator=g)
        if key.endswith(("norm.weight", "ln.weight", "ln_1.weight", "ln_2.weight")):
            t = 1 + 0.1 * t
        elif key.endswith("gate.gate"):
            t = 0.5 * t  # non-zero, so the decoder convs matter
        elif key.endswith(("weight", "proj")) and t.dim() >= 2:
            t = t / math.sqrt(t[0].numel())
        elif key == "masker.sim2mask.w":
            t = torch.tensor(8.0)
        elif key == "masker.sim2mask.b":
            t = torch.tensor(-2.0)
        else:
            t = 0.1 * t
        sd[key] = t
    return sd


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clip():
    torch.manual_seed(0)
    return open_clip.create_model("ViT-Tiny-P8", pretrained=None, load_weights=False).eval()


@pytest.fixture(scope="module")
def ckpt():
    return authors_checkpoint()


@pytest.fixture(scope="module")
def segmenter(clip, ckpt):
    return TCLSegmenter(clip, load_tcl_masker(clip, {"model": ckpt}))


@pytest.fixture(scope="module")
def text():
    g = torch.Generator().manual_seed(1)
    return F.normalize(torch.randn(3, EMBED, generator=g), dim=-1)


# --- (a) checkpoint round trip -----------------------------------------------------------------


def test_checkpoint_round_trip(clip, ckpt, text, tmp_path):
    path = tmp_path / "tcl.pth"
    torch.save({"model": ckpt, "step": 7}, path)
    loaded = torch.load(path, map_location="cpu", weights_only=True)
    masker = load_tcl_masker(clip, loaded)
    assert len(masker.state_dict()) == len(LANDING) == 37
    for theirs, ours in LANDING.items():
        landed = functools.reduce(getattr, ours.split("."), masker)
        assert torch.equal(landed, ckpt[theirs]), (theirs, ours)
    seg = TCLSegmenter(clip, masker)
    x = torch.randn(2, 3, 27, 35)  # not a multiple of the patch (8): padded to 32×40
    for kwargs in ({}, {"pamr": True, "kp_w": 0.3}):
        out = seg.masks(x, text, **kwargs)
        assert out.shape == (2, 3, 27, 35) and out.dtype == torch.float32
        assert (out > 0).all() and (out < 1).all()


def test_padding_is_symmetric_and_cropped(segmenter, text):
    x = torch.randn(1, 3, 27, 35)
    # 5 rows and 5 columns of padding: 2 before, 3 after.
    ref = segmenter.masks(F.pad(x, (2, 3, 2, 3)), text, pamr=True, kp_w=0.3)[..., 2:29, 2:37]
    assert torch.allclose(segmenter.masks(x, text, pamr=True, kp_w=0.3), ref, atol=1e-6)


def test_clip_keys_and_loss_scales_are_ignored(clip, ckpt):
    extra = {
        "clip_image_encoder.clip_proj.proj": torch.zeros(WIDTH, EMBED),
        "clip_text_encoder.ln_final.weight": torch.zeros(EMBED),
        "tcli_loss.logit_scale": torch.tensor(1.0),
    }
    load_tcl_masker(clip, {"model": {**ckpt, **extra}})


def test_missing_and_unexpected_keys_are_named(clip, ckpt):
    bad = {k: v for k, v in ckpt.items() if k != NET + "1.conv2.gate.gate"}
    bad["masker.extra.weight"] = torch.zeros(3)
    with pytest.raises(UserError) as e:
        load_tcl_masker(clip, {"model": bad})
    assert NET + "1.conv2.gate.gate" in str(e.value)
    assert "masker.extra.weight" in str(e.value)


def test_tcl_backend_window_encoder_wraps_the_segmenter(clip, segmenter, text):
    backend = TCLBackend(clip, {"tcl": segmenter.masker})
    x = torch.randn(2, 3, 24, 32)
    out = backend.window_encoder(text, "tcl", {"pamr": True, "tcl_ensemble": True}, contextlib.nullcontext)(x)
    assert torch.equal(out, segmenter.masks(x, text, pamr=True, kp_w=0.3))


# --- (b) the masker against a written-out reference ----------------------------------------------


def _ln(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dim: int) -> torch.Tensor:
    mu = x.mean(dim, keepdim=True)
    var = ((x - mu) ** 2).mean(dim, keepdim=True)
    return (x - mu) / torch.sqrt(var + 1e-5) * w + b


def reference_masks(
    sd: dict[str, torch.Tensor], tokens: torch.Tensor, hw: tuple[int, int], text: torch.Tensor
) -> torch.Tensor:
    """TCL's masker from the authors' tensors, op by op (the tiny ViT's MLP uses exact GELU)."""
    w = WIDTH
    x = tokens
    y = _ln(x, sd[BLK + "ln_1.weight"], sd[BLK + "ln_1.bias"], -1)
    v = y @ sd[BLK + "attn.in_proj_weight"][2 * w :].T + sd[BLK + "attn.in_proj_bias"][2 * w :]
    x = x + v @ sd[BLK + "attn.out_proj.weight"].T + sd[BLK + "attn.out_proj.bias"]  # attention = identity
    y = _ln(x, sd[BLK + "ln_2.weight"], sd[BLK + "ln_2.bias"], -1)
    hidden = y @ sd[BLK + "mlp.c_fc.weight"].T + sd[BLK + "mlp.c_fc.bias"]
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
    x = x + hidden @ sd[BLK + "mlp.c_proj.weight"].T + sd[BLK + "mlp.c_proj.bias"]
    x = x[:, 1:].permute(0, 2, 1).reshape(x.shape[0], w, *hw)
    col = lambda t: t[None, :, None, None]  # noqa: E731
    for i in (0, 1):
        x = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        for c in ("conv", "conv2"):
            p = f"{NET}{i}.{c}."
            y = _ln(x, col(sd[p + "norm.weight"]), col(sd[p + "norm.bias"]), 1)
            y = 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))
            x = x + torch.tanh(sd[p + "gate.gate"]) * F.conv2d(
                y, sd[p + "conv.weight"], sd[p + "conv.bias"], padding=1
            )
    e = _ln(x.permute(0, 2, 3, 1), sd[PROJ + "ln.weight"], sd[PROJ + "ln.bias"], -1) @ sd[PROJ + "proj"]
    e = e / e.norm(dim=-1, keepdim=True)
    t = text / text.norm(dim=-1, keepdim=True)
    cos = (e[:, :, :, None, :] * t).sum(-1).permute(0, 3, 1, 2)
    return torch.sigmoid(sd["masker.sim2mask.w"] * cos + sd["masker.sim2mask.b"])


def test_masker_matches_reference(segmenter, ckpt, text):
    torch.manual_seed(2)
    tokens = torch.randn(2, 1 + 4 * 5, WIDTH)
    out = segmenter.masker(tokens, (4, 5), text)
    assert out.shape == (2, 3, 16, 20)
    assert torch.allclose(out, reference_masks(ckpt, tokens, (4, 5), text), atol=1e-5)


def test_frozen_prefix_and_kp_features(clip, segmenter):
    visual = clip.visual
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        t = visual._embeds(x)  # open_clip's own embedding at the native size
        ref = visual.transformer.resblocks[0](t)
        tokens, hw = segmenter.frozen_tokens(x)
        assert hw == (4, 4) and torch.allclose(tokens, ref, atol=1e-5)
        x = torch.randn(1, 3, 40, 48)  # resized position embeddings
        tokens, hw = segmenter.frozen_tokens(x)
        kp = segmenter.clip_dense(tokens, hw)
    assert torch.allclose(kp, dense_features(visual, x, "maskclip"), atol=1e-5)


def test_masks_pipeline_order(segmenter, text):
    """Pad → masker → PAMR on the padded image at mask size → kp mix → upsample → crop."""
    x = torch.randn(1, 3, 30, 37)  # pads 2 rows (1+1) and 3 columns (1+2)
    padded = F.pad(x, (1, 2, 1, 1))
    with torch.no_grad():
        tokens, hw = segmenter.frozen_tokens(padded)
        mask = segmenter.masker(tokens, hw, text)
        mask = pamr(F.interpolate(padded, size=mask.shape[-2:], mode="bilinear", align_corners=True), mask)
        e = F.normalize(dense_features(segmenter.visual, padded, "maskclip"), dim=1)
        cos = torch.einsum("bdhw,cd->bchw", e, text)
        kp = F.interpolate(torch.sigmoid((cos - 0.25) * 10), size=mask.shape[-2:], mode="bilinear")
        mask = 0.3 * kp + 0.7 * mask
        ref = F.interpolate(mask, size=(32, 40), mode="bilinear")[..., 1:31, 1:38]
    assert torch.allclose(segmenter.masks(x, text, pamr=True, kp_w=0.3), ref, atol=1e-5)


# --- (c) PAMR -----------------------------------------------------------------------------------


def test_pamr_two_colour_regions():
    g = torch.Generator().manual_seed(3)
    image = torch.zeros(1, 3, 16, 16)
    image[..., 8:] = 1.0  # left black, right white
    fg = torch.full((16, 16), 0.8)
    fg[:, 8:] = 0.2
    fg = fg + 0.3 * (torch.rand(16, 16, generator=g) - 0.5)
    mask = torch.stack([fg, 1 - fg])[None]
    out = pamr(image, mask)
    for c in range(2):
        for cols in (slice(0, 8), slice(8, 16)):
            before, after = mask[0, c, :, cols], out[0, c, :, cols]
            assert after.std() < 0.2 * before.std()  # more consistent inside the region
            # No leak: every value stays inside the range of its own region's values.
            assert after.min() >= before.min() - 1e-4 and after.max() <= before.max() + 1e-4
    assert torch.allclose(out.sum(1), torch.ones(1, 16, 16), atol=1e-5)  # convex: sums are kept


def test_pamr_constant_image_keeps_constant_mask():
    image = torch.full((2, 3, 12, 10), 0.3)
    mask = torch.full((2, 4, 12, 10), 0.6)
    assert torch.allclose(pamr(image, mask), mask, atol=1e-6)
    half = pamr(image.half(), mask.half())  # the 1e-8 guard must not underflow to 0/0
    assert half.dtype == torch.float16 and torch.allclose(half.float(), mask, atol=1e-3)


def test_pamr_resizes_the_mask_first():
    g = torch.Generator().manual_seed(4)
    image, small = torch.rand(1, 3, 12, 12, generator=g), torch.rand(1, 2, 6, 6, generator=g)
    big = F.interpolate(small, size=(12, 12), mode="bilinear", align_corners=True)
    assert torch.allclose(pamr(image, small, iterations=2), pamr(image, big, iterations=2))


def slow_pamr(
    image: torch.Tensor, mask: torch.Tensor, iterations: int, dilations: tuple[int, ...]
) -> torch.Tensor:
    """PAMR pixel by pixel with clamped coordinates: (3, H, W), (C, H, W) → (C, H, W)."""
    k, h, w = image.shape
    at = lambda t, i, j: t[..., min(max(i, 0), h - 1), min(max(j, 0), w - 1)]  # noqa: E731
    ring = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    weights = {}
    for i in range(h):
        for j in range(w):
            stds = []
            for c in range(k):
                s = [
                    at(image[c], i + dy * d, j + dx * d).item()
                    for d in dilations
                    for dy in (-1, 0, 1)
                    for dx in (-1, 0, 1)
                ]
                mean = sum(s) / len(s)
                stds.append(math.sqrt(sum((v - mean) ** 2 for v in s) / (len(s) - 1)))
            cells, aff = [], []
            for d in dilations:
                for dy, dx in ring:
                    cells.append((i + dy * d, j + dx * d))
                    aff.append(
                        sum(
                            -abs(image[c, i, j].item() - at(image[c], i + dy * d, j + dx * d).item())
                            / (1e-8 + 0.1 * stds[c])
                            for c in range(k)
                        )
                        / k
                    )
            top = max(aff)
            z = sum(math.exp(a - top) for a in aff)
            weights[i, j] = [(cell, math.exp(a - top) / z) for cell, a in zip(cells, aff, strict=True)]
    for _ in range(iterations):
        new = torch.zeros_like(mask)
        for (i, j), ws in weights.items():
            for (ni, nj), wt in ws:
                new[:, i, j] += wt * at(mask, ni, nj)
        mask = new
    return mask


@pytest.mark.parametrize("iterations,dilations", [(1, (1,)), (2, (1, 2)), (3, (1, 2, 4))])
def test_pamr_matches_pixel_loop(iterations, dilations):
    g = torch.Generator().manual_seed(5)
    image = torch.rand(1, 3, 5, 5, generator=g, dtype=torch.float64)
    mask = torch.rand(1, 2, 5, 5, generator=g, dtype=torch.float64)
    out = pamr(image, mask, iterations=iterations, dilations=dilations)
    assert torch.allclose(out[0], slow_pamr(image[0], mask[0], iterations, dilations), atol=1e-12)


# --- (d) kp mixing ------------------------------------------------------------------------------


def test_kp_mix_by_hand():
    s1 = 1 / (1 + math.exp(-1.0))  # sigmoid((0.35 - 0.25) * 10)
    cos = torch.tensor([[[[0.25, 0.35]]]])  # (1, 1, 1, 2): kp = [0.5, s1]
    mask = torch.full((1, 1, 1, 4), 0.2)
    # 2 → 4 columns, align_corners=False: sources -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
    kp = [0.5, 0.75 * 0.5 + 0.25 * s1, 0.25 * 0.5 + 0.75 * s1, s1]
    expected = torch.tensor([[[[0.3 * v + 0.7 * 0.2 for v in kp]]]])
    assert torch.allclose(kp_mix(mask, cos, 0.3), expected, atol=1e-6)
    assert torch.allclose(kp_mix(mask, cos, 0.0), mask)

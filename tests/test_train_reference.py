"""The DINO pieces of the training stack against lightly, a maintained reference (test oracle).

lightly's `DINOLoss`, `DINOProjectionHead`, `update_momentum`, `cosine_schedule` and
`DINOViewTransform` see the same inputs as ours: the loss agrees to 1e-6, the centre and the
EMA teacher bit for bit, the views bit for bit. Where the conventions differ, the test maps
one onto the other explicitly:

- **Argument order and shapes.** lightly's loss takes `(teacher, student)` and keeps its
  centre as (1, 1, K); ours takes `(student, teacher, step)` and keeps (1, K). Both skip
  only the pair (teacher view i, student view i), so student views are globals first in
  both. The loss sums over view pairs in a different order, hence 1e-6 and not exact.
- **Teacher temperature.** lightly indexes `linspace(start, final, warmup)` by epoch; ours
  is the same linspace indexed by optimizer step (SILC trains in steps, not epochs), in
  float64 where lightly's table is float32.
- **Distributed centre.** lightly averages the per-process means; ours (like DINO's
  original) divides the summed outputs by the summed count: the same for equal shares, and
  still right for unequal ones. Single-process, both are `mean`, bit for bit.
- **Head layout.** The same layers (Linear-GELU-Linear-GELU-Linear, L2 norm, weight-normed
  Linear without bias, norm fixed at 1) under other names: lightly `layers.{0,2,4}` are our
  `mlp.{0,2,4}`; lightly's fixed gain is a frozen Parameter, ours a buffer (no optimizer can
  move it). lightly's weight norm computes v·(g/‖v‖), ours g·(v/‖v‖): equal to rounding.
- **EMA momentum.** lightly's `update_momentum(model, ema, m)` is ours with a fixed `m`:
  SILC keeps the momentum fixed where DINO ramps it with `cosine_schedule` to 1. lightly
  averages parameters only; ours also copies buffers (equal here: the fixed gain).
- **Cosine schedule.** lightly reaches `end` at step max_steps − 1; big_vision (which our
  learning rate follows) reaches 0 at step `total`, one past the last update. So
  `cosine_lr(warmup + k, base, total, warmup) == cosine_schedule(k, total − warmup + 1, base, 0)`.
- **Views.** Without colour augmentations, a lightly view is RandomResizedCrop (bicubic)
  then a horizontal flip, drawn from the global RNG; ours draws the same numbers in the
  same order from a per-sample generator, so one seeded view equals the other. lightly's
  default is 6 local crops, DINO's `main_dino.py` (and ours) 8.

Two discrepancies in our code showed up and were fixed there: the temperature warmup ended
one step late (step/warmup instead of DINO's linspace step/(warmup − 1)), and the centre
used a fused multiply-add (`add_(alpha=)`), one rounding off DINO's `c·m + b·(1 − m)`.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from silc_bench.models.preprocess import OPENAI_MEAN, OPENAI_STD
from silc_bench.train.augment import MultiCrop, sample_generator
from silc_bench.train.config import config_from_dict
from silc_bench.train.ema import ema_update
from silc_bench.train.heads import DINOHead
from silc_bench.train.losses import DINOLoss, teacher_temperature
from silc_bench.train.schedules import cosine_lr

lightly_loss = pytest.importorskip("lightly.loss")
lightly_heads = pytest.importorskip("lightly.models.modules")
lightly_utils = pytest.importorskip("lightly.models.utils")
lightly_scheduler = pytest.importorskip("lightly.utils.scheduler")
lightly_dino = pytest.importorskip("lightly.transforms.dino_transform")

# lightly's GaussianBlur (off here) still turns a tensor into PIL and back with the deprecated
# `to_tensor`: uint8 / 255, as ours divides
pytestmark = pytest.mark.filterwarnings("ignore:The function `to_tensor")

K, B = 256, 8


def _ref_loss(out_dim: int, start: float, final: float, warmup: int) -> torch.nn.Module:
    return lightly_loss.DINOLoss(
        out_dim,
        warmup_teacher_temp=start,
        teacher_temp=final,
        warmup_teacher_temp_epochs=warmup,
        student_temp=0.1,
        center_momentum=0.9,
    )


def _ref_head(ours: DINOHead, in_dim: int, hidden: int, bottleneck: int, out_dim: int) -> torch.nn.Module:
    """lightly's head carrying our weights (`mlp.` → `layers.`; the fixed gain as is)."""
    ref = lightly_heads.DINOProjectionHead(in_dim, hidden, bottleneck, out_dim)
    mapped = {k.replace("mlp.", "layers.", 1): v for k, v in ours.state_dict().items()}
    missing, unexpected = ref.load_state_dict(mapped, strict=True)
    assert not missing and not unexpected
    return ref


def _outputs(gen: torch.Generator, views: int, dtype: torch.dtype) -> list[torch.Tensor]:
    """Head-like outputs: cosines in [-1, 1], as the unit-norm last layer gives."""
    return [torch.rand(B, K, generator=gen, dtype=dtype) * 2 - 1 for _ in range(views)]


# ---------------------------------------------------------------- loss, centre, temperature


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dino_loss_and_centre_equal_lightly_over_a_warmup(dtype):
    warmup = 5
    ours = DINOLoss(K, 0.1, 0.04, 0.07, warmup, 0.9).to(dtype)
    ref = _ref_loss(K, 0.04, 0.07, warmup).to(dtype)
    gen = torch.Generator().manual_seed(0)
    for step in range(warmup + 3):  # through the warmup and past it
        teacher, student = _outputs(gen, 2, dtype), _outputs(gen, 2 + 4, dtype)
        got = ours(student, teacher, step)
        want = ref(teacher, student, epoch=step)  # lightly's own schedule, indexed by step
        assert float(got) == pytest.approx(float(want), abs=1e-6, rel=1e-6 if dtype == torch.float32 else 0)
        assert torch.equal(ours.center, ref.center.reshape(1, K))  # the centre bit for bit


def test_teacher_temperature_is_lightlys_linspace():
    for warmup in (1, 2, 5, 200):
        table = _ref_loss(4, 0.04, 0.07, warmup).teacher_temp_schedule.tolist()
        ours = [teacher_temperature(s, 0.04, 0.07, warmup) for s in range(warmup + 2)]
        assert ours[:warmup] == pytest.approx(table, rel=1e-6)  # lightly's table is float32
        assert ours[warmup - 1] == pytest.approx(0.07 if warmup > 1 else 0.04)
        assert ours[warmup:] == [0.07, 0.07]


# ---------------------------------------------------------------- the projection head


def test_projection_head_equals_lightlys_with_mapped_weights():
    dims = dict(in_dim=24, hidden=32, bottleneck=16, out_dim=K)
    torch.manual_seed(0)
    ours = DINOHead(**dims)
    ref = _ref_head(ours, 24, 32, 16, K)
    assert not ref.last_layer.weight_g.requires_grad  # the fixed norm: frozen there, a buffer here
    assert "last_layer.weight_g" not in dict(ours.named_parameters())
    x = torch.randn(B, 24, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ours(x), ref(x), atol=1e-6, rtol=0)
    # the two together, head → loss, through one training-like step each
    loss_o, loss_r = DINOLoss(K, 0.1, 0.04, 0.07, 0, 0.9), _ref_loss(K, 0.04, 0.07, 0)
    with torch.no_grad():
        views = [x, x.flip(0), x * 0.5]
        got = loss_o([ours(v) for v in views], [ours(v) for v in views[:2]], 0)
        want = loss_r([ref(v) for v in views[:2]], [ref(v) for v in views], teacher_temp=0.07)
    assert float(got) == pytest.approx(float(want), abs=1e-6)


# ---------------------------------------------------------------- the EMA teacher


def test_ema_of_the_silc_teacher_equals_lightlys_update_momentum(tmp_path):
    from silc_bench.train.silc import SILCObjective

    raw = {
        "model": {"config": {
            "embed_dim": 16,
            "vision_cfg": {"image_size": 16, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
            "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
        }},
        "data": {"manifest": str(tmp_path / "unused.csv")},
        "objective": {"head": {"hidden": 16, "bottleneck": 8, "out_dim": 32}, "ema_momentum": 0.99},
        "out_dir": str(tmp_path), "export": {"name": "x"},
    }  # fmt: skip
    objective = SILCObjective(config_from_dict(raw), torch.device("cpu"))
    student = objective._student_parts()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):  # the student moves, both teachers follow it
        with torch.no_grad():
            for p in student.parameters():
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)
        ref = copy.deepcopy(objective.teacher)
        lightly_utils.update_momentum(student, ref, m=0.99)
        objective.after_update()
        for (name, a), b in zip(objective.teacher.state_dict().items(), ref.state_dict().values()):
            assert torch.equal(a, b), name


def test_ema_update_equals_update_momentum_on_plain_modules():
    torch.manual_seed(0)
    student = torch.nn.Sequential(torch.nn.Linear(33, 17), torch.nn.LayerNorm(17))
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(torch.randn_like(p))
    ref = copy.deepcopy(teacher)
    for m in (0.996, 0.9, 0.0, 1.0):
        ema_update(teacher, student, m)
        lightly_utils.update_momentum(student, ref, m)
        assert all(torch.equal(a, b) for a, b in zip(teacher.parameters(), ref.parameters()))


# ---------------------------------------------------------------- schedules


def test_cosine_lr_is_lightlys_cosine_schedule_one_step_longer():
    for base, total, warmup in ((1e-3, 600, 50), (2.0, 110, 10), (5e-4, 1000, 0)):
        for k in range(0, total - warmup, 7):
            want = lightly_scheduler.cosine_schedule(k, total - warmup + 1, base, 0.0)
            assert cosine_lr(warmup + k, base, total, warmup) == pytest.approx(want, rel=1e-12, abs=1e-15)


# ---------------------------------------------------------------- multi-crop views


def _image(seed: int, h: int = 48, w: int = 40) -> torch.Tensor:
    """Sharp-edged blocks of colour (like ShapesWorld) as a (3, H, W) uint8 tensor."""
    rng = np.random.default_rng(seed)
    img = np.repeat(np.repeat(rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8), 8, 0), 8, 1)
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def _ref_view(size: int, scale: tuple[float, float]):  # noqa: ANN202
    """lightly's DINO view with every colour augmentation off: crop, flip, normalise."""
    return lightly_dino.DINOViewTransform(
        crop_size=size, crop_scale=scale, hf_prob=0.5, cj_prob=0.0, random_gray_scale=0.0,
        gaussian_blur=0.0, solarization_prob=0.0,
        normalize={"mean": list(OPENAI_MEAN), "std": list(OPENAI_STD)},
    )  # fmt: skip


def test_each_view_equals_lightlys_dino_view():
    crops = MultiCrop(image_size=32, local_size=16)
    for size, scale in ((32, crops.global_scale), (16, crops.local_scale)):
        ref = _ref_view(size, scale)
        for seed in range(40):
            img = _image(seed)
            torch.manual_seed(seed)
            want = ref(img)
            got = crops.view(img, size, scale, torch.Generator().manual_seed(seed))
            assert torch.equal(got, want), (size, seed)


def test_views_are_dinos_layout():
    """Globals first (the student's views the teacher also sees), then locals; DINO's scales."""
    ref = lightly_dino.DINOTransform(global_crop_size=32, local_crop_size=16, n_local_views=8)
    crops = MultiCrop(image_size=32, local_size=16)
    globals_, locals_ = crops(_pil(_image(0)), sample_generator(0, 0, 0))
    # a PIL image, as lightly's transforms expect: its solarize (applied at random) is PIL's
    # and fails on a tensor, so a tensor input failed now and then
    ref_views = ref(_pil(_image(0)))
    assert [tuple(v.shape) for v in globals_ + locals_] == [tuple(v.shape) for v in ref_views]
    first = ref.transforms[0].transform.transforms[0]
    local = ref.transforms[2].transform.transforms[0]
    assert (crops.global_scale, crops.local_scale) == (tuple(first.scale), tuple(local.scale))


def _pil(img: torch.Tensor):  # noqa: ANN202
    from PIL import Image

    return Image.fromarray(img.permute(1, 2, 0).numpy())

"""The training stack's pieces on hand-made inputs: losses, head, EMA, schedules, crops, config, data."""

from __future__ import annotations

import io
import math
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from silc_bench.core.errors import UserError
from silc_bench.train.augment import MultiCrop, default_local_size, sample_generator
from silc_bench.train.config import load_config
from silc_bench.train.data import index_shards, read_manifest
from silc_bench.train.ema import ema_update, make_teacher
from silc_bench.train.export import plan_files, read_record, write_bundle
from silc_bench.train.heads import DINOHead
from silc_bench.train.losses import DINOLoss, clip_softmax_loss, siglip_sigmoid_loss, teacher_temperature
from silc_bench.train.schedules import cosine_lr, rsqrt_lr

REPO = Path(__file__).resolve().parent.parent


pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- DINO loss


def _softmax(xs: list[float]) -> list[float]:
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    return [v / sum(e) for v in e]


def _ce(target: list[float], logits: list[float]) -> float:
    logp = [math.log(p) for p in _softmax(logits)]
    return -sum(q * lp for q, lp in zip(target, logp))


def test_dino_cross_entropy_with_centering_by_hand():
    # batch 2, K = 3; one teacher global view, the student's global + one local view
    t = [[1.0, 0.0, -1.0], [0.5, 0.2, 0.1]]
    s_global = [[0.3, 0.1, 0.0], [0.0, 0.0, 0.0]]
    s_local = [[0.2, -0.4, 0.9], [1.0, 0.5, -0.5]]
    c = [0.2, -0.1, 0.0]
    loss_fn = DINOLoss(3, student_temp=0.1, teacher_temp=0.04, teacher_temp_final=0.04, center_momentum=0.9)
    loss_fn.center.copy_(torch.tensor([c]))
    got = loss_fn([torch.tensor(s_global), torch.tensor(s_local)], [torch.tensor(t)], step=0)
    # the identical view (teacher 0 vs student 0) is skipped: only (teacher 0, student local)
    want = 0.0
    for b in range(2):
        q = _softmax([(t[b][k] - c[k]) / 0.04 for k in range(3)])
        want += _ce(q, [v / 0.1 for v in s_local[b]]) / 2
    assert float(got) == pytest.approx(want, rel=1e-5)
    # the centre moved after the loss: c <- 0.9 c + 0.1 mean_b(t)
    mean = [(t[0][k] + t[1][k]) / 2 for k in range(3)]
    assert loss_fn.center[0].tolist() == pytest.approx(
        [0.9 * c[k] + 0.1 * mean[k] for k in range(3)], rel=1e-6
    )


def test_dino_pairs_skip_identical_views_only():
    torch.manual_seed(0)
    t = [torch.randn(4, 5) for _ in range(2)]
    s = [torch.randn(4, 5) for _ in range(3)]  # 2 globals + 1 local
    loss_fn = DINOLoss(5, teacher_temp=0.05, teacher_temp_final=0.05)
    got = loss_fn(s, t, step=0)
    pairs = [(0, 1), (0, 2), (1, 0), (1, 2)]
    want = sum(
        torch.sum(-torch.softmax(t[i] / 0.05, -1) * torch.log_softmax(s[v] / 0.1, -1), -1).mean()
        for i, v in pairs
    ) / len(pairs)
    assert torch.allclose(got, want)


def test_distillation_can_teach_below_ln_k():
    """The silent failure to guard against: a teacher so flat that the loss sits at ln K.

    With the norm fixed at 1, a random teacher head on distinct inputs is sharp after
    centring, and a student head (another init) learns to match it far below ln K.
    """
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    teacher, student = DINOHead(8, 32, 8, 64), DINOHead(8, 32, 8, 64)
    loss_fn = DINOLoss(64, teacher_temp=0.04, teacher_temp_final=0.04)
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for step in range(150):
        with torch.no_grad():
            t = teacher(x)
        s = student(x)
        loss = loss_fn([s, s], [t], step)  # pair (teacher 0, student 1) only
        opt.zero_grad()
        loss.backward()
        opt.step()
    entropy = loss_fn.last_teacher_entropy
    assert entropy < 0.5 * math.log(64)
    assert float(loss.detach()) < entropy + 0.1  # the student matches the teacher (KL near 0)


def test_teacher_temperature_warmup():
    assert teacher_temperature(0, 0.04, 0.07, 10) == pytest.approx(0.04)
    assert teacher_temperature(3, 0.04, 0.07, 10) == pytest.approx(0.05)  # DINO's linspace: 0.03 · 3/9
    assert teacher_temperature(9, 0.04, 0.07, 10) == pytest.approx(0.07)  # the warmup's last step
    assert teacher_temperature(10, 0.04, 0.07, 10) == pytest.approx(0.07)
    assert teacher_temperature(0, 0.04, 0.07, 1) == pytest.approx(0.04)
    assert teacher_temperature(1000, 0.04, 0.07, 10) == pytest.approx(0.07)
    assert teacher_temperature(0, 0.04, 0.07, 0) == pytest.approx(0.07)  # no warmup: final at once


# ---------------------------------------------------------------- contrastive losses


def test_softmax_clip_loss_by_hand():
    img = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    txt = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    scale = torch.tensor(2.0)
    sim = [[0.0, 1.0], [0.8, 0.6]]  # img @ txt.T
    rows = sum(_ce([1.0 if j == i else 0.0 for j in range(2)], [2 * v for v in sim[i]]) for i in range(2)) / 2
    cols = (
        sum(
            _ce([1.0 if j == i else 0.0 for j in range(2)], [2 * sim[j][i] for j in range(2)])
            for i in range(2)
        )
        / 2
    )
    assert float(clip_softmax_loss(img, txt, scale)) == pytest.approx((rows + cols) / 2, rel=1e-6)


def test_sigmoid_loss_by_hand():
    img = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    txt = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    scale, bias = torch.tensor(10.0), torch.tensor(-5.0)
    sim = [[1.0, 0.6], [0.0, 0.8]]
    want = 0.0
    for i in range(2):
        for j in range(2):
            z = 1.0 if i == j else -1.0
            want -= math.log(1 / (1 + math.exp(-z * (10 * sim[i][j] - 5))))
    assert float(siglip_sigmoid_loss(img, txt, scale, bias)) == pytest.approx(want / 2, rel=1e-6)


# ---------------------------------------------------------------- head, EMA


def test_head_last_layer_has_unit_norm_and_cosine_outputs():
    head = DINOHead(8, hidden=16, bottleneck=4, out_dim=32)
    last = head.last_layer
    assert torch.equal(last.weight_g, torch.ones(32, 1))
    assert "last_layer.weight_g" not in dict(head.named_parameters())  # nothing can learn the norm
    opt = torch.optim.AdamW(head.parameters(), lr=0.5, weight_decay=0.5)
    for _ in range(3):  # large steps with decay: the norm stays 1
        opt.zero_grad()
        head(torch.randn(6, 8) * 100).pow(2).sum().backward()
        opt.step()
    assert torch.allclose(last.weight().norm(dim=1), torch.ones(32), atol=1e-6)
    out = head(torch.randn(64, 8) * 1000)
    assert out.shape == (64, 32)
    assert out.abs().max() <= 1 + 1e-6


def test_ema_update_values_and_buffers():
    student = torch.nn.BatchNorm1d(2)
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters())
    with torch.no_grad():
        teacher.weight.fill_(1.0)
        student.weight.fill_(3.0)
        student.bias.fill_(-1.0)
        teacher.bias.fill_(1.0)
        student.running_mean.fill_(7.0)
    ema_update(teacher, student, 0.9)
    assert teacher.weight.tolist() == pytest.approx([1.2, 1.2])  # 0.9·1 + 0.1·3
    assert teacher.bias.tolist() == pytest.approx([0.8, 0.8])  # 0.9·1 + 0.1·(−1)
    assert teacher.running_mean.tolist() == [7.0, 7.0]  # buffers are copied
    assert student.weight.tolist() == [3.0, 3.0]


# ---------------------------------------------------------------- schedules


def test_rsqrt_schedule_values():
    # the paper's fine-tuning: no warmup, 50k cooldown
    kw = dict(base=1e-4, total=100_000, warmup=0, cooldown=50_000, timescale=10_000)
    assert rsqrt_lr(0, **kw) == pytest.approx(1e-4)
    assert rsqrt_lr(30_000, **kw) == pytest.approx(1e-4 / 2)  # 1/sqrt(1 + 3)
    assert rsqrt_lr(75_000, **kw) == pytest.approx(1e-4 / math.sqrt(8.5) * 0.5)
    assert rsqrt_lr(100_000, **kw) == 0.0
    warm = dict(base=1.0, total=100_000, warmup=1000, cooldown=0, timescale=10_000)
    assert rsqrt_lr(0, **warm) == 0.0
    assert rsqrt_lr(500, **warm) == pytest.approx(0.5)  # flat decay during warmup
    assert rsqrt_lr(11_000, **warm) == pytest.approx(1 / math.sqrt(2))


def test_cosine_schedule_values():
    kw = dict(base=2.0, total=110, warmup=10)
    assert cosine_lr(0, **kw) == 0.0
    assert cosine_lr(5, **kw) == pytest.approx(1.0)
    assert cosine_lr(10, **kw) == pytest.approx(2.0)
    assert cosine_lr(60, **kw) == pytest.approx(1.0)
    assert cosine_lr(110, **kw) == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(0, base=1.0, total=10) == 1.0  # no warmup factor


# ---------------------------------------------------------------- crops


def test_multicrop_is_deterministic_and_first_global_crop_is_shared():
    img = Image.effect_noise((40, 30), 60).convert("RGB")
    full = MultiCrop(image_size=32, local_size=16, n_global=2, n_local=3)
    a_g, a_l = full(img, sample_generator(0, 1, 5))
    b_g, b_l = full(img, sample_generator(0, 1, 5))
    assert all(torch.equal(x, y) for x, y in zip(a_g + a_l, b_g + b_l))
    assert [tuple(x.shape) for x in a_g + a_l] == [(3, 32, 32)] * 2 + [(3, 16, 16)] * 3
    c_g, _ = full(img, sample_generator(0, 2, 5))  # another epoch: other crops
    assert not torch.equal(a_g[0], c_g[0])
    plain_g, plain_l = MultiCrop(image_size=32, local_size=16, n_global=1, n_local=0)(
        img, sample_generator(0, 1, 5)
    )
    assert torch.equal(plain_g[0], a_g[0]) and plain_l == []  # distill off sees the same first crop


def test_default_local_size():
    assert default_local_size(224, 16) == 96  # DINO's local size
    assert default_local_size(32, 8) == 16
    assert default_local_size(8, 8) == 8


# ---------------------------------------------------------------- config


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


MIN_CFG = "model: {open_clip: ViT-Tiny-P8}\ndata: {manifest: m.csv}\n"


def test_config_unknown_and_mistyped_keys(tmp_path):
    with pytest.raises(UserError, match=r"objective\.studnt_temp.*valid keys in objective: \[.*student_temp"):
        load_config(_write(tmp_path / "a.yaml", MIN_CFG + "objective: {studnt_temp: 0.1}\n"))
    with pytest.raises(UserError, match=r"optim\.lr: expected a number, found 'fast'"):
        load_config(_write(tmp_path / "b.yaml", MIN_CFG + "optim: {lr: fast}\n"))
    with pytest.raises(UserError, match=r"objective\.distill: expected true or false"):
        load_config(_write(tmp_path / "c.yaml", MIN_CFG + "objective: {distill: 1}\n"))
    with pytest.raises(UserError, match=r"objective\.contrastive: expected one of 'softmax', 'sigmoid'"):
        load_config(_write(tmp_path / "d.yaml", MIN_CFG + "objective: {contrastive: hinge}\n"))
    assert (
        load_config(_write(tmp_path / "g.yaml", MIN_CFG + "optim: {lr: 1e-4}\n")).optim.lr == 1e-4
    )  # YAML text
    with pytest.raises(UserError, match=r"unknown key\(s\) \['batchsize'\]"):
        load_config(_write(tmp_path / "e.yaml", MIN_CFG + "batchsize: 3\n"))
    with pytest.raises(UserError, match="exactly one of 'manifest"):
        load_config(_write(tmp_path / "f.yaml", "model: {open_clip: ViT-Tiny-P8}\n"))


def test_finetune_fragment_expresses_the_paper_stage(tmp_path):
    fragment = REPO / "configs" / "train" / "silc_finetune.yaml"
    with pytest.raises(UserError, match="model needs exactly one of"):
        load_config(fragment)  # model and data are the includer's placeholders
    cfg = load_config(_write(tmp_path / "ft.yaml", f"include: {fragment}\n" + MIN_CFG))
    o, opt = cfg.objective, cfg.optim
    assert (opt.lr, opt.schedule, opt.cooldown_steps, opt.warmup_steps, opt.weight_decay) == (
        1e-4,
        "rsqrt",
        50_000,
        0,
        0.0,
    )
    assert (o.head.hidden, o.head.bottleneck, o.head.out_dim) == (2048, 256, 65536)
    assert o.distill and cfg.export.name == "ft"


# ---------------------------------------------------------------- data


def test_manifest_errors_name_the_row(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    _write(tmp_path / "ok.csv", "image,caption\na.png,a cat\n")
    assert read_manifest(tmp_path / "ok.csv")[0].caption == "a cat"
    _write(tmp_path / "m.csv", "image,caption\na.png,a cat\nmissing.png,a dog\n")
    with pytest.raises(UserError, match=r"m\.csv line 3: image not found: .*missing\.png"):
        read_manifest(tmp_path / "m.csv")
    _write(tmp_path / "e.jsonl", '{"image": "a.png", "caption": "x"}\n{"image": "a.png", "caption": "  "}\n')
    with pytest.raises(UserError, match=r"e\.jsonl line 2: empty caption"):
        read_manifest(tmp_path / "e.jsonl")
    _write(tmp_path / "c.csv", "path,text\na.png,x\n")
    with pytest.raises(UserError, match=r"missing column\(s\) \['image', 'caption'\]"):
        read_manifest(tmp_path / "c.csv")


def _tar(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_shards_index_and_errors(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    png = buf.getvalue()
    _tar(
        tmp_path / "s-000.tar", {"000.png": png, "000.txt": b"a red circle", "001.png": png, "001.txt": b"x"}
    )
    pairs = index_shards(str(tmp_path / "s-*.tar"))
    assert [(p.image, p.caption) for p in pairs] == [("000.png", "a red circle"), ("001.png", "x")]
    _tar(tmp_path / "bad-000.tar", {"000.png": png, "000.txt": b" "})
    with pytest.raises(UserError, match=r"bad-000\.tar: sample '000' has an empty or missing caption"):
        index_shards(str(tmp_path / "bad-*.tar"))
    _tar(tmp_path / "noimg-000.tar", {"000.txt": b"a caption"})
    with pytest.raises(UserError, match="has a caption but no image"):
        index_shards(str(tmp_path / "noimg-*.tar"))


# ---------------------------------------------------------------- export files


def test_export_splits_files_under_the_limit(tmp_path):
    state = {f"w{i}": torch.full((64, 1024), float(i)) for i in range(5)}  # 256 KiB each in fp32
    files = write_bundle(state, tmp_path, "m", {"step": 3}, fp16=True, max_file_mb=0.3)
    assert [f.name for f in files] == [f"m-0000{i}-of-00003.safetensors" for i in (1, 2, 3)]
    assert all(f.stat().st_size <= 0.3 * 1024 * 1024 for f in files)
    merged = {k: v for f in files for k, v in load_file(str(f)).items()}
    assert (
        set(merged) == set(state) and merged["w3"].dtype == torch.float16 and float(merged["w3"][0, 0]) == 3.0
    )
    assert read_record(files[0]) == {"step": 3}
    one = write_bundle(state, tmp_path, "m", {}, max_file_mb=25)  # a re-export replaces the split files
    assert [f.name for f in one] == ["m.safetensors"] and sorted(p.name for p in tmp_path.iterdir()) == [
        "m.safetensors"
    ]
    assert plan_files({"a": 10, "b": 10**9, "c": 10}, 1000, 0) == [["a"], ["b"], ["c"]]  # oversize alone

"""Uncertainty: mIoU's bootstrap over images (`run --bootstrap N`), the tables that show it,
and `check --regression --tolerance-se K` against synthetic results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from silc_bench.cli import main
from silc_bench.metrics import uncertainty
from silc_bench.metrics.uncertainty import bootstrap_interval, bootstrap_miou, miou_from_areas
from silc_bench.results.schema import Result, read_result, write_result
from tests import fixtures

pytestmark = pytest.mark.usefixtures("one_thread")


def _areas(images: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image (intersect, union) pixel counts of a plausible segmentation: each class
    present in some images only, intersect <= union."""
    rng = np.random.default_rng(seed)
    union = rng.integers(0, 400, size=(images, classes)) * (rng.random((images, classes)) < 0.6)
    intersect = np.floor(union * rng.random((images, classes)) * rng.random(classes))
    return intersect.astype(np.float64), union.astype(np.float64)


def _naive(intersect: np.ndarray, union: np.ndarray, resamples: int, seed: int) -> list[float]:
    """The bootstrap by its definition, one resample and one class at a time."""
    rng = np.random.default_rng(seed)
    m, c = intersect.shape
    out = []
    for _ in range(resamples):
        picks = rng.integers(0, m, size=m)
        ious = []
        for k in range(c):
            i = sum(float(intersect[j, k]) for j in picks)
            u = sum(float(union[j, k]) for j in picks)
            if u > 0:
                ious.append(i / u)
        out.append(100.0 * sum(ious) / len(ious) if ious else math.nan)
    return out


def test_miou_from_areas_is_mmseg_iou_metric():
    import torch
    from mmseg.evaluation import IoUMetric

    inter = np.array([[3.0, 0, 5, 0], [1, 2, 0, 0]])
    union = np.array([[4.0, 6, 5, 0], [2, 2, 9, 0]])  # the last class is nowhere: left out
    totals = (torch.tensor(a.sum(0), dtype=torch.float32) for a in (inter, union, union, union))
    with np.errstate(invalid="ignore"):  # mmseg divides 0 by 0 for the absent class
        want = IoUMetric.total_area_to_metrics(*totals, ["mIoU"])
    assert miou_from_areas(inter.sum(0), union.sum(0)) == pytest.approx(100 * np.nanmean(want["IoU"]))
    assert miou_from_areas(inter.sum(0), union.sum(0)) == pytest.approx(100 * (4 / 6 + 2 / 8 + 5 / 14) / 3)
    assert math.isnan(miou_from_areas(np.zeros(3), np.zeros(3)))


def test_bootstrap_matches_a_naive_loop_exactly():
    inter, union = _areas(7, 5, seed=1)
    naive = _naive(inter, union, 40, seed=3)
    assert bootstrap_miou(inter, union, 40, seed=3).tolist() == naive
    got = bootstrap_interval(inter, union, 40, seed=3)
    x = sorted(naive)

    def pct(q: float) -> float:  # numpy's default ("linear") percentile, by hand
        h = (len(x) - 1) * q
        lo = math.floor(h)
        return x[lo] + (h - lo) * (x[min(lo + 1, len(x) - 1)] - x[lo])

    mean = sum(x) / len(x)
    se = math.sqrt(sum((v - mean) ** 2 for v in x) / (len(x) - 1))
    assert got["bootstrap"] == 40 and got["seed"] == 3
    assert got["ci95"] == pytest.approx([pct(0.025), pct(0.975)], abs=5e-5)  # stored at 4 decimals
    assert got["se"] == pytest.approx(se, abs=5e-5)


def test_chunks_do_not_change_the_resamples(monkeypatch):
    inter, union = _areas(30, 6, seed=2)
    whole = bootstrap_miou(inter, union, 100, seed=0)
    monkeypatch.setattr(uncertainty, "_CHUNK_CELLS", 30 * 7)  # 7 resamples per chunk, the last short
    assert bootstrap_miou(inter, union, 100, seed=0).tolist() == whole.tolist()


def test_the_interval_is_seeded_and_holds_the_miou():
    inter, union = _areas(60, 6, seed=4)
    first = bootstrap_interval(inter, union, 500)
    assert first == bootstrap_interval(inter, union, 500)  # same N, same seed: same numbers
    assert first["seed"] == uncertainty.BOOTSTRAP_SEED
    assert bootstrap_interval(inter, union, 500, seed=1) != first
    lo, hi = first["ci95"]
    assert lo < float(miou_from_areas(inter.sum(0), union.sum(0))) < hi
    assert 0 < first["se"] < hi - lo


def test_the_interval_widens_as_images_decrease():
    inter, union = _areas(400, 6, seed=5)
    widths = []
    for m in (400, 100, 25):
        got = bootstrap_interval(inter[:m], union[:m], 1000)
        widths.append(got["ci95"][1] - got["ci95"][0])
    assert widths[0] < widths[1] < widths[2]


def test_no_interval_where_no_resample_has_a_labelled_pixel():
    assert bootstrap_interval(np.zeros((3, 2)), np.zeros((3, 2)), 10) is None


def test_the_task_reads_iou_metric_areas_in_dataset_order():
    import torch

    from silc_bench.tasks.zs_seg import miou_bootstrap

    inter, union = _areas(9, 4, seed=6)
    results = [tuple(torch.tensor(a[i], dtype=torch.float32) for a in (inter, union, union, union))
               for i in range(9)]  # fmt: skip
    assert miou_bootstrap(results, 50) == bootstrap_interval(inter, union, 50)


def test_binomial_se_and_bootstrap_sizes():
    assert uncertainty.binomial_se(50.0, 100) == pytest.approx(5.0)
    assert uncertainty.binomial_se(100.0, 10) == 0.0
    assert uncertainty.resamples_problem(0) is None and uncertainty.resamples_problem(2) is None
    for bad in (-1, 1, uncertainty.MAX_RESAMPLES + 1, True, 2.5):
        assert uncertainty.resamples_problem(bad)


def _exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as e:  # argparse's own refusals (a non-number)
        return int(e.code)


def _one_line(capsys, code: int, *words: str) -> None:  # noqa: ANN001
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err


@pytest.mark.parametrize(
    "args, words",
    [
        (["--task", "zs-seg", "--dataset", "shapes-seg", "--bootstrap", "-1"], ["--bootstrap", "-1"]),
        (["--task", "zs-seg", "--dataset", "shapes-seg", "--bootstrap", "1"], ["--bootstrap", "2.."]),
        (["--task", "zs-seg", "--dataset", "shapes-seg", "--bootstrap", "x"], ["--bootstrap"]),
        (["--task", "zs-cls", "--dataset", "shapes-cls", "--bootstrap", "10"], ["not an option of --task"]),
    ],
)  # fmt: skip
def test_bad_bootstrap_is_one_line_exit_2(args, words, tmp_path, capsys):
    code = _exit_code(["run", "--model", "silc-tiny", *args, "--results", str(tmp_path), "--quiet"])
    _one_line(capsys, code, *words)
    assert not list(tmp_path.rglob("*.json"))


def test_api_refuses_a_bad_bootstrap_too(tmp_path):
    from silc_bench.api import EvalOptions, prepare
    from silc_bench.core.errors import UserError

    opts = EvalOptions(out=tmp_path, device="cpu", task_options={"bootstrap": -5})
    with pytest.raises(UserError, match="--bootstrap"):
        prepare("silc-tiny", "zs-seg", "shapes-seg", opts)


SEG = ["--task", "zs-seg", "--model", "silc-tiny", "--dataset", "shapes-seg", "--limit", "8"]
COMMON = ["--quiet", "--workers", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def seg_runs(tmp_path_factory) -> tuple[Path, Path]:
    """The same 8-image zs-seg run, without and with `--bootstrap 200`."""
    plain, boot = tmp_path_factory.mktemp("plain"), tmp_path_factory.mktemp("boot")
    assert main(["run", *SEG, "--results", str(plain), *COMMON]) == 0
    assert main(["run", *SEG, "--results", str(boot), "--bootstrap", "200", *COMMON]) == 0
    name = Path("silc-tiny") / "zs-seg" / "shapes-seg+limit-8.json"  # no file of its own
    return plain / name, boot / name


def test_end_to_end_interval_beside_an_unchanged_miou(seg_runs):
    plain_path, boot_path = seg_runs
    plain, boot = read_result(plain_path), read_result(boot_path)  # the reader validates the field
    assert boot.metrics == plain.metrics and boot.per_class == plain.per_class
    assert plain.uncertainty == {} and "uncertainty" not in json.loads(plain_path.read_text())
    got = boot.uncertainty["mIoU"]
    assert got["bootstrap"] == 200 and got["seed"] == uncertainty.BOOTSTRAP_SEED
    lo, hi = got["ci95"]
    assert lo <= boot.metrics["mIoU"] <= hi and lo < hi and got["se"] > 0
    assert list(json.loads(boot_path.read_text())).index("uncertainty") == 10  # right after metrics
    assert boot.run_key["bootstrap"] == {"resamples": 200, "seed": uncertainty.BOOTSTRAP_SEED}
    assert "bootstrap" not in boot.run_key["options"] and boot.options == {}
    assert "bootstrap" not in plain.run_key


def test_a_result_with_an_interval_answers_a_run_without_one(seg_runs, capsys):
    """The interval changes no number: a run that asks for none reuses the stored result
    (keeping its interval); a run that asks for another N computes again."""
    _, boot_path = seg_runs
    out = str(boot_path.parents[2])
    capsys.readouterr()
    assert main(["run", *SEG, "--results", out, *COMMON]) == 0
    assert "skipped" in capsys.readouterr().err
    assert read_result(boot_path).uncertainty["mIoU"]["bootstrap"] == 200
    assert main(["run", *SEG, "--results", out, "--bootstrap", "200", *COMMON]) == 0
    assert "skipped" in capsys.readouterr().err


def test_table_shows_the_interval_on_request(seg_runs, capsys):
    _, boot_path = seg_runs
    lo, hi = read_result(boot_path).uncertainty["mIoU"]["ci95"]
    out = str(boot_path.parents[2])
    capsys.readouterr()
    assert main(["table", "results", "--results", out]) == 0
    assert "[" not in capsys.readouterr().out.split("\n\n")[0]
    assert main(["table", "results", "--results", out, "--stderr"]) == 0
    text = capsys.readouterr().out
    assert f"[{lo:.2f}, {hi:.2f}]" in text and "bootstrap interval over images" in text


# --- check --regression --tolerance-se, on synthetic results ---------------------------------


@pytest.fixture
def registry(tmp_path, monkeypatch) -> None:
    entry = {
        "arch": {"open_clip": "ViT-Tiny-P8"},
        "weights": {"random_init_seed": 0},
        "expected": {
            "zs-cls/shapes-cls": {"top1": 50.0},
            "zs-seg/shapes-seg": {"mIoU": 20.0, "mAcc": 40.0},
        },
    }
    reg = tmp_path / "extra.yaml"
    reg.write_text(yaml.safe_dump({"models": {"se-tiny": entry}}))
    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", str(reg))


def _write(out: Path, task: str, dataset: str, metrics: dict, protocol: dict, **fields) -> None:
    r = Result(
        model="se-tiny", variant=None, checkpoint_sha256="0" * 64, run_key=fixtures.MINIMAL_RUN_KEY,
        task=task, task_version=1, dataset=dataset, dataset_fingerprint="f", protocol=protocol,
        metrics=metrics, precision="fp32", **fields,
    )  # fmt: skip
    write_result(out / "se-tiny" / task / f"{dataset}.json", r)


def _synthetic(out: Path, top1: float, miou: float, se: float | None) -> None:
    _write(out, "zs-cls", "shapes-cls", {"top1": top1}, {"num_images": 360})
    spread = {} if se is None else {"mIoU": {"bootstrap": 1000, "seed": 0, "ci95": [0.0, 100.0], "se": se}}
    seg = {"mIoU": miou, "mAcc": 40.3}
    _write(out, "zs-seg", "shapes-seg", seg, {"num_images": 100}, profile="tcl", uncertainty=spread)


def test_tolerance_in_standard_errors_passes_and_fails_by_the_numbers(registry, tmp_path, capsys):
    """top1 50 on 360 images has a binomial se of 2.635 points; the mIoU's recorded one is 1.0.
    52.0 and 21.5 fail the default ±1, pass within 1 and 2 se, and fail within 0.5 and 1 se."""
    out = tmp_path / "r"
    _synthetic(out, top1=52.0, miou=21.5, se=1.0)
    check = ["check", str(out), "--regression"]
    assert main(check) == 1
    capsys.readouterr()
    assert main([*check, "--tolerance-se", "2"]) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert "within 2 standard errors" in text and "1 with no standard error" in text  # mAcc
    assert "±1 (fixed: no standard error)" in text and "±2 (2 × bootstrap se 1)" in text
    assert "±5.27 (2 × binomial se 2.64)" in text  # at the expected 50%, over the result's 360 images
    assert main([*check, "--tolerance-se", "1"]) == 1  # mIoU: 1.5 > 1 × 1.0
    err = capsys.readouterr().err
    assert "mIoU = 21.50, expected 20.00 ± 1 (1 × bootstrap se 1)" in err and "top1" not in err  # 2 <= 2.635
    assert main([*check, "--tolerance-se", "0.5"]) == 1
    err = capsys.readouterr().err
    assert "top1 = 52.00" in err and "2 problems" in err


def test_without_a_recorded_bootstrap_miou_keeps_the_fixed_tolerance(registry, tmp_path, capsys):
    out = tmp_path / "r"
    _synthetic(out, top1=50.0, miou=21.5, se=None)
    assert main(["check", str(out), "--regression", "--tolerance-se", "100"]) == 1  # 1.5 > ±1 fixed
    captured = capsys.readouterr()
    assert "mIoU = 21.50, expected 20.00 ± 1 (fixed: no standard error)" in captured.err
    assert main(["check", str(out), "--regression", "--tolerance-se", "100", "--tolerance", "2"]) == 0
    assert "2 with no standard error, within the fixed tolerance" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--regression", "--tolerance-se", "-1"], ["--tolerance-se", "-1"]),
        (["--regression", "--tolerance-se", "nan"], ["--tolerance-se"]),
        (["--tolerance-se", "2"], ["go with --regression"]),
    ],
)
def test_bad_tolerance_se_is_one_line_exit_2(extra, words, tmp_path, capsys):
    _one_line(capsys, _exit_code(["check", str(tmp_path), *extra]), *words)


@pytest.mark.slow  # a torchrun launch (about 13 s on 2 cores): `make test-all`
def test_two_ranks_draw_the_interval_of_one_process(tmp_path, capsys):
    """Under torchrun every rank bootstraps IoUMetric's gathered per-image areas, in dataset
    order: the interval is one process's, resample for resample."""
    from tests.fixtures import run_args
    from tests.test_distributed import torchrun

    one, two = tmp_path / "one", tmp_path / "two"
    extra = ("--no-cache", "--limit", "8", "--bootstrap", "100")
    args = run_args("zs-seg", "silc-tiny", "shapes-seg", one, tmp_path / "data", *extra)
    assert main(args) == 0, capsys.readouterr().err
    proc = torchrun(run_args("zs-seg", "silc-tiny", "shapes-seg", two, tmp_path / "data", *extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    (a,), (b,) = ([read_result(p) for p in d.rglob("*.json")] for d in (one, two))
    assert b.world_size == 2 and a.metrics == b.metrics
    assert a.uncertainty == b.uncertainty and a.uncertainty["mIoU"]["bootstrap"] == 100


def test_one_image_gets_no_interval_and_says_why(tmp_path):
    """Every resample of one image is that image: a [x, x] interval with se 0 would read as
    no uncertainty at all, so none is recorded, and the note says why."""
    one = [*SEG[:-1], "1"]
    assert main(["run", *one, "--results", str(tmp_path), "--bootstrap", "50", *COMMON]) == 0
    r = read_result(tmp_path / "silc-tiny" / "zs-seg" / "shapes-seg+limit-1.json")
    assert r.uncertainty == {} and any("a resample of one image is that image" in n for n in r.notes)

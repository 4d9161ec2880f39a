"""Seed summaries and the 2σ verdict rule behind reports/shapes.md's 3-seed table."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest

from silc_bench.config import load_models, task_default_profile
from silc_bench.core.paths import REPO_ROOT
from silc_bench.results.audit import _task_version
from silc_bench.results.schema import Result, read_result, write_result
from silc_bench.results.tables.seeds import (
    NO_DIFFERENCE,
    NO_VERDICT,
    difference_cell,
    pooled_std,
    summarise,
    verdict,
)
from silc_bench.results.tables.shapes import TASKS, markdown, seed_ref
from tests import fixtures


def test_the_spread_is_the_sample_std_and_missing_seeds_are_not_zeros():
    s = summarise([10.0, None, 14.0])
    assert s.values == (10.0, 14.0) and s.mean == 12.0
    assert s.std == pytest.approx(math.sqrt(8.0))  # n - 1: the population std would be 2
    assert summarise([None, None]) is None
    assert summarise([5.0]).cell() == "5.0 (1 seed)"


def test_pooled_std_weights_each_recipe_by_its_degrees_of_freedom():
    a, b = summarise([1.0, 2.0, 3.0]), summarise([10.0, 14.0])  # variances 1 and 8
    assert pooled_std(a, b) == pytest.approx(math.sqrt((2 * 1 + 1 * 8) / 3))


def test_a_verdict_needs_more_than_twice_the_pooled_std():
    a, b = summarise([20.0, 21.0, 22.0]), summarise([15.0, 16.0, 17.0])  # diff 5, 2σ = 2
    assert verdict(a, b, "A ahead", "B ahead") == "A ahead"
    assert verdict(b, a, "B ahead", "A ahead") == "A ahead"
    close = summarise([16.0, 17.5, 19.0])  # diff 1.5 against 2σ ≈ 2.5
    assert verdict(close, b, "A ahead", "B ahead") == NO_DIFFERENCE
    assert difference_cell(a, b, "A ahead", "B ahead") == "+5.0 (2σ 2.0): A ahead"
    assert verdict(a, None, "A ahead", "B ahead") == "–"
    # a single seed has no spread of its own: neither two of them, nor one against three
    assert verdict(summarise([30.0]), summarise([10.0]), "A", "B") == NO_VERDICT
    assert verdict(summarise([30.0]), summarise([10.0, 10.5, 11.0]), "A", "B") == NO_VERDICT


def _sha(model: str) -> str:
    """The registry's pin for a shipped model; one made-up checkpoint per seed model."""
    base = model.partition(":")[0]
    return fixtures.registry_sha(base) if "-seed" not in base else hashlib.sha256(base.encode()).hexdigest()


def _write(out: Path, model: str, task: str, ds: str, metrics: dict, **kw) -> None:
    path = out / model.replace(":", "@") / task / f"{ds}.json"
    if path.is_file():  # two metrics of one result (retrieval)
        metrics = {**read_result(path).metrics, **metrics}
    r = Result(
        model=model,
        variant="teacher" if model.startswith("silc") and ":" not in model else None,
        checkpoint_sha256=kw.get("sha", _sha(model)),
        run_key={
            "model": {
                "spec": {"dense_mode": load_models()[model.partition(":")[0].split("-seed")[0]].dense_mode}
            }
        },
        task=task,
        task_version=_task_version(task) or 1,
        dataset=ds,
        dataset_fingerprint="f",
        protocol={"num_classes": 36} if task != "zs-seg" else {},
        metrics=metrics,
        precision="fp32",
        profile=task_default_profile(task),
        created="2026-01-01T00:00:00+00:00",
    )
    if ":" in model:
        r.variant = model.partition(":")[2]
    write_result(path, r)


def _seed_results(
    out: Path, silc_seg: list[float], clip_seg: list[float], silc_shape: list[float] | None = None
) -> None:
    rows = (("silc-tiny", silc_seg), ("silc-tiny:student", silc_seg), ("clip-tiny", clip_seg))
    for family, seg in rows:
        for seed, v in enumerate(seg):
            for task, ds, metric in TASKS:
                value = v if task == "zs-seg" else 30.0 + seed
                if silc_shape and ds == "shapes-seg-shape" and family.startswith("silc"):
                    value = silc_shape[seed]
                _write(out, seed_ref(family, seed), task, ds, {metric: value})


def test_the_report_states_the_verdicts_and_the_claims_from_the_numbers(tmp_path):
    res = tmp_path / "r"
    _seed_results(res, silc_seg=[30.0, 31.0, 32.0], clip_seg=[20.0, 21.0, 22.0])
    results = [(p, read_result(p)) for p in res.rglob("*.json")]
    md = markdown(results, findings=None, results_dir=res)
    assert "### Over 3 training seeds" in md
    assert "| clip-tiny | 31.0 ± 1.0 | 31.0 ± 1.0 |" in md and "| 21.0 ± 1.0 | 21.0 ± 1.0 |" in md
    silc_vs_clip = next(line for line in md.splitlines() if line.startswith("| silc-tiny − clip-tiny"))
    assert silc_vs_clip.count("+10.0 (2σ 2.0): SILC ahead") == 2
    assert silc_vs_clip.count(f"+0.0 (2σ 2.0): {NO_DIFFERENCE}") == 4
    assert "(SILC teacher vs CLIP, zs-seg mIoU): holds (SILC ahead on every one)." in md
    assert "**The EMA teacher is ahead of its student on segmentation**: not shown: no difference" in md
    assert "**Classification is no worse with distillation**" in md and "10-shot): holds." in md


def test_claims_flip_when_clip_is_ahead(tmp_path):
    res = tmp_path / "r"
    _seed_results(res, silc_seg=[10.0, 11.0, 12.0], clip_seg=[20.0, 21.0, 22.0])
    results = [(p, read_result(p)) for p in res.rglob("*.json")]
    md = markdown(results, findings=None, results_dir=res)
    assert (
        "zs-seg mIoU): does not hold (CLIP ahead on zs-seg/shapes-seg/mIoU, zs-seg/shapes-seg-shape/mIoU)"
        in md
    )


def test_a_claim_against_on_one_metric_still_names_the_metric_in_favour(tmp_path):
    res = tmp_path / "r"
    _seed_results(
        res, silc_seg=[10.0, 11.0, 12.0], clip_seg=[20.0, 21.0, 22.0], silc_shape=[40.0, 41.0, 42.0]
    )
    results = [(p, read_result(p)) for p in res.rglob("*.json")]
    md = markdown(results, findings=None, results_dir=res)
    assert (
        "zs-seg mIoU): does not hold (CLIP ahead on zs-seg/shapes-seg/mIoU; "
        "SILC ahead on zs-seg/shapes-seg-shape/mIoU)." in md
    )


def test_a_seed_that_is_not_one_distinct_checkpoint_stays_out_of_the_means(tmp_path):
    """A seed model is no registry entry, so nothing pins its results to a checkpoint: a copy
    of seed 0 filed as seed 1, or a seed whose tasks come from two different runs, would
    change the spread without saying so."""
    res = tmp_path / "r"
    _seed_results(res, silc_seg=[30.0, 31.0, 32.0], clip_seg=[20.0, 21.0, 22.0])
    twin = fixtures.registry_sha("clip-tiny")  # seed 1 of clip-tiny is really seed 0's file
    for task, ds, metric in TASKS:
        _write(res, "clip-tiny-seed1", task, ds, {metric: 20.0 if task == "zs-seg" else 30.0}, sha=twin)
    _write(res, "silc-tiny-seed2", "zs-cls", "shapes-cls", {"top1": 99.0}, sha="f" * 64)  # another run
    results = [(p, read_result(p)) for p in res.rglob("*.json")]
    md = markdown(results, findings=None, results_dir=res)
    assert "seed model clip-tiny-seed1 from the seeds table (the same checkpoint as clip-tiny)" in md
    assert "seed model clip-tiny from" not in md  # seed 0 is pinned by the registry: it stays
    assert (
        "seed model silc-tiny-seed2 from the seeds table (its results come from 2 different checkpoints)"
        in md
    )
    row = next(line for line in md.splitlines() if line.startswith("| clip-tiny | ") and "±" in line)
    assert "| 21.0 ± 1.4 |" in row  # seeds 0 and 2 only: 20 and 22
    row = next(line for line in md.splitlines() if line.startswith("| silc-tiny | ") and "±" in line)
    assert "99" not in row and "30.5 ± 0.7" in row  # seeds 0 and 1 only


def test_a_seed_run_in_another_dense_mode_stays_out(tmp_path):
    res = tmp_path / "r"
    _seed_results(res, silc_seg=[30.0, 31.0, 32.0], clip_seg=[20.0, 21.0, 22.0])
    path = res / "clip-tiny-seed2" / "zs-seg" / "shapes-seg.json"
    r = read_result(path)
    r.run_key = {"model": {"spec": {"dense_mode": "no-such-mode"}}}
    write_result(path, r)
    results = [(p, read_result(p)) for p in res.rglob("*.json")]
    md = markdown(results, findings=None, results_dir=res)
    assert "seed model clip-tiny-seed2 from the seeds table (dense mode no-such-mode, not clip-tiny's" in md


def test_no_seed_section_without_other_seeds(tmp_path):
    res = tmp_path / "r"
    _write(res, "clip-tiny", "zs-cls", "shapes-cls", {"top1": 20.0})
    results = [(p, read_result(p)) for p in res.rglob("*.json")]
    assert "### Over" not in markdown(results, findings=None, results_dir=res)


def test_bench_registers_each_seed_with_its_family_dense_mode(tmp_path, monkeypatch):
    import yaml

    from silc_bench.bench.shapes import register_seeds
    from silc_bench.config import load_models

    monkeypatch.setenv("SILC_BENCH_CHECKPOINTS", "")
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit, match="no exported model .*silc-tiny-seed1.yaml"):
        register_seeds(runs)
    shipped = load_models()
    registry = yaml.safe_load((REPO_ROOT / "checkpoints.yaml").read_text())["models"]
    for base in ("silc-tiny", "clip-tiny"):
        for seed in (1, 2):
            name = f"{base}-seed{seed}"
            entry = {k: v for k, v in registry[base].items() if k != "dense_mode"}
            (runs / name / "export").mkdir(parents=True)
            (runs / name / "export" / f"{name}.yaml").write_text(yaml.safe_dump({"models": {name: entry}}))
    refs = register_seeds(runs)
    assert refs == [
        "silc-tiny-seed1", "silc-tiny-seed2", "silc-tiny-seed1:student", "silc-tiny-seed2:student",
        "clip-tiny-seed1", "clip-tiny-seed2",
    ]  # fmt: skip
    models = load_models()
    assert models["clip-tiny-seed2"].dense_mode == shipped["clip-tiny"].dense_mode
    assert models["silc-tiny-seed1"].dense_mode == shipped["silc-tiny"].dense_mode

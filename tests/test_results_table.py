"""`silc-bench table results`: every result in a folder as models × task/dataset/metric, in
markdown, CSV and LaTeX, with binomial standard errors on request."""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from silc_bench.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("res")
    argv = ["run", "--task", "zs-cls", "--model", "tiny-random,clip-tiny", "--dataset", "shapes-cls"]
    assert main([*argv, "--results", str(out), "--quiet", "--device", "cpu"]) == 0
    argv = [
        "run",
        "--task",
        "retrieval",
        "--model",
        "clip-tiny",
        "--dataset",
        "shapes-retrieval",
        "--limit",
        "20",
    ]
    assert main([*argv, "--results", str(out), "--quiet", "--device", "cpu"]) == 0
    return out


def test_markdown_lays_out_models_by_metric_with_the_marks(results, capsys):
    capsys.readouterr()
    assert main(["table", "results", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    header = [c.strip() for c in lines[0].split("|")[1:-1]]
    assert header[0] == "model" and "zs-cls/shapes-cls/top1" in header
    assert "retrieval/shapes-retrieval +limit-20/t2i_recall@1" in header  # the run key names the limit
    rows = {ln.split("|")[1].strip(): [c.strip() for c in ln.split("|")[2:-1]] for ln in lines[1:]}
    assert set(rows) == {"clip-tiny", "tiny-random"}
    stored = json.loads((results / "clip-tiny" / "zs-cls" / "shapes-cls.json").read_text())["metrics"]
    assert rows["clip-tiny"][header.index("zs-cls/shapes-cls/top1") - 1] == f"{stored['top1']:.2f}"
    retrieval_col = next(i for i, h in enumerate(header) if h.startswith("retrieval/")) - 1
    assert rows["tiny-random"][retrieval_col] == "–"  # never measured
    assert rows["clip-tiny"][retrieval_col].endswith("‡") and "--limit 20" in out  # a smoke run says so


def test_stderr_is_the_binomial_one_and_csv_and_latex_hold_the_same_cells(results, capsys):
    capsys.readouterr()
    assert main(["table", "results", "--results", str(results), "--stderr", "--format", "csv"]) == 0
    table = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    header, rows = table[0], {r[0]: r[1:] for r in table[1:]}
    r = json.loads((results / "tiny-random" / "zs-cls" / "shapes-cls.json").read_text())
    p, n = r["metrics"]["top1"] / 100, r["protocol"]["num_images"]
    want = f"{r['metrics']['top1']:.2f} ± {100 * math.sqrt(p * (1 - p) / n):.2f}"
    assert rows["tiny-random"][header.index("zs-cls/shapes-cls/top1") - 1] == want
    mpcr = rows["tiny-random"][header.index("zs-cls/shapes-cls/mean_per_class_recall") - 1]
    assert "±" not in mpcr  # no binomial form
    assert main(["table", "results", "--results", str(results), "--stderr", "--format", "latex"]) == 0
    latex = capsys.readouterr().out
    assert latex.startswith(r"\begin{tabular}") and r"$\pm$" in latex and r"zs-cls/shapes-cls/top1" in latex


def test_refusals_are_one_line(tmp_path, capsys):
    assert main(["table", "results", "--results", str(tmp_path)]) == 2
    assert "no result files" in capsys.readouterr().err
    assert main(["table", "1", "--stderr"]) == 2
    assert "--stderr goes with" in capsys.readouterr().err


def test_one_row_never_mixes_checkpoints_or_hides_a_duplicate(results, tmp_path, capsys):
    """A copy of a result with another number is named, not silently shown instead; a model
    whose results came from two checkpoints gets a row per checkpoint."""
    import shutil

    dup = tmp_path / "dup"
    shutil.copytree(results, dup / "a")
    shutil.copytree(results, dup / "b")
    edited = dup / "b" / "clip-tiny" / "zs-cls" / "shapes-cls.json"
    raw = json.loads(edited.read_text())
    raw["metrics"]["top1"], raw["created"] = 1.0, "2020-01-01T00:00:00+00:00"  # the older copy
    edited.write_text(json.dumps(raw))
    assert main(["table", "results", "--results", str(dup)]) == 0
    md = capsys.readouterr().out
    assert f"left out {edited}" in md and "| 1.00 " not in md
    mixed = tmp_path / "mixed"
    shutil.copytree(results, mixed)
    other = mixed / "clip-tiny" / "retrieval" / "shapes-retrieval+limit-20.json"
    raw = json.loads(other.read_text())
    raw["checkpoint_sha256"] = "c" * 64
    other.write_text(json.dumps(raw))
    assert main(["table", "results", "--results", str(mixed)]) == 0
    md = capsys.readouterr().out
    assert "| clip-tiny @cccccccc " in md and "| clip-tiny @" in md.replace("@cccccccc", "", 1)

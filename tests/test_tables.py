"""`silc-bench table`: the paper's tables from data files plus result files."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from silc_bench.cli import main
from silc_bench.core.paths import REPO_ROOT
from silc_bench.results.schema import Result, write_result
from silc_bench.results.tables.build import COLUMNS, delta_audit
from silc_bench.results.tables.paper import load_paper_table
from tests import fixtures


def test_every_printed_cell_is_transcribed():
    sizes = {n: (len(load_paper_table(n).rows), len(load_paper_table(n).columns)) for n in ("1", "2", "3")}
    assert sizes == {"1": (8, 10), "2": (2, 10), "3": (5, 6)}
    t1 = {(c.model, c.size, c.dataset, c.metric): c.paper for c in load_paper_table("1").cells()}
    assert t1[("SILC", "B/16", "imagenet", "top1")] == 76.2  # the first zero-shot column is ImageNet
    assert t1[("SILC*", "L/16", "imagenet", "top1")] - t1[("CLIP (WebLI)", "L/16", "imagenet", "top1")] == (
        81.0 - 79.7
    )  # the prose's +1.3
    t2 = {(c.variant, c.dataset, c.metric): c.paper for c in load_paper_table("2").cells()}
    assert t2[("teacher", "imagenet", "top1")] == t1[("SILC*", "B/16", "imagenet", "top1")] == 75.3


def test_table_3_flags_its_a150_delta():
    t = load_paper_table("3")
    audit = delta_audit(t.cells(), {c.dataset: c.header for c in t.columns})
    assert audit == ["SILC B/16, A-150: printed +2.2, but 36.6 − 33.9 = +2.7"]


def test_committed_paper_tables_report_is_current(tmp_path, capsys):
    committed = (REPO_ROOT / "reports" / "paper_tables.md").read_text()
    out = tmp_path / "t.md"
    assert main(["table", "all", "--paper", "--results", "none", "--out", str(out)]) == 0
    assert out.read_text() == committed.replace("--out reports/paper_tables.md", f"--out {out}"), (
        "reports/paper_tables.md is stale: regenerate it with the command at its top"
    )


def _result(out: Path, model: str, task: str, dataset: str, metrics: dict, **kw) -> Path:
    r = Result(
        model=model,
        variant=kw.pop("variant", "teacher"),
        checkpoint_sha256=kw.pop("checkpoint_sha256", fixtures.registry_sha(model)),
        run_key=kw.pop("run_key", fixtures.MINIMAL_RUN_KEY),
        task=task,
        task_version=1,
        dataset=dataset,
        dataset_fingerprint="f",
        protocol=kw.pop("protocol", {}),
        metrics=metrics,
        precision="fp32",
        created=kw.pop("created", "2026-01-01T00:00:00+00:00"),
        **kw,
    )
    path = out / model.replace(":", "@") / task / f"{dataset}{kw.get('profile', '')}.json"
    write_result(path, r)
    return path


def test_measured_cells_deltas_marks_and_csv(tmp_path, capsys):
    res = tmp_path / "r"
    good = _result(res, "silc-b16", "zs-cls", "imagenet", {"top1": 75.0})
    _result(res, "clip-webli-b16", "zs-cls", "cifar100", {"top1": 60.0}, variant=None, protocol={"limit": 10})
    (res / "junk.json").write_text("[1]")
    assert main(["table", "1", "--results", str(res), "--paper"]) == 0
    md = capsys.readouterr().out
    assert "75.00 / 76.2 (-1.20)" in md
    assert "– / 72.3" in md  # no result: the paper value alone, never 0
    assert "--limit 10 (partial)" in md and "| 60.00 / 68.4 (-8.40) [" in md  # marked: never ranked
    assert "junk.json" in md  # left out, and said so
    assert main(["table", "1", "--results", str(res)]) == 0
    plain = capsys.readouterr().out
    assert "| B/8    | SILC*        | –" in plain
    assert main(["table", "1", "--results", str(res), "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(df.columns) == COLUMNS and len(df) == 80
    row = df[
        (df.model == "SILC") & (df["size"] == "B/16") & (df.dataset == "imagenet") & (df.task == "zs-cls")
    ]
    assert row.measured.item() == 75.0 and row.paper.item() == 76.2 and row.delta.item() == -1.2
    assert row.result.item() == str(good)
    assert main(["table", "3", "--paper", "--format", "latex", "--results", str(tmp_path / "none")]) == 0
    tex = capsys.readouterr().out
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\textbf{15.0}" in tex


EXAMPLE = Path(__file__).parent / "data" / "ov_seg_example.csv"


def test_import_fills_table_3(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["import", "--task", "ov-seg", str(EXAMPLE), "--out", str(out)]) == 0
    assert len(list(out.rglob("*.json"))) == 3
    assert main(["table", "3", "--paper", "--results", str(out)]) == 0
    md = capsys.readouterr().out
    # at the paper's decimals, ranked (not marked), and said where they come from
    assert "36.0 / 36.6 (-0.6)" in md and "33.5 / 33.9 (-0.4)" in md and "13.1 / 13.4" in md
    assert "imported from ov_seg_example.csv (CAT-Seg, measured outside silc-bench)" in md
    assert "precision unknown" not in md and "**36.0 / 36.6 (-0.6)" in md
    assert main(["check", str(out)]) == 0


def test_an_unpinned_entry_names_its_checkpoint_and_marks_other_weights(tmp_path, capsys):
    """silc-b16 pins no sha256: the folder's first result names the checkpoint its row
    stands for, and a result from other weights is marked (never ranked), not mixed in."""
    res = tmp_path / "r"
    first, other = "a" * 64, "b" * 64
    _result(res, "silc-b16", "zs-cls", "imagenet", {"top1": 75.0}, checkpoint_sha256=first)
    _result(res, "clip-webli-b16", "zs-cls", "imagenet", {"top1": 70.0}, variant=None)
    _result(res, "silc-b16", "zs-cls", "cifar100", {"top1": 80.0}, checkpoint_sha256=other,
            created="2026-02-01T00:00:00+00:00")  # fmt: skip
    _result(res, "clip-webli-b16", "zs-cls", "cifar100", {"top1": 70.0}, variant=None)
    assert main(["table", "1", "--results", str(res), "--paper"]) == 0
    md = capsys.readouterr().out
    assert "silc-b16: checkpoint aaaaaaaaaaaa… (the registry pins no sha256" in md
    assert "checkpoint bbbbbbbbbbbb…, not aaaaaaaaaaaa… that silc-b16 was first measured with here" in md
    assert "**75.00 / 76.2" in md  # the first checkpoint's cell keeps its rank
    assert "**80.00" not in md  # the other checkpoint's is not a clean competitor


def test_import_refuses_bad_rows_and_writes_nothing(tmp_path, capsys):
    good = EXAMPLE.read_text().splitlines()
    fresh = good[1].replace("ade847", "pc459")  # a new (model, dataset) pair
    cases = {
        "unknown ov-seg dataset": good[1].replace("ade847", "ade999"),
        "is not a number": fresh.replace("13.1", "high"),
        "outside 0-100": fresh.replace("13.1", "130"),
        "duplicate row": good[1],
        "1_3.1": fresh.replace("13.1", "1_3.1"),  # float() would read 13.1
    }
    for needle, bad in cases.items():
        f = tmp_path / "in.csv"
        f.write_text("\n".join([*good, bad]) + "\n")
        out = tmp_path / "r"
        assert main(["import", "--task", "ov-seg", str(f), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
        assert needle in err, err
        assert not out.exists()


def test_import_refuses_fractions_for_points(tmp_path, capsys):
    f = tmp_path / "in.csv"
    f.write_text(f"model,checkpoint_sha256,dataset,mIoU\nsilc-b16,{'a' * 64},ade847,0.155\n")
    assert main(["import", "--task", "ov-seg", str(f), "--out", str(tmp_path / "r")]) == 2
    assert "give points, not fractions" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_committed_shapes_report_is_current(capsys):
    """reports/shapes.md is rebuilt from the committed result files by `table shapes`."""
    committed = (REPO_ROOT / "reports" / "shapes.md").read_text()
    assert main(["table", "shapes", "--results", str(REPO_ROOT / "reports" / "shapes-results")]) == 0
    assert capsys.readouterr().out == committed, (
        "reports/shapes.md is stale: regenerate it with the command at its top"
    )
    assert (
        main(
            ["table", "shapes", "--results", str(REPO_ROOT / "reports" / "shapes-results"), "--format", "csv"]
        )
        == 0
    )
    df = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(df.columns) == COLUMNS and set(df.model) >= {"silc-tiny", "silc-tiny:student", "clip-tiny"}
    assert df[(df.model == "silc-tiny") & (df.metric == "top1")].measured.item() == 21.9444
    assert df[(df.model == "clip-tiny-seed2") & (df.metric == "top1")].measured.notna().all()  # seeds too


def test_table_4_is_built_from_results_and_marks_refined_rows(tmp_path, capsys):
    res = tmp_path / "r"
    _result(res, "tcl-b16", "zs-seg", "voc21", {"mIoU": 51.2}, variant=None, profile="tcl")
    _result(
        res, "tcl-b16", "zs-seg", "voc20", {"mIoU": 55.0}, variant=None, profile="tcl", options={"pamr": True}
    )
    assert main(["table", "4", "--results", str(res)]) == 0
    md = capsys.readouterr().out
    assert "| TCL                              | 51.20" in md
    assert "| TCL + PAMR †                     | –        | –       | –        | 55.00" in md


def test_table_4_marks_cells_that_rest_on_our_own_background_rule(tmp_path, capsys):
    res = tmp_path / "r"
    ours = {"background_rule_origin": "silc-bench"}
    _result(res, "silc-b16", "zs-seg", "voc21", {"mIoU": 40.0}, profile="tcl", protocol=ours)
    _result(res, "silc-b16", "zs-seg", "voc20", {"mIoU": 70.0}, profile="tcl")
    assert main(["table", "4", "--results", str(res)]) == 0
    md = capsys.readouterr().out
    row = next(line for line in md.splitlines() if line.startswith("| SILC"))
    assert "40.00 §" in row and "70.00 §" not in row and "70.00" in row
    assert "§ background by silc-bench's own rule" in md


def test_table_4_takes_the_default_variant_and_names_other_checkpoints(tmp_path, capsys):
    """A newer student result is not the SILC row (the teacher is silc-b16's default), and
    silc-b16 pins no sha256: a cell from a checkpoint other than the first is marked."""
    res = tmp_path / "r"
    a, b = "a" * 64, "b" * 64
    _result(res, "silc-b16", "zs-seg", "voc21", {"mIoU": 22.95}, profile="tcl", checkpoint_sha256=a)
    _result(res, "silc-b16:student", "zs-seg", "voc21", {"mIoU": 24.17}, variant="student", profile="tcl",
            checkpoint_sha256=a, created="2026-02-01T00:00:00+00:00")  # fmt: skip
    _result(res, "silc-b16", "zs-seg", "pc60", {"mIoU": 30.0}, profile="tcl", checkpoint_sha256=b,
            created="2026-03-01T00:00:00+00:00")  # fmt: skip
    assert main(["table", "4", "--results", str(res)]) == 0
    md = capsys.readouterr().out
    row = next(line for line in md.splitlines() if line.startswith("| SILC"))
    assert "22.95" in row and "24.17" not in row and "30.00 [1]" in row
    assert "[1] SILC: checkpoint bbbbbbbbbbbb…, not aaaaaaaaaaaa… that silc-b16 was first measured with" in md
    assert "variant student: the row is silc-b16's teacher" in md


@pytest.mark.parametrize(
    "args, needle",
    [(["shapes", "--format", "latex"], "markdown and csv forms only"), (["4", "--paper"], "no paper numbers"),
     (["shapes", "--paper"], "no paper numbers")],
)  # fmt: skip
def test_a_table_never_ignores_a_format_or_paper_it_cannot_honour(args, needle, tmp_path, capsys):
    assert main(["table", *args, "--results", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_table_all_in_latex_says_table_4_is_left_out(tmp_path, capsys):
    assert main(["table", "all", "--format", "latex", "--results", str(tmp_path)]) == 0  # empty: paper only
    assert "table 4 has no LaTeX form" in capsys.readouterr().err


def test_version(capsys):
    from silc_bench import __version__

    assert main(["--version"]) == 0 and capsys.readouterr().out.strip() == f"silc-bench {__version__}"

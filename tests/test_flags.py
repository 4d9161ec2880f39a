"""One convention for flags (cli/flags.py): lists take commas and repeats, the results folder
is `--results` everywhere (`--out` its alias where it was spelt so), `--device` defaults to
auto, every `--help` shows defaults; and `run` sweeps every (model, task, dataset)."""

from __future__ import annotations

import pytest

from silc_bench.cli import main
from silc_bench.cli.main import parser

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    "argv",
    [
        ["check", "--regression", "--models", "a,b"],
        ["check", "--regression", "--models", "a", "--models", "b"],
        ["check", "--regression", "--models", "a", "b"],
        ["check", "--regression", "--models", "a,b", "--models", "a"],
    ],
)
def test_list_flags_take_commas_and_repeats(argv):
    assert parser().parse_args(argv).models == ["a", "b"]


def test_figure_models_and_run_lists_follow_the_same_rule():
    a = parser().parse_args(["figure", "--models", "a", "--models", "b,c", "--dataset", "d"])
    assert a.models == ["a", "b", "c"]
    r = parser().parse_args(
        ["run", "--task", "zs-cls,fs-cls", "--model", "m", "--dataset", "imagefolder:/x,y"]
    )
    assert r.task == ["zs-cls", "fs-cls"] and r.dataset == ["imagefolder:/x,y"]  # a path is never split


@pytest.mark.parametrize(
    "command", [["run", "--task", "t", "--model", "m"], ["import", "--task", "t", "f"], ["demo"]]
)
def test_results_folder_is_results_with_out_as_its_alias(command):
    assert parser().parse_args([*command, "--results", "R"]).results == "R"
    assert parser().parse_args([*command, "--out", "R"]).results == "R"
    assert parser().parse_args(command).results == "results"


def test_device_defaults_to_auto_wherever_a_model_runs():
    assert parser().parse_args(["run", "--task", "t", "--model", "m"]).device == "auto"
    assert parser().parse_args(["check"]).device == "auto"


def test_every_help_shows_defaults(capsys):
    for command, needle in [
        ("run", "(default: results)"),
        ("check", "(default: auto)"),
        ("figure", "(default: 6)"),
        ("demo", "(default: silc-tiny)"),
    ]:
        assert main([command, "--help"]) == 0
        out = capsys.readouterr().out
        assert needle in out, (command, out)
        assert "(default: None)" not in out and "(default: False)" not in out


def test_a_sweep_runs_every_combination_and_prints_one_table(tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["run", "--task", "zs-cls,retrieval", "--model", "tiny-random,clip-tiny"]
    argv += ["--dataset", "shapes-cls,shapes-retrieval", "--results", str(out), "--quiet", "--device", "cpu"]
    assert main([*argv, "--limit", "12"]) == 0
    captured = capsys.readouterr()
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert len(files) == 4, files
    assert {f.split("/")[1] for f in files} == {"zs-cls", "retrieval"}
    assert {f.split("/")[0] for f in files} == {"tiny-random", "clip-tiny"}
    table = [ln for ln in captured.out.splitlines() if ln.startswith("| ") and "---" not in ln]
    assert len(table) == 1 + 4, captured.out  # one header, one row per evaluation


def test_a_sweep_refuses_a_dataset_no_task_has_and_weights_for_several_models(tmp_path, capsys):
    argv = ["run", "--task", "zs-cls,retrieval", "--model", "tiny-random", "--results", str(tmp_path)]
    assert main([*argv, "--dataset", "shapes-clz"]) == 2
    assert "shapes-cls" in capsys.readouterr().err  # did you mean
    argv = ["run", "--task", "zs-cls", "--model", "tiny-random,clip-tiny", "--weights", "w.safetensors"]
    assert main(argv) == 2
    assert "one --model" in capsys.readouterr().err
    assert main(["run", "--task", "zs-cls,", "--model", "tiny-random"]) == 2
    assert "empty task name" in capsys.readouterr().err

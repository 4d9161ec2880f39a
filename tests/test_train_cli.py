"""`silc-bench train` as a user runs it: --steps/--set/--out recorded, bad overrides refused in
one line, --resume extending a finished run, --quiet, the progress lines, and train-plot."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from PIL import Image
from safetensors.torch import load_file

from silc_bench.cli import main
from silc_bench.data.synthetic import CLASSES, draw

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 16, "layers": 1, "width": 16, "patch_size": 8, "head_width": 8},
    "text_cfg": {"context_length": 8, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1},
}


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SILC config on 8 generated pairs: rsqrt without cooldown, so a run's first steps do
    not depend on its length (an extended run equals one trained that long at once)."""
    root = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    (root / "img").mkdir()
    rows = []
    for i, (name, (color, shape)) in enumerate(sorted(CLASSES.items())[:8]):
        draw(color, shape, 24, rng).save(root / "img" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "caption": f"a {name.replace('_', ' ')}"})
    with (root / "pairs.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["image", "caption"])
        writer.writeheader()
        writer.writerows(rows)
    raw: dict[str, Any] = {
        "model": {"config": TINY},
        "data": {"manifest": str(root / "pairs.csv")},
        "objective": {"head": {"hidden": 16, "bottleneck": 8, "out_dim": 32}, "n_local": 1},
        "optim": {"lr": 2e-3, "steps": 50, "weight_decay": 0.0, "schedule": "rsqrt"},
        "batch_size": 4,
        "workers": 0,
        "checkpoint_every": 0,
        "out_dir": str(root / "unused"),
        "export": {"name": "tiny"},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _train(config: Path, out: Path, *flags: str) -> int:
    return main(["train", "--config", str(config), "--out", str(out), *flags])


def test_steps_and_set_are_recorded_in_the_run(config, tmp_path, capsys):
    out = tmp_path / "run"
    code = _train(config, out, "--steps", "2", "--set", "optim.lr=1e-3", "--set", "objective.head.out_dim=24")
    assert code == 0
    saved_text = (out / "config.yaml").read_text()
    saved = yaml.safe_load(saved_text)
    assert saved["optim"]["steps"] == 2 and saved["optim"]["lr"] == 1e-3
    assert saved["objective"]["head"]["out_dim"] == 24 and saved["out_dir"] == str(out)
    assert saved_text.startswith("# the config file with the command line's overrides: --set optim.lr=1e-3")
    entry = yaml.safe_load((out / "export" / "tiny.yaml").read_text())["models"]["tiny"]
    assert "--set optim.lr=1e-3 --set objective.head.out_dim=24 --steps 2 --out" in entry["reproduce"]
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
    shown = capsys.readouterr()
    assert "step 2/2" in shown.err and "contrastive=" in shown.err and "H(teacher)=" in shown.err
    assert "checkpoint " in shown.err  # the line a checkpoint leaves on screen
    assert "silc-bench train: 2 steps; 2 trained in" in shown.out and "curves" in shown.out


@pytest.mark.parametrize(
    "flag, says",
    [
        ("optim.stpes=3", "unknown config key 'optim.stpes'. Did you mean 'optim.steps'"),
        ("optim.steps=abc", "optim.steps: expected a whole number, found 'abc'"),
        ("optim.lr=-1", "optim.lr must be positive"),
        ("optim.lr.x=1", "optim.lr is a value, not a section"),
        ("steps", "expected KEY=VALUE"),
        ("objective.global_scale=[0.5", "not a YAML value"),
    ],
)
def test_a_bad_set_is_one_line_and_exit_2(config, tmp_path, capsys, flag, says):
    assert _train(config, tmp_path / "run", "--set", flag) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("silc-bench: error: ") and says in err, err
    assert not (tmp_path / "run").exists()


def test_bad_steps_is_a_usage_error(config, tmp_path, capsys):
    assert _train(config, tmp_path / "run", "--steps", "0") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--steps: expected a positive whole number" in err


def test_a_bad_set_answers_before_torch_loads(config, tmp_path):
    probe = (
        "import sys; from silc_bench.cli import main\n"
        f"code = main(['train', '--config', {str(config)!r}, '--set', 'optim.stpes=3'])\n"
        "print(code, 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert proc.stdout.split() == ["2", "False"], proc.stdout + proc.stderr


def test_quiet_prints_nothing(config, tmp_path, capsys):
    assert _train(config, tmp_path / "run", "--steps", "1", "--quiet") == 0
    shown = capsys.readouterr()
    assert shown.out == "" and shown.err == ""
    assert (tmp_path / "run" / "export" / "tiny.safetensors").is_file()


def test_resume_extends_a_finished_run_as_if_trained_that_long(config, tmp_path, capsys):
    ext, once = tmp_path / "ext", tmp_path / "once"
    assert _train(config, ext, "--steps", "2", "--quiet") == 0
    last = ext / "checkpoints" / "step-00000002.pt"
    assert _train(config, ext, "--steps", "4", "--resume", str(last)) == 0
    err = capsys.readouterr().err
    assert f"extending the finished 2-step run of {last} to 4 steps" in err
    assert [json.loads(x)["step"] for x in (ext / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3, 4]
    assert yaml.safe_load((ext / "config.yaml").read_text())["optim"]["steps"] == 4
    assert _train(config, once, "--steps", "4", "--quiet") == 0
    a, b = (load_file(str(run / "export" / "tiny.safetensors")) for run in (ext, once))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)  # rsqrt: the same 4 steps


def test_resume_refuses_to_change_the_length_otherwise(config, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(config, run, "--steps", "3", "--set", "checkpoint_every=1", "--quiet") == 0
    for steps, checkpoint, says in (
        ("5", "step-00000002.pt", "the run is at step 2 of 3"),  # not finished: its schedule would change
        ("2", "step-00000003.pt", "the run is finished"),  # a finished run cannot shrink
    ):
        resume = str(run / "checkpoints" / checkpoint)
        assert _train(config, run, "--steps", steps, "--set", "checkpoint_every=1", "--resume", resume) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err and "may only grow" in err, err


def test_train_plot_draws_the_curves(config, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(config, run, "--steps", "3", "--quiet") == 0
    assert (run / "train_curves.png").is_file()  # written at the end of training
    target = tmp_path / "figs" / "curves.png"
    assert main(["train-plot", str(run), "--out", str(target)]) == 0
    assert capsys.readouterr().out.strip() == str(target)
    with Image.open(target) as img:
        assert img.format == "PNG" and img.width > 600 and img.height > 200


def test_train_plot_bad_input_is_one_line(tmp_path, capsys):
    assert main(["train-plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no train_log.jsonl" in err
    (tmp_path / "train_log.jsonl").write_text('{"step": 1, "lr": 0.1, "loss": 2.0}\nnot json\n')
    assert main(["train-plot", str(tmp_path)]) == 2
    assert "train_log.jsonl:2: not a JSON line" in capsys.readouterr().err
    assert main(["train-plot", str(tmp_path), "--out", str(tmp_path / "x.jpg")]) == 2
    assert "PNG" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flag, says",
    [
        ("optim.lr=1e400", "optim.lr must be a finite number, found inf"),
        ("optim.lr=.nan", "optim.lr must be a finite number, found nan"),
        ("objective.student_temp=.inf", "objective.student_temp must be a finite number"),
        ("optim.weight_decay=.inf", "optim.weight_decay must be a finite number"),
        ("objective.local_scale=[0.05, .nan]", "objective.local_scale[1] must be a finite number"),
    ],
)
def test_a_non_finite_number_is_refused(config, tmp_path, capsys, flag, says):
    assert _train(config, tmp_path / "run", "--set", flag) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and says in err, err
    assert not (tmp_path / "run").exists()


def test_a_non_finite_number_in_the_file_is_refused(config, tmp_path, capsys):
    raw = yaml.safe_load(config.read_text())
    raw["export"]["max_file_mb"] = float("inf")
    path = tmp_path / "inf.yaml"
    path.write_text(yaml.safe_dump(raw))  # written as `.inf`
    assert _train(path, tmp_path / "run") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "export.max_file_mb must be a finite number, found inf" in err, err


def test_a_diverged_run_stops_at_its_first_non_finite_loss(config, tmp_path, capsys):
    run = tmp_path / "run"
    assert _train(config, run, "--steps", "6", "--set", "optim.lr=1e30", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the loss is not finite" in err and "lower optim.lr" in err, err
    lines = (run / "train_log.jsonl").read_text().splitlines()
    step = int(err.split("step ")[1].split(":")[0])
    assert len(lines) == step - 1  # the non-finite step left no line
    for line in lines:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))


@pytest.mark.parametrize("flag", ["optim=5", "optim.steps=abc", "optim=null"])
def test_steps_does_not_hide_a_bad_set(config, tmp_path, capsys, flag):
    assert _train(config, tmp_path / "run", "--set", flag, "--steps", "2", "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("silc-bench: error: --set ") and "expected" in err, err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def finished(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished 1-step run, whose checkpoint the tests below edit."""
    out = tmp_path_factory.mktemp("finished") / "run"
    assert _train(config, out, "--steps", "1", "--quiet") == 0
    return out


def _edit(ckpt: dict[str, Any], field: str) -> dict[str, Any]:
    import torch

    edited = dict(ckpt)
    if field == "step":
        edited["step"] = "five"
    elif field == "negative step":
        edited["step"] = -1
    elif field == "no model":
        del edited["model"]
    elif field == "optimizer":
        edited["optimizer"] = {"x": 1}
    else:
        model = dict(ckpt["model"])
        key = next(iter(model))
        if field == "shape":
            model[key] = torch.zeros(3, 3)
        else:  # a missing key
            del model[key]
        edited["model"] = model
    return edited


@pytest.mark.parametrize(
    "field, says",
    [
        ("step", "a damaged checkpoint: step must be a whole number >= 0, found 'five'"),
        ("negative step", "a damaged checkpoint: step must be a whole number >= 0, found -1"),
        ("no model", "a damaged checkpoint: it has no 'model'"),
        ("shape", "not a checkpoint of this model/config (size mismatch for "),
        ("missing", "not a checkpoint of this model/config (Missing key(s) in state_dict"),
        ("optimizer", "not a checkpoint of this model/config (no key 'param_groups')"),
    ],
)
def test_resume_from_an_edited_checkpoint_is_one_line(config, finished, tmp_path, capsys, field, says):
    import torch

    last = finished / "checkpoints" / "step-00000001.pt"
    real = torch.load(str(last), map_location="cpu", weights_only=True)
    bad = tmp_path / "bad.pt"
    torch.save(_edit(real, field), bad)
    assert _train(config, finished, "--steps", "2", "--resume", str(bad), "--quiet") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--resume {bad}: " in err and says in err, err

"""Bad input: one clear line on stderr, exit code 2, and never a result file."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from silc_bench.cli import main
from tests import fixtures


def fails(args: list[str], capsys, *needles: str) -> str:
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("silc-bench: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for n in needles:
        assert n.lower() in err.lower(), err
    return err


def base(data_root: Path, out: Path) -> list[str]:
    return ["--data-root", str(data_root), "--out", str(out), "--device", "cpu", "--quiet", "--workers", "0"]


def run(task: str, dataset: str, root: Path, out: Path, *extra: str, model: str = "tiny-random") -> list[str]:
    """`silc-bench run` arguments for one task/dataset on the tiny random model."""
    return ["run", "--task", task, "--model", model, "--dataset", dataset, *extra, *base(root, out)]


def no_results(out: Path) -> None:
    assert not list(out.rglob("*.json")), list(out.rglob("*"))


def test_unknown_names(data_root, tmp_path, capsys):
    b = base(data_root, tmp_path)
    fails(["run", "--task", "zscls", "--model", "tiny-random", *b], capsys, "did you mean 'zs-cls'")
    fails(["run", "--task", "zs-cls", "--model", "silc-b61", *b], capsys, "unknown model", "silc-b16")
    fails(
        ["run", "--task", "zs-cls", "--model", "tiny-random", "--dataset", "imagenett", *b],
        capsys,
        "did you mean 'imagenet'",
    )
    fails(["run", "--task", "zs-cls", "--model", "silc-b16:assistant", *b], capsys, "teacher, student")
    fails(["run", "--task", "zs-cls", "--model", "open_clip:ViT-Tiny-P8", *b], capsys, "--weights")
    fails(
        ["run", "--task", "zs-cls", "--model", "open_clip:ViT-Q-16", "--weights", "x.pt", *b],
        capsys,
        "open_clip architecture",
    )
    fails(
        ["run", "--task", "zs-cls", "--model", "tiny-random", "--protocol", "big_vison", *b],
        capsys,
        "did you mean 'big_vision'",
    )
    no_results(tmp_path)


def test_missing_paths(data_root, tmp_path, capsys):
    fails(
        run("zs-cls", "cifar100", tmp_path / "nope", tmp_path),
        capsys,
        "not found",
        "nope",
    )
    fails(
        run("zs-cls", f"imagefolder:{tmp_path / 'absent'}", data_root, tmp_path),
        capsys,
        "absent",
    )
    fails(
        [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "open_clip:ViT-Tiny-P8",
            "--weights",
            str(tmp_path / "w.safetensors"),
            "--dataset",
            "cifar100",
            *base(data_root, tmp_path),
        ],
        capsys,
        "w.safetensors",
    )
    err = fails(
        run("zs-cls", "cifar100", data_root, tmp_path, model="silc-b16"),
        capsys,
        "silc-b16.safetensors",
        "SILC_BENCH_WEIGHTS",
    )
    assert "not on this machine" in err
    no_results(tmp_path)


def test_wrong_layouts(data_root, tmp_path, capsys):
    root = tmp_path / "root"
    flat = root / "flat" / "test"
    flat.mkdir(parents=True)
    fixtures.tiny_png(flat / "a.png")
    fails(
        run("zs-cls", f"imagefolder:{root / 'flat'}", root, tmp_path / "o"),
        capsys,
        "one folder per class",
        "a.png",
    )
    (root / "nosplit" / "cats").mkdir(parents=True)
    fails(
        run("zs-cls", f"imagefolder:{root / 'nosplit'}", root, tmp_path / "o"),
        capsys,
        "test/",
        "val/",
        "cats/",
    )
    shutil.copytree(data_root / "shapes", root / "badnames")
    (root / "badnames" / "classnames.txt").write_text("one\ntwo\n")
    fails(
        run("zs-cls", f"imagefolder:{root / 'badnames'}", root, tmp_path / "o"),
        capsys,
        "classnames.txt",
        "2 names for 5",
    )
    fails(
        run("fs-cls", f"imagefolder:{root / 'nosplit'}", root, tmp_path / "o"),
        capsys,
        "train/",
    )
    (root / "imagenet" / "val" / "n00000001").mkdir(parents=True)
    fails(
        run("zs-cls", "imagenet", root, tmp_path / "o"),
        capsys,
        "1000 wnid folders",
        "found 1",
    )
    (root / "cifar-100-python").mkdir()
    fails(
        run("zs-cls", "cifar100", root, tmp_path / "o"),
        capsys,
        "meta",
    )
    (root / "coco").mkdir()
    fails(
        run("retrieval", "coco", root, tmp_path / "o"),
        capsys,
        "dataset_coco.json",
    )
    no_results(tmp_path / "o")


def test_undecodable_image_named(data_root, tmp_path, capsys):
    ds = tmp_path / "broken"
    shutil.copytree(data_root / "shapes", ds)
    bad = ds / "test" / "green_square" / "0002.png"
    fixtures.corrupt_image(bad)
    fails(
        run("zs-cls", f"imagefolder:{ds}", data_root, tmp_path / "o"),
        capsys,
        "cannot decode image",
        str(bad),
    )
    no_results(tmp_path / "o")


def _run_weights(path: Path, data_root: Path, out: Path) -> list[str]:
    return [
        "run",
        "--task",
        "zs-cls",
        "--model",
        "open_clip:ViT-Tiny-P8",
        "--weights",
        str(path),
        "--dataset",
        f"imagefolder:{data_root / 'shapes'}",
        *base(data_root, out),
    ]


def test_bad_checkpoints(trained_weights, data_root, tmp_path, capsys):
    out = tmp_path / "o"
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 100)
    fails(_run_weights(garbage, data_root, out), capsys, "corrupt")
    garbage_pt = tmp_path / "garbage.pt"
    garbage_pt.write_bytes(b"PK\x03\x04 nope")
    fails(_run_weights(garbage_pt, data_root, out), capsys, "corrupt")

    sd = load_file(str(trained_weights))
    sd.pop("visual.proj")
    sd["visual.extra_head.weight"] = torch.zeros(2)
    mismatched = tmp_path / "mismatched.safetensors"
    save_file(sd, str(mismatched))
    fails(
        _run_weights(mismatched, data_root, out),
        capsys,
        "missing keys [visual.proj]",
        "unexpected keys [visual.extra_head.weight]",
    )

    sd = load_file(str(trained_weights))
    sd["visual.proj"] = torch.zeros(3, 3)
    wrong_shape = tmp_path / "wrong_shape.safetensors"
    save_file(sd, str(wrong_shape))
    fails(_run_weights(wrong_shape, data_root, out), capsys, "shapes do not match", "visual.proj")

    sd = load_file(str(trained_weights))
    sd["visual.proj"] = torch.full_like(sd["visual.proj"], float("nan"))
    nan = tmp_path / "nan.safetensors"
    save_file(sd, str(nan))
    fails(_run_weights(nan, data_root, out), capsys, "NaN", "image features")
    no_results(out)


class Payload:
    """Unpickling this would run code: weights_only=True must refuse it."""

    def __reduce__(self):
        return (print, ("pwned",))


def test_pickle_with_code_is_refused(trained_weights, data_root, tmp_path, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": load_file(str(trained_weights)), "payload": Payload()}, str(evil))
    err = fails(_run_weights(evil, data_root, tmp_path / "o"), capsys, "refused to load", "weights_only")
    assert "weights_only=False" not in err and "reference to print" in err
    no_results(tmp_path / "o")


def test_cifar_pickle_with_code_is_refused(data_root, tmp_path, capsys):
    root = tmp_path / "root"
    shutil.copytree(data_root / "cifar-100-python", root / "cifar-100-python")
    with open(root / "cifar-100-python" / "meta", "wb") as f:
        pickle.dump({"fine_label_names": Payload()}, f)
    fails(
        run("zs-cls", "cifar100", root, tmp_path / "o"),
        capsys,
        "refusing to load builtins.print",
    )


def test_unknown_yaml_key_is_an_error(tmp_path, monkeypatch, capsys):
    from silc_bench.core.paths import REPO_ROOT

    tasks = tmp_path / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", tasks)
    with open(tasks / "zs-cls" / "cifar100.yaml", "a") as f:
        f.write("protocl: {templates: cifar}\n")
    monkeypatch.setenv("SILC_BENCH_TASKS", str(tasks))
    fails(
        ["run", "--task", "zs-cls", "--model", "tiny-random", "--dataset", "cifar100"],
        capsys,
        "unknown key",
        "protocl",
    )
    (tasks / "zs-cls" / "cifar100.yaml").write_text(
        "protocol: {templats: cifar}\ndata: {format: cifar100, path: x, splits: {eval: test}}\n"
    )
    fails(
        [
            "run",
            "--task",
            "zs-cls",
            "--model",
            "tiny-random",
            "--dataset",
            "cifar100",
            "--data-root",
            str(tmp_path),
        ],
        capsys,
        "templats",
    )


def test_argparse_errors_are_one_line(capsys):
    assert main(["run", "--task", "zs-cls"]) == 2  # returned, not raised: main() is callable
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--model" in err and err.startswith("silc-bench: error: run:")

"""`silc-bench figure`: the qualitative grid and the confusion pairs."""

from __future__ import annotations

import numpy as np
from PIL import Image

from silc_bench.cli import main
from silc_bench.results.figures import confusion_pairs, confusions_table, palette
from tests import seg_fixtures


def test_grid_and_confusions_from_running_the_models(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SILC_BENCH_CACHE", str(tmp_path / "cache"))
    root = seg_fixtures.make_all(tmp_path / "seg", n=2)
    out = tmp_path / "fig"
    args = ["figure", "--models", "tiny-random,clip-tiny", "--dataset", "voc21", "--n", "2"]
    args += ["--out", str(out), "--results", str(tmp_path / "r"), "--data-root", str(root), "--confusions"]
    assert main(args) == 0, capsys.readouterr().err
    captured = capsys.readouterr()
    assert "| true class" in captured.out and "tiny-random" in captured.out
    (png,) = list(out.iterdir())  # --out receives only the figure
    assert png.suffix == ".png"
    w, h = Image.open(png).size
    assert w > 4 * 100 and h > 2 * 100  # four panels across, two rows


def test_confusion_pairs_and_the_empty_table():
    classes = ["background", "chair", "swivel chair"]
    a = np.array([[90, 5, 5], [0, 100, 0], [0, 60, 40]])  # A calls swivel chairs chairs
    b = np.array([[90, 5, 5], [0, 100, 0], [0, 5, 95]])
    pairs = confusion_pairs(a, b, classes)
    assert pairs == [("swivel chair", "chair", 0.6, 0.05)]
    assert "60.0%" in confusions_table(["A", "B"], pairs)
    assert "none" in confusions_table(["A", "B"], confusion_pairs(b, a, classes)[:0])


def test_colour_classes_are_drawn_in_their_colour():
    pal = palette(["background", "red", "swivel chair"])
    assert tuple(pal[1]) == (255, 0, 0) and tuple(pal[0]) == (64, 64, 64)

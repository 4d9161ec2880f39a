"""Can the ShapesTiny image tower learn shape at all? A supervised check, shape labels only.

The shipped contrastive models get colour right and shape at chance. This trains the same
image tower (ShapesTiny-P8, from scratch) plus a linear head on ShapesWorld single-object
scenes labelled by shape alone (6 classes, random colours and textures), and reports
held-out accuracy along the way, so "capacity" and "steps" can be told apart from "the
contrastive signal never asks for shape".

    python -m silc_bench.bench.shape_probe [--steps 600] [--train 2700] [--fresh]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch
from PIL import ImageDraw

from silc_bench.data.shapesworld import COLOURS, SHAPES, _background, _draw_shape


def scenes(rng: np.random.Generator, n: int, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """n single-object scenes as the cls split draws them, labelled by shape."""
    xs, ys = [], []
    colours = list(COLOURS.values())
    for _ in range(n):
        img, _ = _background(rng, size)
        shape = int(rng.integers(len(SHAPES)))
        r = float(rng.uniform(size * 0.2, size * 0.32))
        cx, cy = (float(v) for v in rng.uniform(r, size - r, size=2))
        _draw_shape(ImageDraw.Draw(img), SHAPES[shape], cx, cy, r, colours[int(rng.integers(len(colours)))])
        xs.append(np.asarray(img, dtype=np.float32) / 255.0)
        ys.append(shape)
    x = torch.from_numpy(np.stack(xs)).permute(0, 3, 1, 2)
    return (x - 0.45) / 0.27, torch.tensor(ys)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--train", type=int, default=2700, help="fixed training scenes (ignored with --fresh)")
    ap.add_argument("--fresh", action="store_true", help="new scenes every step instead of a fixed set")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--eval-every", type=int, default=100)
    args = ap.parse_args()

    from silc_bench.models.arch import build_named

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    tower = build_named("ShapesTiny-P8").visual
    model = torch.nn.Sequential(tower, torch.nn.Linear(128, len(SHAPES)))
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.1)

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        return (
            args.lr * 0.5 * (1 + math.cos(math.pi * (step - args.warmup) / max(1, args.steps - args.warmup)))
        )

    test_x, test_y = scenes(np.random.default_rng(123), 600)
    train_x, train_y = (None, None) if args.fresh else scenes(rng, args.train)
    t0 = time.perf_counter()
    print(
        f"chance {100 / len(SHAPES):.1f}%; {'fresh scenes' if args.fresh else f'{args.train} fixed scenes'}"
    )
    for step in range(1, args.steps + 1):
        if args.fresh:
            x, y = scenes(rng, args.batch)
        else:
            idx = torch.from_numpy(rng.integers(0, args.train, args.batch))
            x, y = train_x[idx], train_y[idx]
        for g in opt.param_groups:
            g["lr"] = lr_at(step - 1)
        model.train()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                acc = (model(test_x).argmax(1) == test_y).float().mean().item() * 100
            print(f"step {step}: loss {loss.item():.3f}, held-out shape accuracy {acc:.1f}% "
                  f"({time.perf_counter() - t0:.0f}s)", flush=True)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

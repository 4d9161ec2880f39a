"""Tiny datasets written in the exact on-disk layouts the real loaders read."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from silc_bench.data.synthetic import CLASSES, draw, make_imagefolder


def imagefolder(path: Path, **kw) -> Path:
    return make_imagefolder(path, **kw)


def imagenet(root: Path, per_class_train: int = 3, per_class_val: int = 1, filled: int = 6) -> Path:
    """`root/imagenet/{train,val}/<wnid>/*.JPEG`: 1000 wnid folders, images in the first `filled`."""
    rng = np.random.default_rng(1)
    shapes = list(CLASSES.values())
    for split, n in (("train", per_class_train), ("val", per_class_val)):
        for c in range(1000):
            folder = root / "imagenet" / split / f"n{1440764 + c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            if c < filled:
                color, shape = shapes[c % len(shapes)]
                for i in range(n):
                    draw(color, shape, 40, rng).save(folder / f"{folder.name}_{i}.JPEG", "JPEG")
    return root


def cifar100(root: Path, n_train_per_class: int = 3, n_test_per_class: int = 1) -> Path:
    """torchvision's python layout: pickled dicts with `data` (N, 3072) uint8 and fine labels."""
    base = root / "cifar-100-python"
    base.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2)
    names = [f"class_{i:02d}" if i % 10 else f"aquarium_fish_{i}" for i in range(100)]
    with open(base / "meta", "wb") as f:
        pickle.dump({"fine_label_names": names, "coarse_label_names": ["x"] * 20}, f)
    for split, n in (("train", n_train_per_class), ("test", n_test_per_class)):
        labels = np.repeat(np.arange(100), n)
        centers = rng.integers(0, 255, size=(100, 3))
        data = np.clip(centers[labels][:, :, None] + rng.normal(0, 30, (len(labels), 3, 1024)), 0, 255)
        with open(base / split, "wb") as f:
            pickle.dump(
                {
                    b"data": data.astype(np.uint8).reshape(len(labels), 3072),
                    b"fine_labels": labels.tolist(),
                    b"filenames": [f"{i}.png".encode() for i in range(len(labels))],
                },
                f,
            )
    return root


_COLOURS = ["red", "green", "blue", "yellow", "purple"]
_SHAPES = ["circle", "square", "triangle"]


def karpathy(root: Path, name: str = "coco", n_test: int = 12, n_train: int = 2) -> Path:
    """COCO (`dataset_coco.json`, `val2014/`, with `filepath`) or Flickr30k layout."""
    rng = np.random.default_rng(3)
    base = root / name
    image_dir = "val2014" if name == "coco" else "flickr30k-images"
    (base / image_dir).mkdir(parents=True, exist_ok=True)
    images = []
    palette = {
        "red": (220, 40, 40),
        "green": (40, 200, 60),
        "blue": (40, 70, 220),
        "yellow": (230, 210, 40),
        "purple": (150, 50, 190),
    }
    for i in range(n_test + n_train):
        col, shp = _COLOURS[i % 5], _SHAPES[i % 3]
        fname = f"COCO_val2014_{i:012d}.jpg" if name == "coco" else f"{1000 + i}.jpg"
        draw(palette[col], shp, 40, rng).save(base / image_dir / fname, "JPEG")
        n_caps = 5 + (i % 3 == 0)  # COCO has some images with 6 captions
        sents = [{"raw": f"A {col} {shp} number {j}. ", "tokens": []} for j in range(n_caps)]
        entry = {"filename": fname, "split": "test" if i < n_test else "train", "sentences": sents}
        if name == "coco":
            entry["filepath"] = "val2014"
        images.append(entry)
    split_file = "dataset_coco.json" if name == "coco" else "dataset_flickr30k.json"
    (base / split_file).write_text(json.dumps({"images": images, "dataset": name}))
    return root


def corrupt_image(path: Path) -> None:
    path.write_bytes(b"this is not an image")


def tiny_png(path: Path) -> None:
    Image.new("RGB", (8, 8)).save(path)


def train_tiny(shapes_dir: Path, out: Path, steps: int = 8, seed: int = 0) -> Path:
    """A few CLIP-loss steps on the generated shapes, so predictions vary across images.

    A random model sends every image to one class, which makes a parity test weak: this
    gives the tiny model real, image-dependent rankings in a few seconds.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    import silc_bench.models.resolve  # noqa: F401  (registers ViT-Tiny-P8)
    from silc_bench.models.preprocess import Preprocess

    torch.manual_seed(seed)
    model = open_clip.create_model("ViT-Tiny-P8", pretrained=None, load_weights=False)
    tok = open_clip.get_tokenizer("ViT-Tiny-P8")
    tf = Preprocess(size=32).transform()
    files = sorted((shapes_dir / "train").glob("*/*.png"))
    images = torch.stack([tf(Image.open(f)) for f in files])
    captions = tok([f"a photo of a {f.parent.name.replace('_', ' ')}." for f in files])
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3)
    for _ in range(steps):
        img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(captions), dim=-1)
        logits = model.logit_scale.exp() * img @ txt.T
        labels = torch.arange(len(files))
        loss = (
            torch.nn.functional.cross_entropy(logits, labels)
            + torch.nn.functional.cross_entropy(logits.T, labels)
        ) / 2
        opt.zero_grad()
        loss.backward()
        opt.step()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out))
    return out


def run_args(task: str, model: str, dataset: str, out: Path, data_root: Path, *extra: str) -> list[str]:
    """`silc-bench run` arguments on the CPU, quiet, without DataLoader workers."""
    common = [
        "--out",
        str(out),
        "--data-root",
        str(data_root),
        "--device",
        "cpu",
        "--quiet",
        "--workers",
        "0",
    ]
    return ["run", "--task", task, "--model", model, "--dataset", dataset, *common, *extra]


def registry_sha(name: str) -> str:
    """The checkpoint sha256 a result must record to stand for registry entry `name` ("0"*64
    for an entry that pins none)."""
    from silc_bench.config import load_models
    from silc_bench.core.hashing import hash_obj

    spec = load_models().get(name.partition(":")[0])
    want = (spec.weights.get("sha256") if spec is not None else None) or []
    want = want if isinstance(want, list) else [want]
    return "0" * 64 if not want else want[0] if len(want) == 1 else hash_obj(want)


MINIMAL_RUN_KEY = {"model": {}}  # hand-made results: a run key, as every result silc-bench writes has

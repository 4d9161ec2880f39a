"""Shared fixtures. Every test runs with its own cache and weights folders (no home dirs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from silc_bench.models.arch import register_configs
from tests import fixtures


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("env")
    os.environ["SILC_BENCH_CACHE"] = str(base / "cache")
    os.environ["SILC_BENCH_WEIGHTS"] = str(base / "weights")
    os.environ.pop("SILC_BENCH_CHECKPOINTS", None)
    os.environ.pop("SILC_BENCH_TASKS", None)
    register_configs()  # the tests build the shipped tiny architectures with open_clip directly
    yield


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data root holding every layout: imagenet, cifar100, coco, flickr30k, shapes."""
    root = tmp_path_factory.mktemp("data")
    fixtures.imagenet(root)
    fixtures.cifar100(root)
    fixtures.karpathy(root, "coco")
    fixtures.karpathy(root, "flickr30k", n_test=10)
    fixtures.imagefolder(root / "shapes", n_train=6, n_test=6, size=40)
    return root


@pytest.fixture(scope="session")
def tiny_model():
    from silc_bench.models import load_model, parse_model_ref

    return load_model(parse_model_ref("tiny-random"))


@pytest.fixture(scope="session")
def trained_weights(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """safetensors of a tiny ViT-Tiny-P8 briefly trained on the shapes fixture."""
    return fixtures.train_tiny(data_root / "shapes", tmp_path_factory.mktemp("w") / "tiny.safetensors")


@pytest.fixture(scope="session")
def trained_model(trained_weights: Path):
    from silc_bench.models import load_model, parse_model_ref

    return load_model(parse_model_ref("open_clip:ViT-Tiny-P8", str(trained_weights)))


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is as fast, and immune to thread contention on a busy machine.
    Modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

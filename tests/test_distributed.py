"""torchrun with 2 CPU processes (gloo) gives the numbers of one process, for every task."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from silc_bench.cli import main
from tests.fixtures import run_args

# Each torchrun launch costs 10-35 s on 2 cores (every rank imports torch): `make test`
# (CI) keeps one launch per family (image features, sliding windows, a refusal, an error on
# one rank), and the `slow` marker leaves the rest to `make test-all`.
SLOW = pytest.mark.slow
TASKS = [  # (task, model, dataset)
    ("zs-cls", "silc-tiny", "shapes-cls"),
    pytest.param("fs-cls", "silc-tiny", "shapes-cls", marks=SLOW),
    pytest.param("retrieval", "silc-tiny", "shapes-retrieval", marks=SLOW),
    ("zs-seg", "pacl-tiny", "shapes-seg"),
]


def torchrun(args: list[str], nproc: int = 2, timeout: float = 240, env_extra: dict | None = None):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SILC_BENCH_DIST_TIMEOUT": "60", **(env_extra or {})}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        str(nproc),
        "-m",
        "silc_bench",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def _result(folder: Path) -> dict:
    files = [p for p in folder.rglob("*.json")]
    assert len(files) == 1, files
    return json.loads(files[0].read_text())


@pytest.mark.parametrize("task,model,dataset", TASKS)
def test_two_ranks_equal_one_process(task, model, dataset, tmp_path, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    extra = ["--no-cache", "--limit", "40"] if task == "zs-seg" else ["--no-cache"]
    assert main(run_args(task, model, dataset, one, tmp_path / "data", *extra)) == 0, capsys.readouterr().err
    proc = torchrun(run_args(task, model, dataset, two, tmp_path / "data", *extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    a, b = _result(one), _result(two)
    assert b["world_size"] == 2 and a["world_size"] == 1
    assert a["metrics"] == b["metrics"]
    assert a.get("per_class") == b.get("per_class")
    assert a["protocol"]["num_images"] == b["protocol"]["num_images"]
    assert proc.stdout.count("| model") == 1  # one table, from rank 0


@SLOW
def test_more_ranks_than_samples_and_the_cache_on_rank_0(tmp_path, capsys):
    args = run_args("zs-cls", "silc-tiny", "shapes-cls", tmp_path / "r", tmp_path / "data", "--limit", "2")
    cache = tmp_path / "cache"
    proc = torchrun(args, nproc=3, env_extra={"SILC_BENCH_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = _result(tmp_path / "r")
    assert res["protocol"]["num_images"] == 2 and res["world_size"] == 3
    assert len(list((cache / "features" / "image").rglob("*.safetensors"))) == 1  # by rank 0
    proc = torchrun([*args, "--force"], nproc=2, env_extra={"SILC_BENCH_CACHE": str(cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    again = _result(tmp_path / "r")
    assert (
        again["env"]["cache"]["hits"] >= 1 and again["env"]["cache"]["misses"] == 0
    )  # rank 0's hit, broadcast
    assert again["metrics"] == res["metrics"]


def test_an_error_on_one_rank_exits_2_everywhere_with_one_message(tmp_path):
    from tests.fixtures import imagefolder

    root = imagefolder(tmp_path / "imgs", n_train=2, n_test=3, size=32)
    last = sorted((root / "test").rglob("*.png"))[-1]  # in the second rank's block
    last.write_bytes(b"not an image")
    args = run_args(
        "zs-cls", "silc-tiny", f"imagefolder:{root}", tmp_path / "r", tmp_path / "d", "--no-cache"
    )
    proc = torchrun(args)
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("silc-bench: error")]
    assert len(lines) == 1 and last.name in lines[0], proc.stderr[-3000:]
    assert "silc_bench/" not in proc.stderr  # no traceback of ours (torchrun prints its own report)
    assert "exitcode  : 2" in proc.stderr  # the ranks exited 2, as for any bad input
    assert not list((tmp_path / "r").rglob("*.json"))


def test_blocks_hold_whole_batches_and_strided_shares_return_to_dataset_order():
    from silc_bench.core.dist import World, interleaved, shard

    for n in (1, 7, 10, 64, 65):
        for size in (1, 2, 3, 5):
            for align in (1, 4, 7):
                blocks = [shard(n, World(r, size), align) for r in range(size)]
                assert [i for b in blocks for i in b] == list(range(n))  # nothing dropped or doubled
                assert all(b.start % align == 0 for b in blocks if len(b))  # one process's batches
    strided = [list(range(r, 11, 3)) for r in range(3)]  # DefaultSampler with round_up=False
    assert interleaved(strided) == list(range(11))


def test_a_closed_pipe_is_not_an_error(tmp_path):
    proc = subprocess.run(
        f"{sys.executable} -m silc_bench list models | head -1", shell=True, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr


def test_execution_records_of_all_ranks_are_merged():
    from silc_bench.models.execution import ExecutionRecord

    rank0 = ExecutionRecord(started=True, compile={"requested": True})  # an empty block
    rank1 = ExecutionRecord(started=True, compile={"requested": True, "took_effect": True}, oom_halvings=2)
    rank1.oom_batch_cap = 16
    rank0.note_window_oom(1, 4)
    rank1.note_window_oom(2, 2)
    merged = ExecutionRecord.merge([rank0, rank1]).as_dict()
    assert merged["compile"]["took_effect"] is True and merged["oom_halvings"] == 2
    assert merged["oom_batch_cap"] == 16
    assert merged["window_oom_fallbacks"] == 3 and merged["window_batch"] == 2
    assert ExecutionRecord.merge([ExecutionRecord(), ExecutionRecord()]).as_dict() == {}


@SLOW
def test_ranks_follow_rank_0_on_reusing_a_stored_result(tmp_path):
    """Each rank reads its own `--out` (node-local folders): rank 0 holds the result, rank 1
    does not. Every rank must skip with rank 0, not split into one that skips and one that
    waits at a collective; and the other way round, every rank computes."""
    script = tmp_path / "node_local.py"
    script.write_text(
        "import os, sys\n"
        f"node = os.path.join({str(tmp_path)!r}, 'node' + os.environ['RANK'])\n"
        "os.makedirs(node, exist_ok=True)\n"
        "os.chdir(node)\n"
        "from silc_bench.cli import entry\n"
        "entry(sys.argv[1:])\n"
    )
    args = run_args(
        "zs-cls", "silc-tiny", "shapes-cls", Path("r"), tmp_path / "data", "--limit", "6", "--no-cache"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SILC_BENCH_DIST_TIMEOUT": "30"}
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]

    def go():  # noqa: ANN202
        return subprocess.run(
            [*launch, str(script), *args], capture_output=True, text=True, timeout=240, env=env
        )

    first = go()
    assert first.returncode == 0, first.stderr[-3000:]
    assert list((tmp_path / "node0" / "r").rglob("*.json")) and not (tmp_path / "node1" / "r").exists()
    again = go()  # rank 0 finds its result, rank 1 finds none
    assert again.returncode == 0, again.stderr[-3000:]
    assert "skipped" in again.stderr and "error" not in again.stderr
    (res,) = list((tmp_path / "node0" / "r").rglob("*.json"))
    moved = tmp_path / "node1" / res.relative_to(tmp_path / "node0")
    moved.parent.mkdir(parents=True)
    res.rename(moved)  # now only rank 1 holds one: both compute, rank 0 writes
    third = go()
    assert third.returncode == 0, third.stderr[-3000:]
    assert "skipped" not in third.stderr and res.is_file()


def _per_rank(script: Path, model: str, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list, Path]:
    """2 ranks of `script` (which adds its per-rank arguments) running zs-cls on shapes-cls:
    (the process, its `silc-bench: error` lines, the cache folder it used)."""
    cache = tmp_path / "cache"
    args = run_args("zs-cls", model, "shapes-cls", tmp_path / "r", tmp_path / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SILC_BENCH_DIST_TIMEOUT": "60",
           "SILC_BENCH_CACHE": str(cache)}  # fmt: skip
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    proc = subprocess.run([*launch, str(script), *args], capture_output=True, text=True, timeout=240, env=env)
    return proc, [ln for ln in proc.stderr.splitlines() if ln.startswith("silc-bench: error")], cache


@pytest.mark.parametrize("differ", ["weights", pytest.param("limit", marks=SLOW)])
def test_ranks_that_are_not_running_the_same_evaluation_stop_before_any_work(differ, tmp_path):
    """Node-local weight files of one name but other bytes (or a per-rank --limit) must not
    be mixed into one number, nor cached: every rank stops with exit 2, naming the part."""
    from silc_bench.core.paths import PACKAGE_DIR

    script = tmp_path / "per_rank.py"
    script.write_text(
        "import os, sys\n"
        "from safetensors.torch import load_file, save_file\n"
        "rank = int(os.environ['RANK'])\n"
        f"w = os.path.join({str(tmp_path)!r}, f'node{{rank}}.safetensors')\n"
        f"sd = load_file({str(PACKAGE_DIR / 'weights' / 'clip-tiny.safetensors')!r})\n"
        "if rank == 1:\n"
        "    k = sorted(sd)[-1]\n"
        "    sd[k] = sd[k] * 0.5\n"
        "save_file(sd, w)\n"
        f"differ = {differ!r}\n"
        "extra = ['--weights', w if differ == 'weights' else os.path.join("
        f"{str(tmp_path)!r}, 'node0.safetensors')]\n"
        "extra += ['--limit', str(4 + 2 * rank if differ == 'limit' else 4)]\n"
        "from silc_bench.cli import entry\n"
        "entry(sys.argv[1:] + extra)\n"
    )
    proc, lines, cache = _per_rank(script, "open_clip:ShapesTiny-P8", tmp_path)
    assert len(lines) == 1 and "not running the same evaluation" in lines[0], proc.stderr[-3000:]
    assert ("weights_sha256" in lines[0]) if differ == "weights" else ("limit" in lines[0])
    assert "exitcode  : 2" in proc.stderr
    assert not (tmp_path / "r").exists() and not list((cache / "features").rglob("*.safetensors"))


@SLOW
def test_ranks_with_different_batch_sizes_never_mix_their_blocks(tmp_path):
    """Each rank cuts its block by its own --batch-size: 1 and 64 on 10 images once gave
    rank 0 rows 0..5 and rank 1 rows 0..10, concatenated into a wrong number (exit 0,
    cached). The blocks must tile the rows exactly once: every rank refuses alike."""
    script = tmp_path / "per_rank.py"
    script.write_text(
        "import os, sys\n"
        "from silc_bench.cli import entry\n"
        "bs = '1' if os.environ['RANK'] == '0' else '64'\n"
        "entry(sys.argv[1:] + ['--batch-size', bs, '--limit', '10'])\n"
    )
    proc, lines, cache = _per_rank(script, "clip-tiny", tmp_path)
    assert len(lines) == 1 and "split the work differently" in lines[0], proc.stderr[-3000:]
    assert "--batch-size" in lines[0] and "exitcode  : 2" in proc.stderr
    assert not (tmp_path / "r").exists() and not list((cache / "features").rglob("image/*.safetensors"))


def test_a_bad_collective_timeout_is_one_line_and_exit_2(tmp_path):
    args = run_args("zs-cls", "silc-tiny", "shapes-cls", tmp_path / "r", tmp_path / "data", "--limit", "2")
    proc = torchrun(args, env_extra={"SILC_BENCH_DIST_TIMEOUT": "nan"})
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("silc-bench: error")]
    assert len(lines) == 1 and "SILC_BENCH_DIST_TIMEOUT" in lines[0], proc.stderr[-3000:]
    assert "exitcode  : 2" in proc.stderr and not (tmp_path / "r").exists()

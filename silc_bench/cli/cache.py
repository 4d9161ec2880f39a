"""`silc-bench cache list|clear`: show or free the feature cache, all of it or one model's."""

from __future__ import annotations

import argparse
import contextlib
import sys

from silc_bench.core.errors import UserError


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    ca = sub.add_parser("cache", parents=[common], help="show or free the feature cache")
    ca.add_argument("action", choices=["list", "clear"])
    ca.add_argument("--model", help="only the entries of this model (NAME[:VARIANT], or any --model form)")
    ca.add_argument("--weights", help="with --model open_clip:ARCH: its checkpoint file")
    ca.add_argument(
        "--datasets", action="store_true", help="clear: also remove the generated datasets (ShapesWorld)"
    )


def run(a: argparse.Namespace) -> int:
    from tabulate import tabulate

    from silc_bench.core.paths import cache_root
    from silc_bench.features.cache import entries

    found = entries()
    if a.model is not None and not a.model.strip():
        raise UserError("--model: empty name (leave --model out to mean every model)")
    if a.model:
        from silc_bench.models import load_model, parse_model_ref

        ref = parse_model_ref(a.model, a.weights)
        model = load_model(ref)  # its checkpoint_sha256 is what the cache keys on
        found = [e for e in found if e["checkpoint_sha256"] == model.checkpoint_sha256]
        if ref.variant:
            found = [e for e in found if e["variant"] == ref.variant]
    total = sum(e["bytes"] for e in found) / 2**20
    where = cache_root() / "features"
    if a.action == "list":
        rows = [
            [e["kind"], e["model"], e["variant"] or "", e["data"], e["checkpoint_sha256"][:12],
             f"{e['bytes'] / 2**20:.2f}", f"{e['age_days']:.1f}"]
            for e in found
        ]  # fmt: skip
        headers = ["kind", "model", "variant", "dataset/split", "checkpoint", "MB", "age (days)"]
        print(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True))
        print(f"{len(found)} entries, {total:.1f} MB under {where}", file=sys.stderr)
        return 0
    for e in found:
        with contextlib.suppress(FileNotFoundError):  # cleared by another process meanwhile
            e["path"].unlink()
    print(f"silc-bench cache: removed {len(found)} entries ({total:.1f} MB) from {where}", file=sys.stderr)
    from silc_bench.models.deferred import FactsMemo

    memos = FactsMemo().clear(model.checkpoint_sha256 if a.model else None)
    if memos:  # the remembered model facts (models/deferred.py): rebuilt by the next run
        print(f"silc-bench cache: removed {memos} remembered model facts", file=sys.stderr)
    generated = cache_root() / "datasets"
    ours = sorted(generated.glob("shapesworld-v*-seed*")) if generated.is_dir() else []
    if a.datasets and not a.model:
        import shutil

        for folder in ours:  # regenerated on the next run that needs them
            shutil.rmtree(folder, ignore_errors=True)
        print(f"silc-bench cache: removed {len(ours)} generated datasets from {generated}", file=sys.stderr)
    elif ours:
        print(
            f"silc-bench cache: the generated datasets (ShapesWorld) under {generated} stay; "
            "`silc-bench cache clear --datasets` removes them too",
            file=sys.stderr,
        )
    return 0

"""`silc-bench list`: what tasks, datasets and models the suite knows, as markdown tables."""

from __future__ import annotations

import argparse


def register(sub, common: argparse.ArgumentParser) -> None:  # noqa: ANN001
    ls = sub.add_parser("list", parents=[common], help="list tasks, models or datasets")
    ls.add_argument("what", choices=["tasks", "models", "datasets"])


def run(a: argparse.Namespace) -> int:
    print(list_command(a.what))
    return 0


def list_command(what: str) -> str:
    """The table `silc-bench list tasks|models|datasets` prints."""
    from tabulate import tabulate

    from silc_bench.config import list_datasets, list_profiles, list_tasks, load_task

    if what == "tasks":
        rows = []
        for t in list_tasks():
            rows.append([t, ", ".join(list_datasets(t)), ", ".join(list_profiles(t))])
        return tabulate(rows, headers=["task", "datasets", "protocol profiles"], tablefmt="github")
    elif what == "datasets":
        rows = []
        for t in list_tasks():
            for d in list_datasets(t):
                form = {"imagefolder": "imagefolder:PATH", "wds": "wds:PATH"}.get(d, d)
                spec = load_task(t, form)
                where = _location(spec.data)
                rows.append(
                    [
                        form,
                        t,
                        spec.data.get("format"),
                        where,
                        spec.description,
                    ]
                )
        table = tabulate(
            rows,
            headers=["dataset", "task", "format", "path (under --data-root; generated: the cache)", "about"],
            tablefmt="github",
        )
        return table + "\n\n" + _hub_sets()
    from silc_bench.config import load_models
    from silc_bench.models.weight_paths import weight_files

    rows = []
    for name, spec in load_models().items():
        files = weight_files(spec, None)
        status = (
            "random init"
            if not files
            else ("present" if all(p.is_file() for p, _ in files) else f"missing: {files[0][0]}")
        )
        converted = "converted (big_vision)" if "converted" in spec.arch else "custom config"
        arch = spec.arch.get("open_clip") or converted
        rows.append(
            [
                name,
                arch,
                ", ".join(spec.variants) or "-",
                spec.dense_mode if spec.backend == "open_clip" else f"({spec.backend})",
                status,
            ]
        )
    return tabulate(rows, headers=["model", "arch", "variants", "dense mode", "weights"], tablefmt="github")


def _location(data: dict) -> str:
    """Where a dataset is read from. A generated one (ShapesWorld) never lives under
    --data-root: it is generated on first use into the cache folder, so the row says that
    folder, resolved ($SILC_BENCH_CACHE), to find or delete it."""
    where = str(data.get("path") or data.get("data_root", ""))
    if "generated" not in data:
        return where
    from silc_bench.core.paths import cache_root
    from silc_bench.data.shapesworld import VERSION

    root = cache_root() / "datasets" / f"shapesworld-v{VERSION}-seed{data.get('generated_seed', 0)}"
    return f"{root / where} (generated)"


def _hub_sets() -> str:
    """The `wds:ORG/NAME` form and CLIP_benchmark's sets it knows by name, a few lines: the
    41 names as rows would bury the table."""
    import textwrap

    from silc_bench.data.wds_hub import ORG, known

    by_kind: dict[str, list[str]] = {}
    for name, kind in known().items():
        by_kind.setdefault(kind, []).append(name.removeprefix("wds_"))
    head = "wds:ORG/NAME is a Hugging Face dataset repository in that layout, fetched on first use"
    head += " (--offline: the cache)."
    if known():
        head += f" CLIP_benchmark's {len(known())} sets, as wds:{ORG}/wds_<name>:"
    lines = [textwrap.fill(head, 110)]
    heads = {"classification": "zs-cls, fs-cls", "retrieval": "retrieval",
             "multilabel": "multi-label (npy labels), which zs-cls does not read"}  # fmt: skip
    for kind, names in by_kind.items():
        plain = sorted(n for n in names if not n.startswith("vtab-"))
        vtab = sorted(n.removeprefix("vtab-") for n in names if n.startswith("vtab-"))
        listed = ", ".join(plain + ([f"vtab-{{{', '.join(vtab)}}}"] if vtab else []))
        text = f"{heads[kind]}: {listed}"
        lines.append(textwrap.fill(text, 110, initial_indent="  ", subsequent_indent="    "))
    return "\n".join(lines)

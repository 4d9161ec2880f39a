"""`wds:ORG/NAME`: a Hugging Face dataset repository in CLIP_benchmark's WebDataset layout
(`wds:clip-benchmark/wds_vtab-cifar100`), fetched through huggingface_hub into the Hub
cache, only the files the task reads; offline (`--offline`, `HF_HUB_OFFLINE=1`), the cache.

Every file the run reads is checked against its ETag, as single-file model downloads are
(`models.hub_fetch.verified`): a shard or metadata file whose bytes are not the ones its
ETag names is removed from the cache and refused, so it is never read later as good. A
shard's sha256 is taken through the content-hash memo, so the fingerprint that follows
reuses it instead of reading the shard again.

CLIP_benchmark publishes its sets as `clip-benchmark/wds_<name>`. The names it lists are in
`clip_benchmark_wds.txt` beside this module: `list datasets` shows them, and a name close to
one of them that the Hub does not have is a did-you-mean before anything is downloaded.
"""

from __future__ import annotations

import difflib
import functools
import os
import re
from pathlib import Path

from silc_bench.core.errors import UserError, first_line

ORG = "clip-benchmark"
KNOWN_FILE = Path(__file__).with_name("clip_benchmark_wds.txt")
KINDS = ("classification", "retrieval", "multilabel")
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def hub_repo(path: str, root: Path) -> str | None:
    """The repository `wds:PATH` names, or None when PATH is a folder on disk (absolute, or
    under --data-root: a local folder wins over a Hub name) or cannot be a repository."""
    local = Path(path).expanduser()
    local = local if local.is_absolute() else root / local
    return None if local.is_dir() or not _HUB_NAME.match(path) else path


@functools.cache
def known() -> dict[str, str]:
    """CLIP_benchmark's Hub repositories (without the org) → their kind, in file order. A copy
    installed without the file knows no names: no hints, and nothing is refused for them."""
    out: dict[str, str] = {}
    if not KNOWN_FILE.is_file():
        return out
    for line in KNOWN_FILE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, kind = line.split()
            assert kind in KINDS, (KNOWN_FILE, line)  # a shipped file: a typo here is ours
            out[name] = kind
    return out


def close_to(repo: str) -> str | None:
    """The known `clip-benchmark/...` repository that an unknown name is likely a typo of
    (`wds_cifr100`, `wds_cifar100`, `clip-benchmarks/wds_cars`), else None."""
    org, _, name = repo.partition("/")
    if org == ORG and name in known():
        return None
    if org != ORG:
        near = difflib.SequenceMatcher(None, org.lower(), ORG).ratio() >= 0.8
        return f"{ORG}/{name}" if near and name in known() else None
    # Compare without the common `wds_` (and `vtab-`) prefixes, which would make everything close.
    stems: dict[str, str] = {}
    for k in known():
        stem = k.removeprefix("wds_")
        stems.setdefault(stem, k)
        stems.setdefault(stem.removeprefix("vtab-"), k)
    hit = difflib.get_close_matches(name.removeprefix("wds_"), list(stems), n=1, cutoff=0.6)
    return f"{ORG}/{stems[hit[0]]}" if hit else None


def check_hub_names(datasets: list[str], root: Path) -> None:
    """`run`'s check of its `wds:ORG/NAME` datasets, before any model or data is fetched."""
    for ds in datasets:
        repo = hub_repo(ds.removeprefix("wds:"), root) if ds.startswith("wds:") else None
        if repo is not None:
            check_name(repo)


def check_name(repo: str) -> None:
    """Before any download: a name close to a known one that the Hub (or, offline, the
    cache) does not have is refused with the known name. The Hub holds more sets than
    CLIP_benchmark lists, so a close name is asked about, never refused unseen."""
    guess = close_to(repo)
    if guess is not None and not _exists(repo):
        raise UserError(f"wds:{repo}: {_absent(repo)}; did you mean wds:{guess}? "
                        "(`silc-bench list datasets` names CLIP_benchmark's sets)")  # fmt: skip


def _absent(repo: str) -> str:
    from silc_bench.models.hub_fetch import offline

    return "not in the local Hub cache (offline)" if offline() else "no such dataset on the Hub"


def _exists(repo: str) -> bool:
    """Whether the repository is there: one metadata request (offline: the cache's folder).
    A Hub that cannot be asked says yes: the fetch then reports what went wrong."""
    from silc_bench.core.paths import hub_cache
    from silc_bench.models.hub_fetch import offline

    if offline():
        return (hub_cache() / f"datasets--{repo.replace('/', '--')}").is_dir()
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi(endpoint=os.environ.get("HF_ENDPOINT")).dataset_info(repo, revision="main")
    except RepositoryNotFoundError:
        return False
    except Exception:  # noqa: BLE001 - unreachable, rate-limited: not ours to decide here
        return True
    return True


def fetch(repo: str, splits: list[str], root_files: tuple[str, ...]) -> Path:
    """The snapshot folder holding `root_files` and the splits' folders, each file checked
    against its ETag (a bad one is removed from the cache and refused)."""
    from huggingface_hub import snapshot_download

    from silc_bench.core.paths import hub_cache
    from silc_bench.models.hub_fetch import offline

    check_name(repo)
    patterns = [*root_files, *(f"{s}/*" for s in splits)]  # "*.txt" would match train/nshards.txt too
    try:
        folder = Path(snapshot_download(
            repo, repo_type="dataset", allow_patterns=patterns, cache_dir=str(hub_cache()),
            endpoint=os.environ.get("HF_ENDPOINT"), local_files_only=offline(),
        ))  # fmt: skip
    except Exception as e:  # noqa: BLE001 - not found, offline and not cached, a network failure
        how = f"{type(e).__name__}: {first_line(e)[:200]}"
        how = "not in the local Hub cache, offline" if offline() else how
        raise UserError(f"wds:{repo}: cannot get the Hub dataset {repo} ({how})") from None
    read = [folder / f for f in root_files] + [p for s in splits for p in sorted((folder / s).glob("*"))]
    _verify(repo, folder, [p for p in read if p.is_file()])
    return folder


def _verify(repo: str, folder: Path, files: list[Path]) -> None:
    """Each file's bytes against its ETag; its sha256 from the memo the fingerprint reads."""
    from silc_bench.core.hashing import sha256_many
    from silc_bench.models.hub_fetch import verified

    for path, digest in zip(files, sha256_many(files)):
        verified(path, repo, path.relative_to(folder).as_posix(), sha256=digest)

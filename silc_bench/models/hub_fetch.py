"""Files from the Hugging Face Hub, the way open_clip and CLIP_benchmark users get them:
downloaded on first use through `huggingface_hub` (its progress bar, its resumable
`.incomplete` files, the standard cache), read from that cache only when offline.

Offline is `--offline`, `HF_HUB_OFFLINE=1` or `SILC_BENCH_OFFLINE=1`, read at call time
(huggingface_hub reads its own variables once, at import). `HF_ENDPOINT` is read at call
time too, so the tests can point it at a server on 127.0.0.1.

Every file served from the cache is checked against the name huggingface_hub stored it
under, its ETag: the sha256 of the content for LFS files, the git blob sha1 for small ones.
A server (or a proxy, or a disk) that hands over other bytes is refused, and the bad copy
is removed, so it is never served as good later.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from silc_bench.core.errors import UserError, first_line
from silc_bench.core.paths import hub_cache

OFFLINE_VARS = ("SILC_BENCH_OFFLINE", "HF_HUB_OFFLINE")
_TRUE = ("1", "true", "yes", "on")


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in OFFLINE_VARS)


_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def split_revision(repo: str) -> tuple[str, str | None]:
    """`ORG/NAME@REV` → (ORG/NAME, REV); no `@`: the revision is whatever `main` is now."""
    name, at, rev = repo.partition("@")
    if at and not rev:
        raise UserError(f"hf-hub:{repo}: empty revision after '@'")
    if not _REPO_ID.match(name) or ".." in name:
        raise UserError(f"hf-hub:{repo}: a Hub repository is ORG/NAME (letters, digits, - _ .), not {name!r}")
    return name, (rev or None)


def fetch(repo: str, filename: str, revision: str | None, what: str) -> Path | None:
    """The file's path in the Hub cache (downloaded unless offline), or None when the
    repository has no such file (online) or the cache does not hold it (offline)."""
    if offline():
        return cached(repo, filename, revision)
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        endpoint = os.environ.get("HF_ENDPOINT")
        cache = str(hub_cache())
        path = hf_hub_download(repo, filename, revision=revision, cache_dir=cache, endpoint=endpoint)
    except GatedRepoError:
        raise UserError(f"{what}: {repo} is gated: accept its terms on the Hub, then hf auth login") from None
    except RepositoryNotFoundError:
        raise UserError(f"{what}: no Hub repository {repo} (if it is private: hf auth login)") from None
    except RevisionNotFoundError:
        raise UserError(f"{what}: {repo} has no revision {revision!r}") from None
    except LocalEntryNotFoundError:  # the Hub could not be reached (a subclass of the next one)
        endpoint = os.environ.get("HF_ENDPOINT") or "the Hugging Face Hub"
        raise UserError(
            f"{what}: cannot reach {endpoint} to download {filename} from {repo}, and it is not in the "
            "local cache; check the network, or --offline to use the cache only"
        ) from None
    except EntryNotFoundError:
        return None
    except Exception as e:  # noqa: BLE001 - a network failure, a truncated transfer, a full disk
        raise UserError(
            f"{what}: downloading {filename} from {repo} failed ({type(e).__name__}: {first_line(e)[:200]}); "
            "run again to resume it, or --offline to use the local cache only"
        ) from None
    return verified(Path(path), repo, filename)


def cached(repo: str, filename: str, revision: str | None) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, filename, cache_dir=str(hub_cache()), revision=revision)
    return verified(Path(hit), repo, filename) if isinstance(hit, str) and Path(hit).is_file() else None


def revision_of(path: Path) -> str | None:
    """The snapshot folder of a Hub cache path is its commit: .../snapshots/<rev>/<file>."""
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def _git_blob_sha1(path: Path) -> str:
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def verified(path: Path, repo: str, filename: str, sha256: str | None = None) -> Path:
    """`path` if its bytes are those its ETag names; else the bad copy is removed and refused.
    `sha256`: the digest of `path`'s bytes when the caller has it already (a dataset shard,
    hashed once for its fingerprint too), so a large file is not read a second time."""
    from silc_bench.core.hashing import file_sha256

    blob = Path(os.path.realpath(path))
    etag = blob.name
    if re.fullmatch(r"[0-9a-f]{64}", etag):
        got = sha256 or file_sha256(blob)
    elif re.fullmatch(r"[0-9a-f]{40}", etag):
        got = _git_blob_sha1(blob)
    else:  # a cache laid out by hand, or a file-copy cache: nothing to check against
        return path
    if got != etag:
        for p in {path, blob}:
            p.unlink(missing_ok=True)
        raise UserError(
            f"{repo}/{filename}: the bytes received do not match their ETag ({etag[:12]}…, got {got[:12]}…); "
            "the copy was removed from the cache: run again to download it afresh"
        )
    return path

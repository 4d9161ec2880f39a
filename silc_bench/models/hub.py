"""The names users already type: `open_clip:ARCH/TAG`, `hf-hub:ORG/NAME` and `local-dir:DIR`.

A pretrained tag resolves through open_clip's own registry (`open_clip.list_pretrained()`)
to a Hugging Face repository or a URL. Files are downloaded on first use into the standard
Hugging Face cache (`models/hub_fetch.py`) or open_clip's download folder, and read from
there only when offline; `hf-hub:ORG/NAME@REV` pins a revision. The resolved file, the
repository and the commit it resolved to go into the result (env.model.source).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from silc_bench.config import ModelSpec
from silc_bench.core.errors import UserError, did_you_mean, first_line
from silc_bench.core.paths import hub_cache, open_clip_cache
from silc_bench.models.arch import open_clip_names
from silc_bench.models.hub_fetch import fetch, offline, revision_of, split_revision

WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CONFIG_NAME = "open_clip_config.json"


def _not_found(repo: str, names: tuple[str, ...] | list[str], what: str) -> UserError:
    if offline():
        return UserError(
            f"{what}: not in the local Hugging Face cache ({hub_cache()}), and offline nothing is "
            f"downloaded: fetch {' or '.join(names)} from {repo} (hf download {repo} {names[0]}), "
            "or run without --offline / HF_HUB_OFFLINE"
        )
    wanted = " or ".join(names)
    return UserError(f"{what}: the Hub repository {repo} has no {wanted} (not an open_clip model?)")


def _first(repo: str, names: tuple[str, ...] | list[str], revision: str | None, what: str) -> Path:
    for name in names:
        hit = fetch(repo, name, revision, what)
        if hit is not None:
            return hit
    raise _not_found(repo, names, what)


def local_dir_spec(text: str, folder: Path) -> tuple[ModelSpec, Path]:
    """An open_clip `local-dir:` model (config + weights in one folder, as `export` writes)."""
    config = folder / CONFIG_NAME
    try:
        raw = json.loads(config.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{text}: cannot read {config} ({type(e).__name__})") from None
    if not isinstance(raw, dict) or "model_cfg" not in raw:
        raise UserError(f"{config}: not an open_clip config (no 'model_cfg')")
    weights = next((folder / n for n in WEIGHT_NAMES if (folder / n).is_file()), None)
    if weights is None:
        raise UserError(f"{text}: no weights in {folder} (expected {' or '.join(WEIGHT_NAMES)})")
    spec = ModelSpec(name=text, arch={"open_clip": f"local-dir:{folder}"})
    return spec, weights


def hub_ref(text: str) -> tuple[ModelSpec, Path, dict[str, Any]] | None:
    """(spec, weights file, source record) for the three forms, or None for other text."""
    if text.startswith("local-dir:"):
        folder = Path(text.split(":", 1)[1]).expanduser().resolve()
        if not folder.is_dir():
            raise UserError(f"{text}: folder not found")
        source = {"form": "local-dir", "folder": str(folder)}
        spec, weights = local_dir_spec(text, folder)
        return spec, weights, source
    if text.startswith("hf-hub:"):
        repo, revision = split_revision(text.split(":", 1)[1].strip("/"))
        config = _first(repo, (CONFIG_NAME,), revision, text)
        _first(repo, WEIGHT_NAMES, revision_of(config) or revision, text)  # into the same snapshot
        source = {"form": "hf-hub", "repo": repo, "revision": revision_of(config)}
        if revision is not None:
            source["pinned"] = revision
        spec, weights = local_dir_spec(text, config.parent)
        return spec, weights, source
    if text.startswith("open_clip:") and "/" in text:
        import open_clip  # its pretrained registry; imported only for a tag

        arch, _, tag = text.split(":", 1)[1].partition("/")
        pairs = [f"{a}/{t}" for a, t in open_clip.list_pretrained()]
        if f"{arch}/{tag}" not in pairs:
            raise did_you_mean("open_clip pretrained ARCH/TAG", f"{arch}/{tag}", pairs)
        cfg = open_clip.get_pretrained_cfg(arch, tag)
        weights, source = _pretrained_file(arch, tag, cfg)
        name = (
            f"{arch}-quickgelu"
            if cfg.get("quick_gelu") and f"{arch}-quickgelu" in open_clip_names()
            else arch
        )
        preprocess = {
            k: v
            for k, v in (
                ("mean", list(cfg["mean"]) if cfg.get("mean") else None),
                ("std", list(cfg["std"]) if cfg.get("std") else None),
                ("interpolation", cfg.get("interpolation")),
                ("resize", cfg.get("resize_mode")),
            )
            if v is not None
        }
        spec = ModelSpec(name=text, arch={"open_clip": name}, preprocess=preprocess)
        return spec, weights, source
    return None


def _pretrained_file(arch: str, tag: str, cfg: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub.rstrip("/")) if not hub.endswith("/") else (hub.rstrip("/"), "")
        names = [filename] if filename else list(WEIGHT_NAMES)
        hit = _first(repo, names, None, f"open_clip:{arch}/{tag}")
        where = {"repo": repo, "revision": revision_of(hit)}
        return hit, {"form": "open_clip-tag", "arch": arch, "tag": tag, **where}
    url = cfg.get("url", "")
    target = open_clip_cache() / os.path.basename(url)
    if not target.is_file():
        if offline():
            raise UserError(
                f"open_clip:{arch}/{tag}: {target} is not on this machine, and offline nothing is "
                f"downloaded: fetch {url} and put it there, or run without --offline"
            )
        target = _download_url(url, arch, tag)
    return target, {"form": "open_clip-tag", "arch": arch, "tag": tag, "url": url}


def _download_url(url: str, arch: str, tag: str) -> Path:
    """open_clip's own downloader (its progress bar, and its sha256 check where the URL names one)."""
    from open_clip.pretrained import download_pretrained_from_url

    try:
        return Path(download_pretrained_from_url(url, cache_dir=str(open_clip_cache())))
    except Exception as e:  # noqa: BLE001 - a network failure, a checksum mismatch, a full disk
        raise UserError(f"open_clip:{arch}/{tag}: downloading {url} failed ({first_line(e)[:200]})") from None

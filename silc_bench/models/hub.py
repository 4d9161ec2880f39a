"""The names users already type: `open_clip:ARCH/TAG`, `hf-hub:ORG/NAME` and `local-dir:DIR`.

Nothing is downloaded. A pretrained tag resolves through open_clip's own registry
(`open_clip.list_pretrained()`) to a Hugging Face repository or a URL, and the file is
read from the local Hugging Face cache ($HF_HUB_CACHE / $HF_HOME, as `HF_HUB_OFFLINE=1`
would) or open_clip's download folder. When it is not there, the error names the
repository and file to fetch. The resolved file, the repository and its revision go into
the result (env.model.source).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import open_clip

from silc_bench.config import ModelSpec
from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.core.paths import hub_cache, open_clip_cache
from silc_bench.models.arch import open_clip_names

WEIGHT_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
CONFIG_NAME = "open_clip_config.json"


def _cached(repo: str, filename: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, filename, cache_dir=str(hub_cache()))
    return Path(hit) if isinstance(hit, str) and Path(hit).is_file() else None


def _revision(path: Path) -> str | None:
    """The snapshot folder of a Hub cache path is its commit: .../snapshots/<rev>/<file>."""
    parts = path.parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def _not_cached(repo: str, names: tuple[str, ...] | list[str], what: str) -> UserError:
    return UserError(
        f"{what}: not in the local Hugging Face cache and nothing is downloaded here; fetch "
        f"{' or '.join(names)} from the Hub repository {repo} where there is a network "
        f"(huggingface-cli download {repo} {names[0]}), then point $HF_HUB_CACHE at that cache"
    )


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
        repo = text.split(":", 1)[1].strip("/")
        config = _cached(repo, CONFIG_NAME)
        if config is None:
            raise _not_cached(repo, (CONFIG_NAME,), text)
        if not any(_cached(repo, n) for n in WEIGHT_NAMES):
            raise _not_cached(repo, WEIGHT_NAMES, text)
        source = {"form": "hf-hub", "repo": repo, "revision": _revision(config)}
        spec, weights = local_dir_spec(text, config.parent)
        return spec, weights, source
    if text.startswith("open_clip:") and "/" in text:
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
        for n in names:
            hit = _cached(repo, n)
            if hit is not None:
                return hit, {
                    "form": "open_clip-tag",
                    "arch": arch,
                    "tag": tag,
                    "repo": repo,
                    "revision": _revision(hit),
                }
        raise _not_cached(repo, names, f"open_clip:{arch}/{tag}")
    url = cfg.get("url", "")
    target = open_clip_cache() / os.path.basename(url)
    if not target.is_file():
        raise UserError(
            f"open_clip:{arch}/{tag}: {target} is not on this machine and nothing is downloaded here; "
            f"fetch {url} where there is a network and put it there"
        )
    return target, {"form": "open_clip-tag", "arch": arch, "tag": tag, "url": url}

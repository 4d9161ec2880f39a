"""From `--model` text to a loaded `VLModel`.

Three forms:
- `NAME`: an entry of checkpoints.yaml (its default variant, if it has variants);
- `NAME:VARIANT`: one variant of a bundle (e.g. `silc-tiny:student`);
- `open_clip:ARCH` with `--weights PATH`: any local checkpoint in an open_clip architecture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from silc_bench.config import ModelSpec, load_models
from silc_bench.core.errors import UserError, did_you_mean
from silc_bench.core.hashing import file_sha256, hash_obj
from silc_bench.core.paths import weights_dir
from silc_bench.models.adapter import PRECISIONS, Towers, VLModel
from silc_bench.models.arch import open_clip_config, open_clip_names, register_configs
from silc_bench.models.backends import backend_class, backend_for
from silc_bench.models.converted import check_text_fit, spec_from_converted, with_converted_metadata
from silc_bench.models.preprocess import Preprocess
from silc_bench.models.text_encoding import trimmable
from silc_bench.models.weight_paths import resolve_path as _resolve_path
from silc_bench.models.weight_paths import weight_files as _weight_files
from silc_bench.models.weights import SUFFIXES, load_into, read_state_dict, select_variant

# Our own small architectures (tiny test/demo models) become ordinary open_clip names.


@dataclass(frozen=True)
class ModelRef:
    text: str  # as typed
    spec: ModelSpec
    variant: str | None
    weights: Path | None = None  # --weights override
    source: dict | None = None  # hf-hub / open_clip tag / local-dir: where the file came from


def list_models() -> dict[str, ModelSpec]:
    return load_models()


def parse_model_ref(text: str, weights: str | None = None) -> ModelRef:
    from silc_bench.models.hub import hub_ref

    hub = hub_ref(text)
    if hub is not None:
        if weights:
            raise UserError(
                f"--model {text} names its own weights; --weights is for open_clip:ARCH and registry names"
            )
        spec, path, source = hub
        return ModelRef(text, spec, None, path, source)
    if text.startswith("open_clip:"):
        arch = text.split(":", 1)[1]
        if arch not in open_clip_names():
            raise did_you_mean("open_clip architecture", arch, open_clip_names())
        if not weights:
            raise UserError(f"--model {text} needs --weights PATH (a local checkpoint for {arch})")
        spec = ModelSpec(name=text, arch={"open_clip": arch})
        return ModelRef(
            text, with_converted_metadata(spec, Path(weights).expanduser()), None, Path(weights).expanduser()
        )
    name, colon, variant = text.partition(":")
    if colon and not variant:
        raise UserError(f"--model {text!r}: empty variant after ':' (NAME or NAME:VARIANT)")
    models = load_models()
    if name not in models:
        raise did_you_mean("model", name, models)
    spec = models[name]
    if variant:
        if variant not in spec.variants:
            valid = ", ".join(spec.variants) or "none"
            raise UserError(f"model {name!r} has no variant {variant!r} (variants: {valid})")
    else:
        variant = spec.default_variant or (next(iter(spec.variants)) if spec.variants else None)
    return ModelRef(text, spec, variant or None, Path(weights).expanduser() if weights else None)


def _build_module(spec: ModelSpec) -> tuple[torch.nn.Module, str | None]:
    from silc_bench.models.arch import build_from_config, build_named

    arch = spec.arch
    if "converted" in arch:
        raise UserError(f"model {spec.name!r}: no weights file to take the converted architecture from")
    if len(arch) != 1 or not set(arch) <= {"open_clip", "config"}:
        raise UserError(
            f"model {spec.name!r}: arch must be exactly one of 'open_clip: NAME', "
            f"'config: {{...}}' or 'converted: big_vision', found keys {sorted(arch)}"
        )
    if "open_clip" in arch:
        name = arch["open_clip"]
        if name not in open_clip_names() and not name.startswith("local-dir:"):
            raise did_you_mean(f"open_clip architecture (model {spec.name})", name, open_clip_names())
        return build_named(name), name
    return build_from_config(arch["config"]), None


# A `how` clause naming image towers ("with teacher./student. image towers"): the layout is
# said from the entry's own variants instead (_file_layout), so it cannot be wrong.
_TOWER_CLAUSE = re.compile(r",?\s*with [\w./]+ image towers?")


def _file_layout(spec: ModelSpec) -> str:
    """What the missing file must hold, read from the entry rather than its free-text `how`:
    checkpoints.yaml shares one `how` between the SILC bundles and the CLIP (WebLI) baselines,
    and only a bundle (an entry with variants) keeps one image tower per variant."""
    if spec.variants:
        prefixes = "/".join(f"{v}." for v in spec.variants)
        return f"the file holds one image tower per variant, under {prefixes}"
    return "the file holds one image tower, under open_clip's own key names"


def _missing_weights_message(spec: ModelSpec, path: Path, sha: str | None) -> str:
    how = _TOWER_CLAUSE.sub("", spec.weights.get("how", "") or "")
    how = how.replace("$SILC_BENCH_WEIGHTS", str(weights_dir()))  # the real folder: unset, it is not "/"
    url = spec.weights.get("url")
    parts = [f"weights for {spec.name!r} are not on this machine: expected {path}"]
    if sha:
        parts.append(f"(sha256 {sha[:12]}...)")
    if url:
        parts.append(f"; get them from {url}")
    if how:
        parts.append(f"; {how}")
        if "open_clip state dict" in how:  # an export recipe: say what the export must contain
            parts.append(f"; {_file_layout(spec)}")
    parts.append("; put the file there, set $SILC_BENCH_WEIGHTS to its folder, or pass --weights PATH")
    return " ".join(parts).replace(" ;", ";")


def _checked_files(ref: ModelRef) -> list[tuple[Path, str | None]]:
    """The checkpoint's files with their registry sha256, each checked to exist."""
    spec = ref.spec
    files = _weight_files(spec, ref.weights)
    if spec.backend == "tcl" and ref.weights is None:
        files.append(_resolve_path(str(spec.weights.get("masker", "")), spec.weights.get("masker_sha256")))
    for path, sha in files:
        if path.is_dir():
            raise UserError(f"{path} is a folder, not a checkpoint file ({', '.join(SUFFIXES)})")
        if not path.is_file():
            if ref.weights is not None:
                raise UserError(f"--weights: file not found: {path}")
            raise UserError(_missing_weights_message(spec, path, sha))
    return files


def _verified_sha256(spec: ModelSpec, path: Path, expected: str | None) -> str:
    """The file's sha256. With a registry sha256 it is hashed for real once per process
    (never from the memo), so a checkpoint swapped in place cannot pass as the old one."""
    got = file_sha256(path, fresh=bool(expected))
    if expected and got != expected:
        raise UserError(
            f"{path}: sha256 mismatch for {spec.name!r}: expected {expected}, "
            f"found {got}; the file is corrupt or a different checkpoint"
        )
    return got


_SPEC_KEYS = ("arch", "backend", "preprocess", "tokenizer", "dense_mode")


def _effective(ref: ModelRef) -> ModelRef:
    """`arch: {converted: big_vision}`: the converted file's recorded architecture,
    preprocessing and tokenizer (models/converted.py)."""
    if "converted" not in ref.spec.arch:
        return ref
    from dataclasses import replace

    files = _weight_files(ref.spec, ref.weights)
    path = files[0][0] if files and files[0][0].is_file() else None
    return replace(ref, spec=spec_from_converted(ref.spec, path))


def model_identity(ref: ModelRef) -> dict[str, Any]:
    """Everything about the model that decides a number, without building it: the registry
    entry's evaluation settings, the variant, and the sha256 of every weight file (or the
    seed of a random init). Results are reused only when this matches."""
    ref = _effective(ref)
    spec = ref.spec
    files = _checked_files(ref)
    ident: dict[str, Any] = {
        "model": ref.text,
        "variant": ref.variant,
        "spec": {k: getattr(spec, k) for k in _SPEC_KEYS},
    }
    if files:
        ident["weights_sha256"] = [_verified_sha256(spec, p, sha) for p, sha in files]
    if ref.weights is not None:  # --weights: a result of its own (results/key.py weights_tags)
        ident["weights_override"] = True
    if spec.tokenizer.get("type") == "sentencepiece":  # its vocabulary decides every text embedding
        from silc_bench.models.sp_tokenizer import verified_file

        ident["tokenizer_sha256"] = verified_file(  # the file bound to the checkpoint, or an error
            spec.tokenizer, spec.name, weights_dir() / "tokenizers", ident.get("weights_sha256")
        )[1]
    arch_name = str(spec.arch.get("open_clip", ""))
    if arch_name.startswith("local-dir:"):  # its config (preprocessing, tokenizer) decides numbers too
        ident["config_sha256"] = file_sha256(Path(arch_name.split(":", 1)[1]) / "open_clip_config.json")
    else:
        ident["random_init_seed"] = spec.weights.get("random_init_seed")
    return ident


def model_location(ref: ModelRef) -> dict[str, Any]:
    """Where the model's files are on this machine. Not part of its identity (the same bytes
    anywhere give the same numbers), but recorded with its results (`env.model`): the
    remembered facts (models/deferred.py) are kept per location, so two installs or two
    copies of one file never read each other's."""
    ref = _effective(ref)
    files = [str(p) for p, _ in _checked_files(ref)]
    return {"files": files, "source": ref.source, "weights_dir": str(weights_dir())}


def load_model(ref: ModelRef, device: str = "cpu", precision: str = "fp32") -> VLModel:
    ref = _effective(ref)
    spec = ref.spec
    backend_class(spec.backend)  # an unknown backend fails before a model is built
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    files = _checked_files(ref)  # fail before building a big model
    seed = spec.weights.get("random_init_seed")
    with torch.random.fork_rng(devices=[]):
        if not files and seed is not None:
            torch.manual_seed(int(seed))
        module, arch_name = _build_module(spec)
    extras: dict[str, torch.nn.Module] = {}
    if files:
        sha, weights_info = _load_files(ref, module, files, extras)
    elif seed is not None:
        # A seeded random model (demo and plumbing tests): its hash is the hash of its tensors.
        sha = _tensor_sha(module)
        weights_info = {"random_init_seed": int(seed)}
    else:
        raise UserError(f"model {spec.name!r}: checkpoints.yaml gives no weights.path")
    module.eval().to(device)
    for part in extras.values():
        part.eval().to(device)

    preprocess = _preprocess(spec, module)
    tokenizer, tok_info = make_tokenizer(spec, arch_name)
    check_text_fit(spec, module, tok_info, weights_info.get("file_sha256"))
    backend_name = backend_for(spec.backend, module)
    backend = backend_class(backend_name)(module, extras)
    info = {"arch": spec.arch, "backend": backend_name, "weights": weights_info, "tokenizer": tok_info}
    if ref.source:
        info["source"] = ref.source
    return VLModel(
        ref=ref.text,
        name=spec.name,
        variant=ref.variant,
        checkpoint_sha256=sha,
        towers=Towers(module, backend, tokenizer),
        preprocess=preprocess,
        dense_mode=spec.dense_mode,
        device=torch.device(device),
        precision=precision,
        info=info,
        identity=model_identity(ref),
        text_trimmable=trimmable(module),
    )


def _load_files(
    ref: ModelRef, module: torch.nn.Module, files: list[tuple[Path, str | None]], extras: dict
) -> tuple[str, dict[str, Any]]:
    """Every checkpoint file verified and loaded into `module` (and the backend's parts):
    the checkpoint sha256 and the weights record for the result."""
    spec = ref.spec
    sd: dict[str, torch.Tensor] = {}
    shas = []
    origin: dict[str, str] = {}  # key → file it came from (reported for TCL's two files)
    for path, expected in files:
        shas.append(_verified_sha256(spec, path, expected))
        part = read_state_dict(path)
        origin.update(dict.fromkeys(part, path.name))
        sd.update(part)
    sd = select_variant(sd, ref.variant, list(spec.variants))
    sd = _attach_backend(spec, module, sd, extras, ", ".join(str(p) for p, _ in files))
    load_into(module, sd, ", ".join(str(p) for p, _ in files))
    sha = shas[0] if len(shas) == 1 else hash_obj(shas)
    weights_info: dict[str, Any] = {"files": [str(p) for p, _ in files], "file_sha256": shas}
    if spec.backend == "tcl":
        from silc_bench.models.backends.tcl import key_provenance

        weights_info["keys"] = key_provenance(origin)
    return sha, weights_info


def _preprocess(spec: ModelSpec, module: torch.nn.Module) -> Preprocess:
    """The checkpoint's own preprocessing (open_clip's preprocess_cfg), then the registry's."""
    pp_raw = dict(getattr(module.visual, "preprocess_cfg", {}) or {})
    base = {
        "size": _as_int(pp_raw.get("size", getattr(module.visual, "image_size", 224))),
        "resize": pp_raw.get("resize_mode", "shortest"),
        "interpolation": pp_raw.get("interpolation", "bicubic"),
        "mean": list(pp_raw.get("mean", Preprocess().mean)),
        "std": list(pp_raw.get("std", Preprocess().std)),
    }
    return Preprocess.from_dict({**base, **spec.preprocess}, f"model {spec.name!r}")


def _attach_backend(
    spec: ModelSpec, module: torch.nn.Module, sd: dict[str, torch.Tensor], extras: dict[str, Any], source: str
) -> dict[str, torch.Tensor]:
    """Take the backend's own parts out of the state dict; return what the CLIP should load."""
    if spec.backend == "pacl":
        from silc_bench.models.backends.pacl import PACLEmbedder, split_state_dict

        sd, emb_sd = split_state_dict(sd)
        visual = module.visual
        embedder = PACLEmbedder(visual.conv1.out_channels, visual.proj.shape[1])
        load_into(embedder, emb_sd, f"{source} (pacl.*)")
        extras["pacl"] = embedder
    elif spec.backend == "tcl":
        from silc_bench.models.backends.tcl import AUTHORS_IGNORED, load_tcl_masker

        masker_sd = {k: v for k, v in sd.items() if k.startswith("masker.")}
        # the release's own copy of CLIP and its loss parameters are not used: CLIP comes from its file
        sd = {k: v for k, v in sd.items() if not k.startswith(("masker.", *AUTHORS_IGNORED))}
        extras["tcl"] = load_tcl_masker(module, masker_sd)
    return sd


def _as_int(size: Any) -> int:
    if isinstance(size, (list, tuple)):
        if size[0] != size[1]:
            raise UserError(f"non-square input size {size} is not supported")
        return int(size[0])
    return int(size)


def _tensor_sha(module: torch.nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def make_tokenizer(spec: ModelSpec, arch_name: str | None):  # noqa: ANN202
    cfg = dict(spec.tokenizer)
    kind = cfg.pop("type", "open_clip")
    if kind == "sentencepiece":
        from silc_bench.models.sp_tokenizer import load_tokenizer

        return load_tokenizer({**cfg, "type": kind}, spec.name, weights_dir() / "tokenizers")
    if kind != "open_clip":
        raise UserError(
            f"model {spec.name!r}: tokenizer type {kind!r} is not supported (open_clip, sentencepiece)"
        )
    hf = (
        ((open_clip_config(arch_name) or {}).get("text_cfg") or {}).get("hf_tokenizer_name")
        if arch_name
        else None
    )
    if hf:
        raise UserError(
            f"model {spec.name!r}: open_clip {arch_name} tokenizes with the Hugging Face tokenizer {hf}, "
            "which is never downloaded here; give its sentencepiece file instead "
            "(`silc-bench convert ... --tokenizer PATH`, or a registry entry with "
            "tokenizer: {type: sentencepiece, file: ..., context_length: ...})"
        )
    context_length = cfg.pop("context_length", None)
    if cfg:
        raise UserError(f"model {spec.name!r}: unknown tokenizer key(s) {sorted(cfg)}")
    import open_clip

    if arch_name is not None:
        register_configs()
        tok = open_clip.get_tokenizer(arch_name, context_length=context_length)
    else:  # a `config:` arch: its own text context length unless the entry says otherwise
        ctx = context_length or (spec.arch.get("config", {}).get("text_cfg") or {}).get("context_length", 77)
        tok = open_clip.SimpleTokenizer(context_length=ctx)
    return tok, {
        "type": kind,
        "class": type(tok).__name__,
        "context_length": getattr(tok, "context_length", context_length),
    }

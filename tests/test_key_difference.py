"""`key_difference`: why a stored result is replaced, or how two torchrun ranks differ,
named at the deepest field that differs so the two values never read alike."""

from __future__ import annotations

import copy

from silc_bench.api import key_difference

SPEC = {
    "arch": {"open_clip": "ShapesTiny-P8"},
    "backend": "open_clip",
    "preprocess": {
        "size": 64,
        "resize": "shortest",
        "interpolation": "bicubic",
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
    "tokenizer": {"type": "open_clip", "context_length": 40},
    "dense_mode": "patch-proj",
}


def _key(spec: dict) -> dict:
    return {"model": {"model": "mytiny", "variant": "teacher", "spec": spec}, "limit": 4}


def test_a_nested_difference_names_the_deepest_field_and_its_two_values():
    other = copy.deepcopy(SPEC)
    other["preprocess"]["mean"] = [0.5, 0.5, 0.5]
    why = key_difference(_key(SPEC), _key(other))
    assert why == (
        "its model.spec.preprocess.mean was [0.48145466,0.4578275,0.40821073], this run has [0.5,0.5,0.5]"
    ), why


def test_a_flat_field_keeps_its_first_level_wording():
    why = key_difference({"limit": 4, "seed": 0}, {"limit": 8, "seed": 0})
    assert why == "its limit was 4, this run has 8"
    stored, wanted = _key(SPEC), _key(SPEC)
    wanted["model"]["variant"] = "student"
    assert key_difference(stored, wanted) == "its model.variant was teacher, this run has student"
    assert key_difference(stored, stored) is None
    assert key_difference({}, wanted) == "it records no run key (written by an older silc-bench)"


def test_a_field_only_one_side_has_and_a_type_change():
    wanted = _key(SPEC)
    stored = copy.deepcopy(wanted)
    del stored["model"]["spec"]["dense_mode"]
    assert key_difference(stored, wanted) == "its model.spec.dense_mode was null, this run has patch-proj"
    stored = copy.deepcopy(wanted)
    stored["model"]["spec"]["preprocess"] = 64  # not a dict: said at that level, whole
    why = key_difference(stored, wanted)
    assert why is not None and why.startswith("its model.spec.preprocess was 64, this run has {"), why


def test_long_values_alike_at_both_ends_are_cut_where_they_differ():
    a, b = "x" * 40 + "A" + "y" * 40, "x" * 40 + "B" + "y" * 40
    why = key_difference({"data": {"fingerprint": a}}, {"data": {"fingerprint": b}})
    assert why is not None
    old, new = why.removeprefix("its data.fingerprint was ").split(", this run has ")
    assert old != new and "A" in old and "B" in new, why
    assert len(old) < 60 and len(new) < 60, why

#!/usr/bin/env bash
# Prepare the GPU check for a machine that has CUDA PyTorch but no package index (the lent
# H200s: Python 3.12, torch, torchvision, timm, numpy, scipy, pandas, safetensors, ... but no
# open_clip, mmseg, mmengine, mmcv-lite or CLIP_benchmark). Run HERE, where pip reaches an
# index: it puts the missing pure-Python wheels in .whl/ (git-ignored, ~8 MB). THERE, from
# the repository root:
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl \
#     && PYTHONPATH=/tmp/site:$PWD PYTHON=python3 bash silc_bench/bench/gpu.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
mkdir -p .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  "${platforms[@]}" -d .whl \
  open_clip_torch==3.3.0 ftfy wcwidth mmsegmentation==1.2.2 mmengine==0.10.7 clip-benchmark==1.6.2 \
  addict yapf platformdirs termcolor prettytable
# mmcv-lite publishes no wheel: build its pure-Python one from the source archive
ls .whl/mmcv_lite-2.1.0-*.whl >/dev/null 2>&1 || \
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -w .whl mmcv-lite==2.1.0
echo "gpu_prepare.sh: $(ls .whl | wc -l) wheels in .whl/ ($(du -sh .whl | cut -f1)); carry .whl to the GPU machine"

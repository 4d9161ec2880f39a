#!/usr/bin/env bash
# The prepared GPU check (issue 11): under 8 minutes on one GPU, nothing downloaded.
# Writes reports/perf-gpu.md. Fails loudly without a GPU.
#   bash silc_bench/bench/gpu.sh            (from the repository root; PYTHON=... to pick an interpreter)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  echo "gpu.sh: no CUDA GPU visible to $PY: this check measures GPUs only" >&2
  exit 1
fi
OUT=reports/perf-gpu.md
echo "# Performance on a GPU" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
# 1. ViT-B/16 images/s (fp32, bf16, bf16 + compile) against the roofline; torchrun with every GPU
"$PY" -m silc_bench.bench.gpu --out "$OUT"
# 2. zs-seg vs mmseg's per-window slide_inference: identical predictions, speed, peak CUDA memory
"$PY" -m silc_bench.bench.slide --images 8 --window-batch 8 --device cuda --repeats 3 --out "$OUT"
# 3. zs-cls + retrieval vs CLIP_benchmark's evaluate (goal: >= 1.5x)
"$PY" -m silc_bench.bench.vs_clip_benchmark --device cuda --repeats 3 --out "$OUT"
echo "gpu.sh: wrote $OUT"

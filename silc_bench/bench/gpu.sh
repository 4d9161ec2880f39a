#!/usr/bin/env bash
# The prepared GPU check (issue 11): under 8 minutes on one GPU, nothing downloaded.
# Writes reports/perf-gpu.md. Fails loudly without a GPU.
#   bash silc_bench/bench/gpu.sh              (from anywhere; PYTHON=... picks an interpreter)
#   bash silc_bench/bench/gpu.sh --dry-run    (any machine: every step on the CPU with a tiny
#                                              model into a temporary file; measures nothing,
#                                              proves the script runs; the test suite runs it)
# Every step runs even if an earlier one failed; the exit status is 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY="$(command -v python3)"
DRY=0
if [ $# -gt 1 ]; then echo "gpu.sh: one argument at most (--dry-run)" >&2; exit 2; fi
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "gpu.sh: unknown argument '$1' (only --dry-run)" >&2; exit 2 ;;
esac

if [ "$DRY" = 1 ]; then
  OUT="${GPU_CHECK_OUT:-$(mktemp -d)/perf-gpu-dry-run.md}"
  DEV=cpu
  # tiny model, tiny inputs, one repeat: the same code paths, a minute on two cores
  SLIDE=(--arch ViT-Tiny-P8 --images 1 --height 64 --width 96 --crop 32 --stride 16 --classes 5 --repeats 1 --label "dry run")
  VSCB=(--arch ViT-Tiny-P8 --repeats 1 --warmup 0 --prompts shapes --label "dry run")
  GPU=(--dry-run)
  TITLE="# Performance on a GPU: DRY RUN on the CPU (checks the script, measures nothing)"
else
  if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu.sh: no CUDA GPU visible to $PY: this check measures GPUs only (--dry-run checks the script)" >&2
    exit 1
  fi
  OUT=reports/perf-gpu.md
  DEV=cuda
  SLIDE=(--images 8 --repeats 3)
  VSCB=(--repeats 3)
  GPU=()
  TITLE="# Performance on a GPU"
fi
printf '%s\n' "$TITLE" > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"

failed=()
step() {  # step NAME COMMAND...: run one measurement; remember a failure and go on
  local name="$1"; shift
  echo "gpu.sh: $name" >&2
  if ! "$@"; then failed+=("$name"); echo "gpu.sh: FAILED: $name" >&2; fi
}
# 1. ViT-B/16 images/s (fp32 and bf16, each with and without --compile) against the roofline;
#    its text tower on ImageNet-shaped prompts with --text-encoding trimmed against full (the
#    speed-up and the largest gap in the normalised embeddings); torchrun with every GPU
#    present against one process
step "image + text encoding + torchrun" "$PY" -m silc_bench.bench.gpu "${GPU[@]}" --out "$OUT"
# 2. zs-seg vs mmseg's per-window slide_inference: one window per forward must give identical
#    predictions; stacked windows (zs-seg's GPU default, 8) are timed and their agreement shown
step "slide, one window per forward" "$PY" -m silc_bench.bench.slide "${SLIDE[@]}" --device "$DEV" --window-batch 1 --out "$OUT"
step "slide, 8 windows per forward" "$PY" -m silc_bench.bench.slide "${SLIDE[@]}" --device "$DEV" --window-batch 8 --out "$OUT"
# 3. zs-cls + retrieval vs CLIP_benchmark's evaluate (goal: >= 1.5x on a GPU)
step "vs CLIP_benchmark" "$PY" -m silc_bench.bench.vs_clip_benchmark "${VSCB[@]}" --device "$DEV" --out "$OUT"
# 4. the shipped checkpoints' regression check, measured on this device (CI measures the CPU);
#    its table goes into the file (the dry run checks one model on the CPU)
regression() {
  local results log rc
  results="$(mktemp -d)"; log="$results.md"
  "$PY" -m silc_bench check --regression --run --quiet --device "$DEV" --results "$results" \
    --models "$@" > "$log"; rc=$?
  { printf '\n## Regression check of the shipped checkpoints on %s%s\n\n' "$DEV" \
      "$([ "$DRY" = 1 ] && echo ' (dry run)')"
    echo "Written by \`silc-bench check --regression --run --device $DEV --models $*\` (exit $rc)."
    echo; cat "$log"; } >> "$OUT"
  return $rc
}
if [ "$DRY" = 1 ]; then
  step "regression check" regression pacl-tiny
else
  step "regression check on the GPU" regression silc-tiny clip-tiny pacl-tiny
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "gpu.sh: ${#failed[@]} step(s) failed: ${failed[*]}; what was measured is in $OUT" >&2
  exit 1
fi
echo "gpu.sh: wrote $OUT"

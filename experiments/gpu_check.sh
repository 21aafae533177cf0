#!/usr/bin/env bash
# The CUDA paths in at most 5 minutes, as one markdown table (written to a file and printed):
#   1. the paper's ARC TRM, bfloat16 forward, under torch.compile: compile, step time, compiled vs eager loss
#   2. a joint training step of the hybrid (tiny-random backbone) in both layouts, fp32 and bf16 autocast;
#      stored prompt keys and values vs computed; predict
#   3. experiments/bench_trm.py --devices cuda --quick (with the reference TRM when --reference DIR is given)
#   4. tiny-random in 4 bits with LoRA on the GPU, where bitsandbytes is importable
#
#   experiments/gpu_check.sh [--reference DIR] [--out FILE]       (FILE default: runs/gpu_check.md)
#
# Installs nothing: it runs the machine's python3 (or $PYTHON) and its torch, with this checkout on
# PYTHONPATH. A check whose packages are missing is reported "skipped". Exit 0 when every check
# passed or was skipped, 1 when one failed, 2 without CUDA or on bad arguments.
# GPU_CHECK_DEVICE=cpu runs the same checks on the CPU (narrower TRM; bench_trm with --devices cpu):
# a way to try this script on a machine without a GPU, not a measurement.
set -u
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
DEVICE=${GPU_CHECK_DEVICE:-cuda}
OUT_FILE=runs/gpu_check.md
REFERENCE=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reference) REFERENCE=${2:-}; shift 2 ;;
    --out) OUT_FILE=${2:-}; shift 2 ;;
    *) echo "gpu_check.sh: unknown argument '$1' (expected --reference DIR, --out FILE)" >&2; exit 2 ;;
  esac
done
if [ -n "$REFERENCE" ] && [ ! -d "$REFERENCE/models/recursive_reasoning" ]; then
  echo "gpu_check.sh: --reference $REFERENCE is not a TinyRecursiveModels checkout (no models/recursive_reasoning)" >&2
  exit 2
fi
case "$DEVICE" in cuda|cpu) ;; *) echo "gpu_check.sh: GPU_CHECK_DEVICE should be cuda or cpu, got '$DEVICE'" >&2; exit 2 ;; esac

export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
HEADER=$("$PYTHON" - "$DEVICE" <<'EOF'
import sys
try:
    import torch
except ImportError:
    print("gpu_check.sh: python has no torch; set PYTHON to the interpreter that holds the machine's torch")
    sys.exit(2)
if sys.argv[1] == "cuda" and not torch.cuda.is_available():
    print(f"gpu_check.sh: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}, sees none); "
          "run it on a GPU machine")
    sys.exit(2)
import importlib.util, platform
where = torch.cuda.get_device_name() if sys.argv[1] == "cuda" else f"CPU ({platform.machine()}, no GPU: a trial run)"
versions = []
for name in ("transformers", "peft", "bitsandbytes", "accelerate"):
    if importlib.util.find_spec(name) is None:
        versions.append(f"{name} missing")
    else:
        try:
            versions.append(f"{name} {__import__(name).__version__}")
        except Exception as e:  # a broken install is reported, the check that needs it will fail on its own
            versions.append(f"{name} broken ({type(e).__name__})")
print(f"{where}; torch {torch.__version__} (CUDA {torch.version.cuda}); Python {platform.python_version()}; {', '.join(versions)}")
EOF
) || { echo "$HEADER" >&2; exit 2; }

mkdir -p "$(dirname "$OUT_FILE")"
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
ROWS=()
FAILED=0

# a table cell: lines joined by <br> (markdown renders them as line breaks), no pipes
cell() { printf '%s' "$1" | tr '|' '/' | sed 's/  */ /g' | awk 'NR > 1 { printf "<br>" } { printf "%s", $0 }'; }

# the limits add up to under 5 minutes on a GPU; a CPU trial is slower, so it gets four times as long
SCALE=1
[ "$DEVICE" = cpu ] && SCALE=4

# run NAME LIMIT_S COMMAND...: time it, take its ROW line (or its last output lines if it has none)
run() {
  local name=$1 limit=$(( $2 * SCALE )); shift 2
  local start=$SECONDS status detail
  echo "== $name (at most ${limit} s)" >&2
  timeout --kill-after=5 "$limit" "$@" >"$LOG" 2>&1
  local rc=$?
  cat "$LOG" >&2
  if grep -q $'^ROW\t' "$LOG"; then
    status=$(grep $'^ROW\t' "$LOG" | tail -n 1 | cut -f2)
    detail=$(grep $'^ROW\t' "$LOG" | tail -n 1 | cut -f3-)
    [ $rc -ne 0 ] && status=FAILED detail="exit $rc after: $detail"
  elif [ $rc -eq 0 ]; then
    status=ok detail=$(grep -v '^\s*$' "$LOG" | tail -n 12)
  else
    status=FAILED
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then detail="stopped at its ${limit} s limit; "; else detail="exit $rc; "; fi
    detail+=$(grep -v '^\s*$' "$LOG" | tail -n 3)
  fi
  [ "$status" = FAILED ] && FAILED=1
  ROWS+=("| $name | $status | $(( SECONDS - start )) | $(cell "$detail") |")
}

run "TRM, ARC config, bf16 forward, torch.compile" 100 "$PYTHON" experiments/gpu_check.py trm_compiled "$DEVICE"
run "joint step, both layouts, fp32 and bf16 autocast" 50 "$PYTHON" experiments/gpu_check.py joint_step "$DEVICE"
BENCH=(experiments/bench_trm.py --devices "$DEVICE" --quick)
[ -n "$REFERENCE" ] && BENCH+=(--reference "$REFERENCE")
run "bench_trm.py --devices $DEVICE --quick${REFERENCE:+ --reference}" 100 "$PYTHON" "${BENCH[@]}"
run "4-bit backbone (bitsandbytes) + LoRA" 40 "$PYTHON" experiments/gpu_check.py backbone_4bit "$DEVICE"

{
  echo "gpu_check on $HEADER"
  echo
  echo "| check | status | s | what it measured |"
  echo "|---|---|---:|---|"
  printf '%s\n' "${ROWS[@]}"
} | tee "$OUT_FILE.tmp"
mv "$OUT_FILE.tmp" "$OUT_FILE"
echo "(written to $OUT_FILE)"
exit $FAILED

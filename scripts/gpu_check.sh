#!/usr/bin/env bash
# The course on one CUDA GPU, in one command: the gpu-marked tests, the training benchmark with
# --precision bf16 --channels-last (then with --compile too), 300 steps of dcgan and of stylegan in the gpu
# profile with their metrics, and lessons 02 and 09 executed in the gpu profile. Meant to finish in
# under 8 minutes; every part has its own time limit, and a part that fails does not stop the others.
#
#     scripts/gpu_check.sh [FOLDER]        # FOLDER, else $OUT/gpu_check; PYTHON picks the interpreter
#
# FOLDER receives summary.md (the GPU, each part's status and seconds, the benchmark tables, both
# runs' metrics.json), one log per part, the two run folders and the two executed notebooks (the
# notebooks of the repository are not touched: copies are executed next to them, then moved).
# Exit status: 0 every part passed, 1 some part failed (see summary.md), 2 no folder given,
# 3 no CUDA GPU (checked first: nothing is run).
set -u -o pipefail

cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DEST=${1:-${OUT:+$OUT/gpu_check}}
if [ -z "$DEST" ]; then
    echo "usage: scripts/gpu_check.sh FOLDER (or set OUT: the results go to \$OUT/gpu_check)" >&2
    exit 2
fi
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    echo "gpu_check: CUDA is not available here (torch.cuda.is_available() is False, or torch does not import" \
         "with $PYTHON): this check needs one NVIDIA GPU; nothing was run" >&2
    exit 3
fi

mkdir -p "$DEST/notebooks" "$DEST/runs"
SUMMARY="$DEST/summary.md"
FAILURES=0
GPU_BATCH=$("$PYTHON" -c 'from course_lib.profiles import PROFILES; print(PROFILES["gpu"].batch_size)')
GPU_EVAL=$("$PYTHON" -c 'from course_lib.profiles import PROFILES; print(PROFILES["gpu"].eval_samples)')
{
    echo "# GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    "$PYTHON" -c 'import torch; print(f"- GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")'
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "- gpu profile: batch size $GPU_BATCH, $GPU_EVAL samples for the metrics"
    echo
    echo "| part | status | seconds |"
    echo "|---|---|---|"
} >"$SUMMARY"

part() {  # part NAME LIMIT COMMAND...: run COMMAND for at most LIMIT seconds into NAME.log; a row of the table
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS status
    echo "gpu_check: $name (at most $limit s)" >&2
    timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" >"$DEST/$name.log" 2>&1
    status=$?
    local verdict="ok"
    if [ $status -eq 124 ] || [ $status -eq 137 ]; then
        verdict="FAILED: over $limit s"
    elif [ $status -ne 0 ]; then
        verdict="FAILED: status $status, see $name.log"
    fi
    [ "$verdict" = "ok" ] || FAILURES=$((FAILURES + 1))
    echo "| $name | $verdict | $((SECONDS - start)) |" >>"$SUMMARY"
}

notebook() {  # notebook NAME: execute a copy of notebooks/NAME.ipynb in the gpu profile, keep it in FOLDER
    local copy="notebooks/.gpu_check_$1.ipynb"
    cp "notebooks/$1.ipynb" "$copy" &&
        "$PYTHON" scripts/execute_notebooks.py --profile gpu "$copy"
    local status=$?
    [ -f "$copy" ] && mv "$copy" "$DEST/notebooks/$1.ipynb"
    return $status
}

train() {  # train MODEL: 300 steps in the gpu profile into FOLDER/runs/MODEL
    "$PYTHON" -m course_lib.train "$1" --out "$DEST/runs/$1" --force --steps 300 --device cuda \
        --batch-size "$GPU_BATCH" --eval-samples "$GPU_EVAL"
}

export -f notebook train
export PYTHON DEST GPU_BATCH GPU_EVAL
trap 'rm -f notebooks/.gpu_check_*.ipynb' EXIT  # a notebook copy left by a part that ran out of time

part gpu_tests 150 "$PYTHON" -m pytest -q -m gpu tests -p no:cacheprovider
part benchmark_amp_channels_last 90 "$PYTHON" benchmarks/train_throughput.py --device cuda --precision bf16 --channels-last
part benchmark_amp_channels_last_compile 180 \
    "$PYTHON" benchmarks/train_throughput.py --device cuda --precision bf16 --channels-last --compile
part train_dcgan 90 train dcgan
part train_stylegan 120 train stylegan
part notebook_02_dcgan 240 notebook 02_dcgan
part notebook_09_stylegan 240 notebook 09_stylegan

{
    for name in benchmark_amp_channels_last benchmark_amp_channels_last_compile; do
        echo
        echo "## $name"
        echo
        echo '```'
        tail -n 20 "$DEST/$name.log"
        echo '```'
    done
    for model in dcgan stylegan; do
        echo
        echo "## $model, 300 steps: metrics.json"
        echo
        echo '```'
        cat "$DEST/runs/$model/metrics.json" 2>/dev/null || echo "(no metrics: see train_$model.log)"
        echo '```'
    done
    echo
    echo "## notebooks"
    echo
    echo '```'
    grep -h "profile)" "$DEST/notebook_02_dcgan.log" "$DEST/notebook_09_stylegan.log" 2>/dev/null
    echo '```'
    echo
    if [ $FAILURES -eq 0 ]; then echo "Every part passed."; else echo "$FAILURES part(s) FAILED."; fi
} >>"$SUMMARY"
echo "gpu_check: summary in $SUMMARY" >&2
[ $FAILURES -eq 0 ]

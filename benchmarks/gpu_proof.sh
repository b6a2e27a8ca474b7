#!/usr/bin/env bash
# gpu_proof.sh: one bounded torchparity proof run on a CUDA machine (docs/devices.md).
#
#   bash benchmarks/gpu_proof.sh                        # CUDA if torch sees a GPU, else a CPU dry run
#   GPU_PROOF_DEVICE=cpu bash benchmarks/gpu_proof.sh   # the dry run on purpose
#   OUT=/some/dir bash benchmarks/gpu_proof.sh          # where the few result files go
#
# Runs torchparity from this working tree, uninstalled (PYTHONPATH=src:., never
# pip-installed over the machine's torch), in lanes that run at the same time:
#   models-<prec>-<i>  models suite, eager,torchscript,export,compile at one
#                      precision (fp32 | fp16 | bf16), model shards 1..N in turn
#   ops-<i>            ops catalog, eager,compile x fp32,fp16, op shards 1..N in turn
#   sanity-cpu         (cuda only) a few models, eager fp32 on the CPU: beside
#                      the same cells on cuda in the merged report
#   train              --mode train, eager,compile x fp32,amp-bf16, 3 models
#   aoti               AOTInductor alone (fp32, bf16) on two models: its C++ build
#                      and any crash cost no other lane
# A shard is a spread of the suite (round-robin over sorted case names), so a
# lane cut short still covers every kind of case it reached.
# Every stage has a wall budget (`timeout`, SIGTERM -> KeyboardInterrupt -> the
# run closes its worker and keeps its rows; SIGKILL after a grace). All lanes
# end by GPU_PROOF_DEADLINE seconds; then the runs that hold rows are merged
# (`report RUN... --out merged`) and at most 8 files go to $OUT:
#   gpu_proof.log  env.json  nvidia-smi.txt  results.csv  summary.md  report.html  runs.tar.gz
# With the defaults the whole script ends in under 8 minutes, whatever hangs.
# Timings are taken while the lanes share the GPU and the CPUs: read them as
# rough; GPU_PROOF_PARALLEL=0 runs the lanes one after another (each gets an
# equal share of what is left of the deadline).
#
# Knobs (environment): GPU_PROOF_DEVICE (auto|cuda|cpu), GPU_PROOF_DEADLINE (s),
# GPU_PROOF_RENDER_S (s), GPU_PROOF_PARALLEL (1|0), GPU_PROOF_LANES (a space list of
# models-fp32 models-fp16 models-bf16 ops train aoti; default all),
# GPU_PROOF_MODEL_BACKENDS, GPU_PROOF_AOTI_CASES, GPU_PROOF_MODELS,
# GPU_PROOF_OPS, GPU_PROOF_TRAIN_CASES, GPU_PROOF_SANITY_CASES (comma lists of
# case globs), GPU_PROOF_MODEL_SHARDS, GPU_PROOF_OPS_SHARDS, GPU_PROOF_MIN_TIME,
# GPU_PROOF_WORK (work directory), PYTHON (default python3), TP_MODULE (the
# module run as `python -m`; default torchparity), TP_SUITES_PKG (the built-in suites' package,
# named with --plugin when no entry point names them).

set -u -o pipefail
export PYTHONUNBUFFERED=1

T0=$SECONDS
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

PY=${PYTHON:-python3}
TP_MODULE=${TP_MODULE:-torchparity}
TP_SUITES_PKG=${TP_SUITES_PKG:-$TP_MODULE.suites}
export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"

STAMP=$(date -u +%Y%m%dT%H%M%SZ)
WORK=${GPU_PROOF_WORK:-$ROOT/reports/gpu-proof-$STAMP}
OUT=${OUT:-$WORK/out}
mkdir -p "$WORK/runs" "$WORK/logs" "$WORK/cache" "$OUT" || exit 2
LOG=$OUT/gpu_proof.log
: >"$LOG"

# Every process this script starts carries this tag: what is still alive at the
# end (a worker whose parent was killed) is found by it and only by it.
GPU_PROOF_TAG="gpu-proof-$$-$STAMP"
export GPU_PROOF_TAG

KILL_GRACE=15   # SIGTERM -> SIGKILL, per stage
MIN_STAGE_S=20  # a stage with less time left than this is not started
PARALLEL=${GPU_PROOF_PARALLEL:-1}
RENDER_S=${GPU_PROOF_RENDER_S:-50}

log() {
    printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*" | tee -a "$LOG"
}

# `python -m $TP_MODULE ...`, with SIGTERM (what `timeout` sends) raised as
# KeyboardInterrupt: the run then closes its worker (a process group of its
# own, which the signal does not reach) and keeps the rows it wrote.
LAUNCH='import runpy, signal, sys
signal.signal(signal.SIGTERM, signal.default_int_handler)
signal.signal(signal.SIGINT, signal.default_int_handler)
module = sys.argv.pop(1)
sys.argv[0] = module
runpy.run_module(module, run_name="__main__", alter_sys=True)'

tp() {
    "$PY" -c "$LAUNCH" "$TP_MODULE" "$@"
}

# "a,b" -> --case a --case b
case_args() {
    local glob
    local -a globs
    IFS=, read -r -a globs <<<"$1"
    for glob in "${globs[@]}"; do
        [ -n "$glob" ] && printf -- '--case\n%s\n' "$glob"
    done
}

# "rows, statuses" of a run directory, e.g. "12 rows (pass 9, skip 3)"
row_summary() {
    "$PY" - "$1/results.jsonl" <<'PY'
import collections, json, sys
counts, n = collections.Counter(), 0
try:
    with open(sys.argv[1], encoding="utf-8") as fh:
        for line in fh:
            try:
                counts[json.loads(line).get("status", "?")] += 1
                n += 1
            except ValueError:
                counts["torn line"] += 1
except OSError:
    pass
print(f"{n} rows" + (" (" + ", ".join(f"{k} {v}" for k, v in counts.most_common()) + ")" if counts else ""))
PY
}

# run_stage NAME BUDGET_S RUN_ARGS...: `torchparity run` into runs/NAME, bounded
# by BUDGET_S and by the lane's end (LANE_END, seconds since the start).
run_stage() {
    local name=$1 budget=$2
    shift 2
    local left=$((LANE_END - (SECONDS - T0)))
    if [ "$budget" -gt "$left" ]; then
        budget=$left
    fi
    if [ "$budget" -lt "$MIN_STAGE_S" ]; then
        log "stage $name: not started (${left}s left in its lane)"
        return 0
    fi
    log "stage $name: start, budget ${budget}s"
    local started=$SECONDS rc=0 what
    timeout -k "$KILL_GRACE" "$budget" "$PY" -c "$LAUNCH" "$TP_MODULE" run \
        --out "$WORK/runs/$name" --cache-dir "$WORK/cache/$name" \
        ${PLUGINS[@]+"${PLUGINS[@]}"} "$@" >"$WORK/logs/$name.log" 2>&1 || rc=$?
    case $rc in
        0) what="done" ;;
        1) what="done (findings)" ;;
        124) what="TIMED OUT after ${budget}s, rows so far kept" ;;
        130) what="interrupted" ;;
        137) what="KILLED (no exit within ${KILL_GRACE}s of SIGTERM)" ;;
        *) what="FAILED, exit $rc" ;;
    esac
    log "stage $name: $what; $(row_summary "$WORK/runs/$name") in $((SECONDS - started))s"
    if [ "$rc" -gt 1 ] && [ "$rc" -ne 124 ]; then
        tail -n 5 "$WORK/logs/$name.log" | sed "s/^/    $name| /" | tee -a "$LOG"
    fi
    return 0
}

heartbeat() {
    local dir line
    while sleep 30; do
        line=""
        for dir in "$WORK"/runs/*/; do
            [ -f "$dir/results.jsonl" ] || continue
            line+=" $(basename "$dir")=$(wc -l <"$dir/results.jsonl")"
        done
        log "progress (rows):${line:- none yet}"
    done
}

# Kill what is left of this script's processes (found by GPU_PROOF_TAG), not
# the script itself.
reap_leftovers() {
    "$PY" - "$$" <<'PY'
import os, signal, sys
tag = ("GPU_PROOF_TAG=" + os.environ["GPU_PROOF_TAG"]).encode()
spare = {os.getpid(), os.getppid(), int(sys.argv[1])}
killed = []
for entry in os.listdir("/proc"):
    if not entry.isdigit() or int(entry) in spare:
        continue
    try:
        with open(f"/proc/{entry}/environ", "rb") as fh:
            if tag not in fh.read().split(b"\0"):
                continue
        with open(f"/proc/{entry}/comm", encoding="utf-8", errors="replace") as fh:
            name = fh.read().strip()
        os.kill(int(entry), signal.SIGKILL)
        killed.append(f"{entry} ({name})")
    except OSError:
        pass
print("leftover processes killed: " + (", ".join(killed) if killed else "none"))
PY
}

# --- environment -----------------------------------------------------------------

log "gpu_proof: root $ROOT, work $WORK, out $OUT, module $TP_MODULE"
{
    echo "## nvidia-smi (start)"
    timeout 20 nvidia-smi 2>&1 || echo "(nvidia-smi: not available, exit $?)"
    echo
    echo "## nvidia-smi --query-gpu"
    timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit \
        --format=csv 2>&1 || echo "(not available)"
    echo
    echo "## nvcc --version"
    timeout 20 nvcc --version 2>&1 || echo "(nvcc: not available)"
} >"$OUT/nvidia-smi.txt"

timeout 90 "$PY" - "$OUT/env.json" >>"$LOG" 2>&1 <<'PY'
import importlib.metadata as md, json, os, platform, shutil, subprocess, sys
info = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
for dist in ("torch", "triton", "numpy", "pandas", "onnx", "onnxruntime", "onnxruntime-gpu",
             "onnxscript", "transformers", "torchvision", "timm", "matplotlib", "scipy", "torchparity"):
    try:
        info[dist] = md.version(dist)
    except md.PackageNotFoundError:
        info[dist] = None
try:
    import torch
    info["torch_file"] = torch.__file__
    info["torch_cuda"] = torch.version.cuda
    info["cuda_built"] = torch.backends.cuda.is_built()
    info["cuda_available"] = torch.cuda.is_available()
    info["cudnn"] = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    if info["cuda_available"]:
        info["gpus"] = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            info["gpus"].append({"name": p.name, "capability": f"{p.major}.{p.minor}",
                                 "memory_gib": round(p.total_memory / 2**30, 1)})
        info["bf16_supported"] = torch.cuda.is_bf16_supported()
        from torch.utils import cpp_extension
        info["cuda_home"] = cpp_extension.CUDA_HOME
except Exception as exc:  # recorded, not fatal
    info["torch_error"] = f"{type(exc).__name__}: {exc}"
    info.setdefault("cuda_available", False)
try:
    out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20)
    info["driver"] = out.stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    info["driver"] = None
info["compilers"] = {c: shutil.which(c) for c in ("cc", "gcc", "g++", "clang++", "nvcc", "cmake", "ninja")}
try:
    import onnxruntime
    info["onnxruntime_providers"] = onnxruntime.get_available_providers()
except Exception as exc:
    info["onnxruntime_providers"] = f"{type(exc).__name__}: {exc}"
info["env"] = {k: v for k, v in os.environ.items()
               if k.startswith(("CUDA", "TORCH", "NVIDIA", "OMP_", "GPU_PROOF"))}
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    json.dump(info, fh, indent=1, sort_keys=True)
print("env: torch", info.get("torch"), "cuda", info.get("torch_cuda"), "driver", info.get("driver"),
      "gpus", info.get("gpus"), "cuda_available", info.get("cuda_available"))
PY

DEVICE=${GPU_PROOF_DEVICE:-auto}
if [ "$DEVICE" = auto ]; then
    if "$PY" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("cuda_available") else 1)' \
        "$OUT/env.json" 2>/dev/null; then
        DEVICE=cuda
    else
        DEVICE=cpu
    fi
fi
MODEL_BACKENDS=${GPU_PROOF_MODEL_BACKENDS:-eager,torchscript,export,compile}
if [ "$DEVICE" = cuda ]; then
    DEADLINE=${GPU_PROOF_DEADLINE:-380}
    MIN_TIME=${GPU_PROOF_MIN_TIME:-0.05}
    MODELS=${GPU_PROOF_MODELS:-*}
    OPS=${GPU_PROOF_OPS:-*}
    TRAIN_CASES=${GPU_PROOF_TRAIN_CASES:-resnet_small,transformer_encoder,lstm_classifier}
    SANITY_CASES=${GPU_PROOF_SANITY_CASES:-mlp,resnet_small,transformer_encoder,lstm_classifier}
    MODEL_SHARDS=${GPU_PROOF_MODEL_SHARDS:-3}
    OPS_SHARDS=${GPU_PROOF_OPS_SHARDS:-4}
    AOTI_CASES=${GPU_PROOF_AOTI_CASES:-mlp,transformer_encoder}
    T_MODEL=120 T_OP=60 T_TRAIN=150
else  # the dry run: the same stages, a few cases, tiny budgets
    DEADLINE=${GPU_PROOF_DEADLINE:-300}
    MIN_TIME=${GPU_PROOF_MIN_TIME:-0.01}
    MODELS=${GPU_PROOF_MODELS:-mlp}
    OPS=${GPU_PROOF_OPS:-add,relu,sum,matmul}
    TRAIN_CASES=${GPU_PROOF_TRAIN_CASES:-mlp}
    SANITY_CASES=""  # cpu vs cpu would repeat the models lanes' cells
    MODEL_SHARDS=${GPU_PROOF_MODEL_SHARDS:-1}
    OPS_SHARDS=${GPU_PROOF_OPS_SHARDS:-1}
    AOTI_CASES=${GPU_PROOF_AOTI_CASES:-mlp}
    T_MODEL=120 T_OP=60 T_TRAIN=150
fi
if [ "$PARALLEL" = 1 ] && [ -z "${TORCHINDUCTOR_COMPILE_THREADS:-}" ]; then
    export TORCHINDUCTOR_COMPILE_THREADS=4  # five lanes compile at once
fi
log "device $DEVICE; lanes end by ${DEADLINE}s; parallel=$PARALLEL; min-time $MIN_TIME"

# --- the built-in suites, uninstalled ----------------------------------------------
# Built-in suites register through the `torchparity.plugins` entry point, which
# exists only where the distribution is installed. Uninstalled, name them.
PLUGINS=()
if timeout 90 "$PY" -c "$LAUNCH" "$TP_MODULE" list suites >"$WORK/logs/list-suites.log" 2>&1 \
    && grep -q '^models ' "$WORK/logs/list-suites.log"; then
    log "suites: found through entry points ($(tr -s ' \n' ' ' <"$WORK/logs/list-suites.log"))"
else
    PLUGINS=(--plugin "$TP_SUITES_PKG.models" --plugin "$TP_SUITES_PKG.ops")
    log "suites: NOT found through entry points (uninstalled tree); using ${PLUGINS[*]}"
    if timeout 90 "$PY" -c "$LAUNCH" "$TP_MODULE" list suites "${PLUGINS[@]}" \
        >"$WORK/logs/list-suites.log" 2>&1 && grep -q '^models ' "$WORK/logs/list-suites.log"; then
        log "suites: $(tr -s ' \n' ' ' <"$WORK/logs/list-suites.log")"
    else
        log "suites: still not found; see below"
        tail -n 20 "$WORK/logs/list-suites.log" | tee -a "$LOG"
    fi
fi

# --- the lanes ---------------------------------------------------------------------

COMMON=(--device "$DEVICE" --rounds 1 --min-time "$MIN_TIME" --no-localize)
mapfile -t MODEL_CASES < <(case_args "$MODELS")
mapfile -t OPS_CASES < <(case_args "$OPS")
mapfile -t TRAIN_CASE_ARGS < <(case_args "$TRAIN_CASES")
mapfile -t SANITY_CASE_ARGS < <(case_args "$SANITY_CASES")
mapfile -t AOTI_CASE_ARGS < <(case_args "$AOTI_CASES")

lane_models() {  # PRECISION
    local i
    for ((i = 1; i <= MODEL_SHARDS; i++)); do
        run_stage "models-$1-$i" "$DEADLINE" --suite models "${MODEL_CASES[@]}" \
            --backend "$MODEL_BACKENDS" --precision "$1" \
            --shard "$i/$MODEL_SHARDS" --timeout "$T_MODEL" "${COMMON[@]}"
    done
}

lane_ops() {
    local i
    for ((i = 1; i <= OPS_SHARDS; i++)); do
        run_stage "ops-$i" "$DEADLINE" --suite ops "${OPS_CASES[@]}" --backend eager,compile \
            --precision fp32,fp16 --shard "$i/$OPS_SHARDS" --timeout "$T_OP" "${COMMON[@]}"
    done
}

lane_train() {
    if [ "${#SANITY_CASE_ARGS[@]}" -gt 0 ]; then
        run_stage sanity-cpu 60 --suite models "${SANITY_CASE_ARGS[@]}" --backend eager \
            --precision fp32 --timeout 60 --device cpu --rounds 1 --min-time "$MIN_TIME" --no-localize
    fi
    run_stage train "$DEADLINE" --suite models --mode train "${TRAIN_CASE_ARGS[@]}" \
        --backend eager,compile --precision fp32,amp-bf16 --timeout "$T_TRAIN" "${COMMON[@]}"
}

lane_aoti() {  # AOTInductor alone: a crash or a long C++ build costs no other cell
    run_stage aoti "$DEADLINE" --suite models "${AOTI_CASE_ARGS[@]}" --backend aoti \
        --precision fp32,bf16 --timeout "$T_MODEL" "${COMMON[@]}"
}

read -r -a LANES_SELECTED <<<"${GPU_PROOF_LANES:-models-fp32 models-fp16 models-bf16 ops train aoti}"
LANES=()
for lane in "${LANES_SELECTED[@]}"; do
    case "$lane" in
        models-*) LANES+=("lane_models ${lane#models-}") ;;
        ops | train | aoti) LANES+=("lane_$lane") ;;
        *) log "unknown lane $lane (models-PRECISION, ops, train, aoti)"; exit 2 ;;
    esac
done
heartbeat &
HEARTBEAT_PID=$!
if [ "$PARALLEL" = 1 ]; then
    LANE_END=$DEADLINE
    pids=()
    for lane in "${LANES[@]}"; do
        $lane &
        pids+=("$!")
    done
    wait "${pids[@]}"
else
    remaining=${#LANES[@]}
    for lane in "${LANES[@]}"; do
        LANE_END=$(((SECONDS - T0) + (DEADLINE - (SECONDS - T0)) / remaining))
        $lane
        remaining=$((remaining - 1))
    done
fi
kill "$HEARTBEAT_PID" 2>/dev/null
wait "$HEARTBEAT_PID" 2>/dev/null
log "lanes finished; $(reap_leftovers)"

# --- the reports -------------------------------------------------------------------

RUNS=()
for dir in "$WORK"/runs/*/; do
    dir=${dir%/}
    if [ -s "$dir/results.jsonl" ]; then
        RUNS+=("$dir")
    fi
done
log "runs with rows: ${#RUNS[@]}"
if [ "${#RUNS[@]}" -gt 0 ]; then
    rc=0
    timeout -k 10 "$RENDER_S" "$PY" -c "$LAUNCH" "$TP_MODULE" report "${RUNS[@]}" \
        --out "$WORK/merged" >"$WORK/logs/report.log" 2>&1 || rc=$?
    log "merged report: exit $rc ($(tail -n 1 "$WORK/logs/report.log"))"
    for f in results.csv summary.md report.html; do
        if [ -f "$WORK/merged/$f" ]; then
            cp "$WORK/merged/$f" "$OUT/$f"
        fi
    done
    if [ ! -f "$OUT/results.csv" ]; then  # the report failed: the rows as CSV all the same
        "$PY" - "$OUT/results.csv" "${RUNS[@]}" <<'PY' 2>&1 | tee -a "$LOG"
import csv, json, sys
rows = []
for run in sys.argv[2:]:
    with open(f"{run}/results.jsonl", encoding="utf-8") as fh:
        rows += [json.loads(line) for line in fh if line.strip().startswith("{")]
keys = list(dict.fromkeys(k for r in rows for k in r))
with open(sys.argv[1], "w", newline="", encoding="utf-8") as fh:
    w = csv.DictWriter(fh, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows({k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in r.items()} for r in rows)
print(f"fallback results.csv: {len(rows)} rows")
PY
    fi
fi

{
    echo
    echo "## nvidia-smi (end)"
    timeout 10 nvidia-smi 2>&1 || echo "(nvidia-smi: not available)"
} >>"$OUT/nvidia-smi.txt"

# Everything else in one archive: each run's rows, selection, env and logs
# (no caches, no stored outputs), and the stages' console logs.
LITE=$WORK/lite
rm -rf "$LITE"
mkdir -p "$LITE/runs"
for dir in "$WORK"/runs/*/; do
    name=$(basename "$dir")
    mkdir -p "$LITE/runs/$name"
    for f in results.jsonl run.json env.json summary.md; do
        if [ -f "$dir/$f" ]; then
            cp "$dir/$f" "$LITE/runs/$name/"
        fi
    done
    if [ -f "$dir/worker.log" ]; then
        tail -c 1000000 "$dir/worker.log" >"$LITE/runs/$name/worker.log"
    fi
done
cp -r "$WORK/logs" "$LITE/logs"
tar -czf "$OUT/runs.tar.gz" -C "$LITE" runs logs 2>>"$LOG"
if [ "$(wc -c <"$OUT/runs.tar.gz")" -gt $((15 * 1024 * 1024)) ]; then
    find "$LITE" -name worker.log -delete
    tar -czf "$OUT/runs.tar.gz" -C "$LITE" runs logs 2>>"$LOG"
    log "runs.tar.gz: worker logs left out (over 15 MiB)"
fi

log "files in $OUT: $(cd "$OUT" && for f in *; do printf '%s(%s) ' "$f" "$(wc -c <"$f")"; done)"
log "gpu_proof: done in $((SECONDS - T0))s"

#!/usr/bin/env bash
# resvit-export device-side engine build. Run ON THE TARGET (Jetson or GPU host) inside the extracted bundle:
#     ./build_engine.sh                 # detects TensorRT + JetPack, verifies SHA256SUMS, builds model.<prec>.plan
#     TRT_MAJOR=10 ./build_engine.sh    # force TensorRT 10 syntax;  WORKSPACE_MIB=2048 caps the builder workspace
#     OPT_LEVEL=2 ./build_engine.sh     # lower builder optimization level (less build memory/time)
#     ./build_engine.sh --no-check      # skip the engine parity check that runs right after the build
# After the build, check_engine.py runs the engine over the workstation's parity matrix against PyTorch's
# recorded outputs (reference.json/.npz) and records the verdict beside it (model.<prec>.plan.check.json, which
# `resvit-export inspect` shows); a breach exits 3, a check that cannot run exits with its own code (6, 7).
# CHECK_RUNNER=MODULE:CLASS picks the check's engine runner (default run_engine:EngineRunner), PYTHON the python.
# Semantics: TensorRT 10 -> --fp16 on model.onnx, or --stronglyTyped on model.fp16.onnx / model.int8.onnx (Q/DQ);
#            TensorRT 11 -> precision comes from the ONNX only (model.fp16.onnx / model.int8.onnx); no --fp16/--int8/--calib.
set -euo pipefail

say() { echo "[build_engine] $*"; }
die() { echo "[build_engine] ERROR: $*" >&2; exit "${2:-1}"; }

CHECK=1
for arg in "$@"; do
  case "$arg" in
    --no-check) CHECK=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ {print; next} NR > 1 {exit}' "$0"; exit 0 ;;
    *) die "unknown option $arg (the only option is --no-check; settings are environment variables, see --help)" 2 ;;
  esac
done
cd "$(dirname "$0")"

# 1. integrity: the bundle verifies its own hashes before anything runs
if command -v sha256sum >/dev/null 2>&1; then
  sha256sum --quiet -c SHA256SUMS || die "SHA256SUMS check failed: the bundle was modified or corrupted" 6
else
  say "sha256sum not found; skipping the integrity check"
fi

# shellcheck disable=SC1091
. ./profiles.env

# 2. JetPack / L4T (absent on non-Jetson hosts)
L4T=""
JETPACK=""
if [ -r /etc/nv_tegra_release ]; then
  L4T=$(sed -n 's/^# R\([0-9]*\) (release), REVISION: \([0-9.]*\).*/\1.\2/p' /etc/nv_tegra_release | head -n1)
  case "$L4T" in
    35.*) JETPACK="5.1" ;;
    36.3*) JETPACK="6.0" ;;
    36.4*) JETPACK="6.1/6.2" ;;
    38.2*) JETPACK="7.0" ;;
    38.4*) JETPACK="7.1" ;;
    39.*) JETPACK="7.2" ;;
    *) JETPACK="unknown" ;;
  esac
  say "Jetson: L4T $L4T (JetPack $JETPACK)"
fi

# 3. TensorRT version: python bindings, then dpkg, then the trtexec banner
TRTEXEC="${TRTEXEC:-}"
if [ -z "$TRTEXEC" ]; then
  if command -v trtexec >/dev/null 2>&1; then TRTEXEC=trtexec
  elif [ -x /usr/src/tensorrt/bin/trtexec ]; then TRTEXEC=/usr/src/tensorrt/bin/trtexec
  else die "trtexec not found (JetPack: sudo apt install tensorrt; it lives in /usr/src/tensorrt/bin)" 7
  fi
fi
TRT_VERSION=$(python3 -c 'import tensorrt; print(tensorrt.__version__)' 2>/dev/null || true)
if [ -z "$TRT_VERSION" ] && command -v dpkg-query >/dev/null 2>&1; then
  TRT_VERSION=$(dpkg-query -W -f='${Version}\n' libnvinfer-bin tensorrt 2>/dev/null | head -n1 | cut -d- -f1 || true)
fi
if [ -z "$TRT_VERSION" ]; then
  # trtexec banner: "&&&& RUNNING TensorRT.trtexec [TensorRT v100300]"
  V=$("$TRTEXEC" --help 2>&1 | grep -o 'TensorRT v[0-9]*' | head -n1 | sed 's/TensorRT v//' || true)
  if [ -n "$V" ]; then TRT_VERSION="$(( V / 10000 )).$(( (V / 100) % 100 )).$(( V % 100 ))"; fi
fi
TRT_MAJOR="${TRT_MAJOR:-${TRT_VERSION%%.*}}"
[ -n "$TRT_MAJOR" ] || die "cannot detect the TensorRT version; set TRT_MAJOR=10 or 11" 7
say "TensorRT ${TRT_VERSION:-?} (syntax: TensorRT $TRT_MAJOR), precision $PRECISION, $NUM_PROFILES profile(s)"
if [ "$TRT_MAJOR" -lt 10 ]; then
  die "TensorRT $TRT_VERSION is older than 10.x; upgrade to JetPack 6.1+ (TensorRT 10.3)" 7
fi
if [ "$TRT_MAJOR" -ge 11 ] && [ -n "$L4T" ] && [ "${L4T%%.*}" -lt 39 ]; then
  die "TensorRT 11 is only supported on JetPack >= 7.2.2; use the JetPack's TensorRT 10.x (TRT_MAJOR=10)" 2
fi

# 4. choose the ONNX file and the precision semantics
ARGS=()
BASE_ONNX=model.onnx   # the TRT-safe rewritten graph wins over the raw export when both are present
if [ -f model.rewritten.onnx ]; then BASE_ONNX=model.rewritten.onnx; fi
CAL=$(ls ./*calib*.cache ./*calibration*.cache 2>/dev/null | head -n1 || true)
if [ "$PRECISION" = "fp32" ]; then
  ONNX="$BASE_ONNX"
elif [ -f "model.$PRECISION.onnx" ]; then
  ONNX="model.$PRECISION.onnx"
  if [ "$TRT_MAJOR" -lt 11 ]; then ARGS+=(--stronglyTyped); fi   # always on (a deprecated no-op) in 11
elif [ "$TRT_MAJOR" -ge 11 ]; then
  die "TensorRT 11 takes precision from the ONNX: this bundle lacks model.$PRECISION.onnx (make it on the workstation with: resvit-export build MODEL --$PRECISION ..., then bundle again)" 2
elif [ "$PRECISION" = "fp16" ]; then
  ONNX="$BASE_ONNX"; ARGS+=(--fp16)
elif [ -n "$CAL" ]; then
  ONNX="$BASE_ONNX"; ARGS+=(--int8 --fp16 "--calib=$CAL")
  say "WARNING: implicit INT8 calibration is deprecated (10.1) and removed in TensorRT 11"
else
  die "INT8 needs model.int8.onnx (Q/DQ) or a calibration cache; neither is in the bundle" 2
fi
[ -f "$ONNX" ] || die "$ONNX is missing from the bundle" 6

# 5. memory preflight (unified memory on Jetson)
if [ -r /proc/meminfo ]; then
  AVAIL_MIB=$(( $(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1024 ))
  say "available memory: ${AVAIL_MIB} MiB (close other apps or add swap if the build is killed)"
fi
if [ -n "${WORKSPACE_MIB:-}" ]; then ARGS+=("--memPoolSize=workspace:${WORKSPACE_MIB}M"); fi
if [ -n "${OPT_LEVEL:-}" ]; then ARGS+=("--builderOptimizationLevel=${OPT_LEVEL}"); fi

ENGINE="model.$PRECISION.plan"
rm -f "$ENGINE.check.json"   # a verdict on the previous engine must not describe the new one
# shellcheck disable=SC2086
"$TRTEXEC" "--onnx=$ONNX" "--saveEngine=$ENGINE.partial" $PROFILE_ARGS ${ARGS[@]+"${ARGS[@]}"} \
  --timingCacheFile=timing.cache --skipInference
mv -f "$ENGINE.partial" "$ENGINE"

# 6. device-side sidecar (what built it): the runner and `resvit-export inspect` read it
ENGINE_SHA=$(sha256sum "$ENGINE" | cut -d' ' -f1)
ONNX_SHA=$(sha256sum "$ONNX" | cut -d' ' -f1)
GPU_CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 || true)
cat > "$ENGINE.device.json" <<EOF
{"engine": "$ENGINE", "engine_sha256": "$ENGINE_SHA", "onnx": "$ONNX", "onnx_sha256": "$ONNX_SHA",
 "tensorrt": "${TRT_VERSION}", "l4t": "${L4T}", "jetpack": "${JETPACK}", "compute_capability": "${GPU_CC}",
 "precision": "$PRECISION", "built_by": "build_engine.sh"}
EOF
say "built $ENGINE"

# 7. engine parity: the engine vs PyTorch's outputs over the whole parity matrix (numpy + the runner, no torch)
if [ "$CHECK" = 0 ]; then
  say "engine parity not checked (--no-check); later: python3 check_engine.py $ENGINE"
elif [ ! -f reference.json ]; then
  say "engine parity not checked: this bundle has no reference set (bundle a build made by a current resvit-export)"
else
  say "checking $ENGINE against the reference set (check_engine.py; --no-check skips this)"
  set +e
  "${PYTHON:-python3}" check_engine.py "$ENGINE" --runner "${CHECK_RUNNER:-run_engine:EngineRunner}"
  RC=$?
  set -e
  if [ "$RC" -ne 0 ]; then
    die "$ENGINE was built, but its parity check did not pass (exit $RC; the verdict is in $ENGINE.check.json, the per-case table in parity.engine.md)" "$RC"
  fi
fi
say "try: python3 run_engine.py $ENGINE"

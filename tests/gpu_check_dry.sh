#!/usr/bin/env bash
# tools/gpu-check, dry: its logic runs without a GPU against stand-ins (an
# nvidia-smi that names an H200, stub binaries and suites, a stub nvcc and
# cuobjdump), since the script itself only ever runs for real on a lent GPU,
# where a mistake in it costs the figures. Checked: a suite passes only when
# it passed tests (all skipped is a FAIL), the sm_90a SASS checks, every
# lever's bench run with its setting, a failed step's detail is its error, the
# table comes last, the archive holds every output, and a deadline already
# past skips every timed step.
#   usage: tests/gpu_check_dry.sh SOURCE_DIR
set -u
SRC=$1
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

mkdir -p "$T/bin" "$T/b/host" "$T/b/bench" "$T/b/kernels" "$T/b/tests/cuda"
cat >"$T/bin/nvidia-smi" <<'S'
#!/bin/sh
case "$*" in *name*) echo "NVIDIA H200";; *compute_cap*) echo "9.0";; *) echo "GPU 0: NVIDIA H200 (UUID: x)";; esac
S
cat >"$T/bin/nvcc" <<'S'
#!/bin/sh
while [ $# -gt 0 ]; do [ "$1" = -o ] && { : > "$2"; exit 0; }; shift; done; exit 1
S
cat >"$T/bin/cuobjdump" <<'S'
#!/bin/sh
printf '  HMMA.16816.F32 R0, R4, R8, R0 ;\n  HGMMA.64x64x16.F32 R0, gdesc[UR4], RZ ;\n'
S
# The bench stand-in records each run's lever settings and fails where asked.
cat >"$T/b/host/embedc" <<S
#!/bin/sh
echo "\$* LIBS=\${LD_LIBRARY_PATH:-} QKV=\${EMBEDC_QKV_BIAS:-} MLP=\${EMBEDC_MLP_EPILOGUE:-} GRAPHS=\${EMBEDC_GRAPHS:-} ATT=\${EMBEDC_ATTENTION:-} MODEL=\${EMBEDC_MODEL:-}" >>"$T/calls"
case "\$*" in *bf16*) echo "embedc: error: planted failure" >&2; exit 1;; esac
echo "| corpus mix | 10240 | 509141 | 49.7 | 0.086 | 5887419 | 118409.6 | 1.00 | 12.2% |"
[ -n "\${EMBEDC_GRAPHS:-}" ] && echo "cuda 0, all passes: CUDA graphs: 3 captured, 9 launched"
exit 0
S
printf '#!/bin/sh\necho "[====] Synthesis: Tested: 4 | Passing: 3 | Failing: 0 | Skipped: 1"\necho "[info] worst cos 0.9999871"\n' >"$T/b/tests/cuda/test_cuda_kernels_gpu"
printf '#!/bin/sh\necho "[====] Synthesis: Tested: 5 | Passing: 0 | Failing: 0 | Skipped: 5"\n' >"$T/b/tests/cuda/test_cuda_backend_gpu"
printf '#!/bin/sh\necho "[====] Synthesis: Tested: 2 | Passing: 1 | Failing: 1 | Skipped: 0"\nexit 1\n' >"$T/b/tests/cuda/test_static_pool_gpu"
printf '#!/bin/sh\necho "ladder: attention v2 flash-wgmma"\n' >"$T/b/bench/bench_kernels"
echo archive >"$T/b/kernels/libembedc_kernels.a"
mkdir -p "$T/b/lib"   # a packed build's libraries (tools/gpu-pack)
chmod +x "$T"/bin/* "$T/b/host/embedc" "$T"/b/tests/cuda/* "$T/b/bench/bench_kernels"

cd "$SRC" || exit 1
export PATH="$T/bin:$PATH" GPU_CHECK_PREBUILT=1 EMBEDC_MODEL="$SRC/tests/golden/families/mpnet/model"
out=$(GPU_CHECK_DEADLINE=$(( $(date +%s) + 600 )) tools/gpu-check --quick "$T/b" 2>&1)
rc=$?
row() { echo "$out" | grep -E "^$1 +$2( |$)"; }
check "exit status 1 (a step failed)" '[ $rc = 1 ]'
check "the prebuilt tree is used" 'row "build \(sm_90a\)" PASS | grep -q prebuilt'
check "a suite with passed tests passes, with its worst cosine" 'row "kernels vs CPU twins \(device\)" PASS | grep -q "3 passed, 0 failed, 1 skipped, worst cos 0.9999871"'
check "a suite that only skipped fails" 'row "backend vs CPU \+ golden \(device\)" FAIL | grep -q "0 passed"'
check "a suite with a failure fails" 'row "static pooling vs CPU \(device\)" FAIL | grep -q "1 failed"'
check "HMMA and HGMMA found in the SASS" 'row "attention SASS has HMMA" PASS >/dev/null && row "attention SASS has HGMMA" PASS >/dev/null'
check "the f16 bench passes with its corpus-mix line" 'row "embedc bench --device cuda --dtype f16" PASS | grep -q "5887419"'
check "a failed bench shows its error" 'row "embedc bench --device cuda --dtype bf16" FAIL | grep -q "planted failure"'
check "every lever ran with its setting" 'grep -q "QKV=pass" "$T/calls" && grep -q "MLP=lt" "$T/calls" && grep -q "ATT=wgmma" "$T/calls" && [ "$(grep -c "GRAPHS=on" "$T/calls")" = 2 ] && grep -q "batch-tokens 16384.*GRAPHS=on" "$T/calls"'
check "the graph counts are in the lever's row" 'row "EMBEDC_GRAPHS=on embedc bench f16" PASS | grep -q "3 captured"'
check "the packed libraries (BUILD/lib) are on the library path" 'grep -q "LIBS=$T/b/lib" "$T/calls"'
check "the benches use \$EMBEDC_MODEL" '! grep -v "MODEL=$EMBEDC_MODEL" "$T/calls" | grep -q .'
check "nvcc spill check runs for sm_90a" 'row "nvcc spills \(sm_90a\)" PASS >/dev/null'
check "the table comes last" '[ "$(echo "$out" | tail -1)" = "gpu-check: every output in $T/b/gpu-check-results.tgz" ] && echo "$out" | tail -3 | grep -q "^nvcc spills"'
names=$(tar tzf "$T/b/gpu-check-results.tgz" 2>/dev/null | tr "\n" " ")
check "the archive holds the table, the log and every figure" 'for f in gpu-check-table.txt gpu-check.log bench_kernels.txt bench_e2e_f16.txt bench_e2e_f16_graphs16k.txt bench_e2e_f16_wgmma.txt; do echo " $names" | grep -q " $f " || exit 1; done'

: >"$T/calls"
out=$(GPU_CHECK_DEADLINE=$(( $(date +%s) - 1 )) tools/gpu-check --quick "$T/b" 2>&1)
check "a deadline already past skips every timed step" '[ "$(echo "$out" | grep -c " SKIP ")" -ge 10 ] && ! echo "$out" | grep -Eq " (PASS|FAIL) .*(bench|suite|device|spills)" && [ ! -s "$T/calls" ]'

[ $fails = 0 ] || { echo "gpu_check_dry: $fails failed"; exit 1; }
echo "gpu_check_dry: all passed"

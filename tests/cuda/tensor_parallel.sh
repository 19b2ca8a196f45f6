#!/usr/bin/env bash
# Weights broadcast and tensor parallelism on the simulator's virtual GPUs
# (embedc-sim):
#   - with several devices the weights are converted once (per tensor-parallel
#     shard) and reach the other devices by NCCL broadcast, bit-identical
#     (EMBEDC_DEBUG_WEIGHTS reads every block back and compares it);
#   - --tensor-parallel 2 and 4 on 4 devices stay within cos 0.9995 of one
#     device for every vector (all-MiniLM-L6-v2), as do families whose
#     shards take other paths: pre-norm + gated MLP + rotary (modernbert),
#     relative position bias (mpnet);
#   - TP 2 on 4 devices is 2 replicas, work dealt within 5 % tokens per device;
#   - a device failing mid-job under TP ends it naming the device and the call;
#   - refusals (heads or devices not divisible) and a device too small for the
#     model are messages that say why.
# Usage: tensor_parallel.sh EMBEDC_SIM SOURCE_DIR
set -uo pipefail
E="$1"; SRC="$2"
M="$SRC/models/all-MiniLM-L6-v2"
FAM="$SRC/tests/golden/families"
[[ -s "$M/model.safetensors" ]] || { echo "model not fetched: skipped"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
head -n 32 "$SRC/tests/data/corpus/texts.jsonl" > "$T/in.jsonl"
head -n 8 "$SRC/tests/data/corpus/texts.jsonl" > "$T/small.jsonl"
ARGS=(encode -i "$T/in.jsonl" --max-length 24 --device cuda --dtype f16 -q)
export EMBSIM_DEVICES=4
fails=0
check() { if eval "$2"; then echo "ok   - $1"; else echo "FAIL - $1"; fails=$((fails + 1)); fi; }
run() {  # run NAME ARGS...: embedc-sim, stderr in $T/NAME.err, 0 or 1
    local name="$1"; shift
    timeout 600 "$E" "$@" 2>"$T/$name.err" || { echo "FAIL - $name: $(tail -n 3 "$T/$name.err")"; fails=$((fails + 1)); return 1; }
}
cosine() {  # cosine A.npy B.npy: every row's cosine >= 0.9995
    python3 - "$1" "$2" <<'EOF'
import numpy as np, sys
a, b = np.load(sys.argv[1]), np.load(sys.argv[2])
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
assert a.shape == b.shape and cos.min() >= 0.9995, (a.shape, b.shape, cos.min())
EOF
}

# Data-parallel: converted once, broadcast to the three others.
EMBEDC_DEBUG_WEIGHTS=1 run bcast "${ARGS[@]}" -m "$M" -i "$T/small.jsonl" --devices 4 -o "$T/b4.npy"
check "4 devices: weights converted once (device 0)" \
      '[[ $(grep -c "converted" "$T/bcast.err") == 1 ]] && grep -q "device 0: converted" "$T/bcast.err"'
check "4 devices: devices 1-3 hold device 0's weights bit for bit, by NCCL broadcast" \
      '[[ $(grep -c "by NCCL broadcast, identical to device 0" "$T/bcast.err") == 3 ]] && ! grep -q differ "$T/bcast.err"'

run one "${ARGS[@]}" -m "$M" --devices 1 -o "$T/one.npy"
for tp in 2 4; do
    EMBEDC_DEBUG_WEIGHTS=1 run tp$tp "${ARGS[@]}" -m "$M" --devices 4 --tensor-parallel $tp -o "$T/tp$tp.npy" \
        --summary-json "$T/tp$tp.json" &&
    check "--tensor-parallel $tp on 4 devices: every vector within cos 0.9995 of one device" \
          'cosine "$T/one.npy" "$T/tp$tp.npy"'
done
check "TP 2: each shard converted once (devices 0, 1), broadcast to the other replica (2, 3)" \
      '[[ $(grep -c "converted" "$T/tp2.err") == 2 ]] && grep -q "device 2: .*identical to device 0" "$T/tp2.err" &&
       grep -q "device 3: .*identical to device 1" "$T/tp2.err"'
check "TP 2 on 4 devices: 2 replicas, tokens dealt within 5 % per device" "python3 - '$T/tp2.json' <<'EOF'
import json, sys
s = json.load(open(sys.argv[1]))
t = s['device_tokens']; mean = sum(t) / len(t)
assert s['devices'] == 4 and len(t) == 4 and t[0] == t[1] and t[2] == t[3], s
assert sum(t) == 2 * s['tokens'] and t[0] > 0 and t[2] > 0, s
assert max(abs(x - mean) for x in t) <= 0.05 * mean, t
EOF"

# Other families' shard paths: pre-norm + gated MLP + rotary (modernbert),
# relative position bias (mpnet); both have 2 heads.
for fam in modernbert mpnet; do
    run "$fam-one" "${ARGS[@]}" -m "$FAM/$fam/model" --devices 1 -o "$T/$fam-one.npy" &&
    run "$fam-tp" "${ARGS[@]}" -m "$FAM/$fam/model" --devices 4 --tensor-parallel 2 -o "$T/$fam-tp.npy" &&
    check "$fam: --tensor-parallel 2 on 4 devices within cos 0.9995 of one device" \
          "cosine '$T/$fam-one.npy' '$T/$fam-tp.npy'"
done

"$E" "${ARGS[@]}" -m "$FAM/mpnet/model" --devices 4 --tensor-parallel 4 -o "$T/x.npy" 2>"$T/err"; rc=$?
check "heads not divisible by N are refused" '[[ $rc != 0 ]] && grep -q "mpnet has 2 attention heads, not a multiple of 4" "$T/err"'
"$E" "${ARGS[@]}" -m "$M" --devices 3 --tensor-parallel 2 -o "$T/x.npy" 2>"$T/err"; rc=$?
check "devices not divisible by N are refused" '[[ $rc != 0 ]] && grep -q "3 devices cannot be split into groups of 2" "$T/err"'

# Device 3 (rank 1 of the second group) dies mid-job.
EMBSIM_FAIL_DEVICE=3:40 timeout 600 "$E" "${ARGS[@]}" -m "$M" --devices 4 --tensor-parallel 2 --window-docs 16 \
    -o "$T/f.npy" 2>"$T/err"; rc=$?
check "a device failing mid-job under TP ends it naming the device and the call" \
      '[[ $rc != 0 && $rc != 124 && ! -e "$T/f.npy" ]] && grep -q "device 3 (tensor-parallel rank 1 of 2)" "$T/err" &&
       grep -qi "launch" "$T/err"'

# A device too small: refused before allocating, with what it needs and has.
EMBSIM_DEVICE_MEMORY=25M "$E" "${ARGS[@]}" -m "$M" --devices 1 -o "$T/x.npy" 2>"$T/err"; rc=$?
check "a model larger than the device is refused with what it needs and what the device has" \
      '[[ $rc != 0 ]] && grep -Eq "the model needs [0-9.]+ MiB on device 0: weights 43.0 MiB .* the device has [0-9.]+ MiB free of 25.0 MiB" "$T/err"'
EMBSIM_DEVICE_MEMORY=25M "$E" "${ARGS[@]}" -m "$M" --devices 4 --tensor-parallel 4 -o "$T/x.npy" 2>"$T/err"; rc=$?
check "under TP the need is per device (the shard)" \
      '[[ $rc != 0 ]] && grep -Eq "on device [0-3] \(its shard of --tensor-parallel 4\): weights [0-9.]+ MiB" "$T/err"'

[[ $fails -eq 0 ]] || exit 1

#!/usr/bin/env bash
# Data-parallel devices, on the simulator's virtual GPUs (embedc-sim):
#   - 1, 2, 4 and 8 devices give bit-identical output;
#   - the work is dealt within 5 % tokens per device (--summary-json);
#   - a device that fails mid-job ends it with a message naming the device
#     and the CUDA call, and a --job keeps what was durably written;
#   - --devices errors (a device not visible, one named twice) are messages;
#   - with EMBEDC_GRAPHS=on (CUDA graphs per chunk-shape bucket) on 1 and 2
#     devices the vectors are bit-identical to direct launches, and `embedc
#     bench` reports the graphs' counts in its table and --summary-json.
# Usage: multi_device.sh EMBEDC_SIM SOURCE_DIR
set -uo pipefail
E="$1"; SRC="$2"
M="$SRC/models/all-MiniLM-L6-v2"
[[ -s "$M/model.safetensors" ]] || { echo "model not fetched: skipped"; exit 77; }
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
# Short documents keep the simulator's work small; the mix of lengths is
# what the dealing has to balance.
head -n 96 "$SRC/tests/data/corpus/texts.jsonl" > "$T/in.jsonl"
# A 1024-token budget: the workspace is sized from it (65536 tokens by
# default on a GPU), and the simulator poisons and pages in every byte of it
# on each virtual device, which took half the time.
ARGS=(encode -m "$M" -i "$T/in.jsonl" --max-length 24 --batch-tokens 1024 --device cuda --dtype f16 -q)
export EMBSIM_DEVICES=8
fails=0
check() { if eval "$2"; then echo "ok   - $1"; else echo "FAIL - $1"; fails=$((fails + 1)); fi; }

for n in 1 2 4 8; do
    "$E" "${ARGS[@]}" --devices "$n" -o "$T/d$n.npy" --summary-json "$T/d$n.json" 2>"$T/err$n" ||
        { echo "FAIL - $n devices: $(tail -n 3 "$T/err$n")"; fails=$((fails + 1)); }
done
for n in 2 4 8; do
    check "$n devices: bit-identical to one device" 'cmp -s "$T/d1.npy" "$T/d$n.npy"'
    check "$n devices: tokens dealt within 5 % per device" "python3 - '$T/d$n.json' $n <<'EOF'
import json, sys
s = json.load(open(sys.argv[1])); n = int(sys.argv[2])
t = s['device_tokens']; mean = sum(t) / len(t)
assert s['devices'] == n and len(t) == n and sum(t) == s['tokens'], s
assert max(abs(x - mean) for x in t) <= 0.05 * mean, t
EOF"
done
check "the CUDA simulator's vectors agree with the CPU backend" "python3 - <<EOF
import numpy as np, subprocess
subprocess.run(['$E'] + '''${ARGS[*]}'''.split() + ['--device', 'cpu', '-o', '$T/cpu.npy'], check=True)
a, b = np.load('$T/d1.npy'), np.load('$T/cpu.npy')
cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
assert cos.min() >= 0.9995, cos.min()
EOF"

"$E" "${ARGS[@]}" --devices 0,9 -o "$T/x.npy" 2>"$T/err"; rc=$?
check "--devices naming a device that is not visible is refused" '[[ $rc != 0 ]] && grep -q "device 9 is not visible" "$T/err"'
"$E" "${ARGS[@]}" --devices 1,1 -o "$T/x.npy" 2>"$T/err"; rc=$?
check "--devices naming a device twice is refused" '[[ $rc != 0 ]] && grep -q "device 1 twice" "$T/err"'

# Device 2 of 4 dies after a few launches, in the middle of a job.
EMBSIM_FAIL_DEVICE=2:40 "$E" "${ARGS[@]}" --devices 4 --window-docs 16 -o "$T/f.npy" --job "$T/fjob" 2>"$T/err"; rc=$?
check "a device failing mid-job ends it naming the device and the call" \
      '[[ $rc != 0 && ! -e "$T/f.npy" ]] && grep -q "device 2 (cuda)" "$T/err" && grep -qi "launch" "$T/err"'
check "what was durably written before the failure is kept for resume" 'grep -q "^chunk 0 16 " "$T/fjob/journal-0.log"'
"$E" "${ARGS[@]}" --devices 4 --window-docs 16 -o "$T/f.npy" --job "$T/fjob" 2>"$T/err"
check "the job then resumes on healthy devices, identical to one device" 'cmp -s "$T/f.npy" "$T/d1.npy"'

# CUDA graphs: the padded shapes change no vector (the simulator's GEMM
# computes each row on its own; on a GPU cuBLAS may pick another kernel).
for n in 1 2; do
    # Without -q (the last argument): the summary names each device's graph counts.
    EMBEDC_GRAPHS=on "$E" "${ARGS[@]:0:${#ARGS[@]}-1}" --devices "$n" -o "$T/g$n.npy" 2>"$T/gerr$n" ||
        { echo "FAIL - graphs on $n devices: $(tail -n 3 "$T/gerr$n")"; fails=$((fails + 1)); }
    check "graphs on $n devices: bit-identical to direct launches" 'cmp -s "$T/d1.npy" "$T/g$n.npy"'
    check "graphs on $n devices: the summary gives each device's counts" \
          '[[ $(grep -c "^embedc: cuda [0-9]: CUDA graphs: [0-9]* captured, [0-9]* launched" "$T/gerr$n") == $n ]]'
done
head -n 24 "$T/in.jsonl" > "$T/in24.jsonl"
EMBEDC_GRAPHS=on "$E" bench -m "$M" -i "$T/in24.jsonl" --max-length 24 --batch-tokens 512 --device cuda \
    --dtype f16 --fixed-lengths none --corpus-copies 1 --summary-json "$T/gb.json" >"$T/gb.txt" 2>"$T/gberr"; rc=$?
check "bench with graphs: the counts in its table and --summary-json" "[[ $rc == 0 ]] && grep -q 'cuda 0, all passes: CUDA graphs: [1-9]' '$T/gb.txt' && python3 - '$T/gb.json' <<'EOF'
import json, re, sys
s = json.load(open(sys.argv[1]))
note = s['run_notes'][0]
m = re.match(r'CUDA graphs: (\d+) captured, (\d+) launched, (\d+) chunks run directly', note)
assert m and int(m[1]) >= 1 and int(m[2]) > int(m[1]) and 'turned off' not in note, note
EOF"

[[ $fails -eq 0 ]] || exit 1

#!/usr/bin/env bash
# Durable jobs (embedc encode --job DIR), killed as real jobs get killed:
#   - an uninterrupted job writes exactly what a plain run writes;
#   - SIGKILL at >= 20 random moments, then the same command until it ends:
#     the output is byte-identical to the uninterrupted run;
#   - SIGKILL at every step of writing a chunk (written, synced, renamed,
#     journaled) and during the final assembly, then resume: identical, and
#     nothing is ever left under the output name by a run that did not finish;
#   - a torn journal line; SIGTERM and SIGINT (exit 128+sig, resumable);
#   - a changed option or input is refused with a message naming it;
#   - with mpirun: 3 ranks give the one-process bytes; one rank killed, then
#     the job re-run, completes identically.
# Usage: job_resume.sh EMBEDC SOURCE_DIR [mpi|disk]
set -uo pipefail
E="$1"; SRC="$2"; MODE="${3:-basic}"
M="$SRC/models/all-MiniLM-L6-v2"
[[ -s "$M/model.safetensors" ]] || { echo "model not fetched: skipped"; exit 77; }
T="$(mktemp -d)"; trap 'umount "$T/disk" 2>/dev/null; rm -rf "$T"' EXIT
head -n 300 "$SRC/tests/data/corpus/texts.jsonl" > "$T/in.jsonl"
ARGS=(-m "$M" -i "$T/in.jsonl" --window-docs 16 --threads 1 -q)
fails=0
check() { if eval "$2"; then echo "ok   - $1"; else echo "FAIL - $1"; fails=$((fails + 1)); fi; }

"$E" encode "${ARGS[@]}" -o "$T/ref.npy" || { echo "FAIL - reference run"; exit 1; }

# Runs the job until it ends by itself; returns the number of runs it took.
finish() { local out="$1" dir="$2" n=0; until "$E" encode "${ARGS[@]}" -o "$out" --job "$dir" 2>>"$T/log"; do
    n=$((n + 1)); [[ $n -lt 5 ]] || return 1; done; }

if [[ "$MODE" == basic ]]; then
    "$E" encode "${ARGS[@]}" -o "$T/a.npy" --job "$T/a"
    check "an uninterrupted job equals a plain run" 'cmp -s "$T/a.npy" "$T/ref.npy"'
    "$E" encode "${ARGS[@]}" -o "$T/a2.npy" --job "$T/a"
    check "a finished job run again re-assembles the same bytes" 'cmp -s "$T/a2.npy" "$T/ref.npy"'

    # SIGKILL at random moments.
    kills=0; rounds=0
    while [[ $kills -lt 20 && $rounds -lt 60 ]]; do
        rounds=$((rounds + 1))
        "$E" encode "${ARGS[@]}" -o "$T/k.npy" --job "$T/k" 2>>"$T/log" &
        pid=$!
        sleep "0.$((RANDOM % 9 + 1))$((RANDOM % 10))"
        if kill -9 "$pid" 2>/dev/null; then kills=$((kills + 1)); fi
        wait "$pid" 2>/dev/null
        if [[ -e "$T/k.npy" ]] && ! kill -0 "$pid" 2>/dev/null && [[ $kills -lt 20 ]]; then
            cmp -s "$T/k.npy" "$T/ref.npy" || { echo "FAIL - a run that finished between kills differs"; fails=$((fails + 1)); }
            rm -rf "$T/k" "$T/k.npy"     # start a new job and keep killing
        fi
    done
    finish "$T/k.npy" "$T/k"
    check "$kills random SIGKILLs, then resume: byte-identical" '[[ $kills -ge 20 ]] && cmp -s "$T/k.npy" "$T/ref.npy"'

    for point in chunk-written:2 chunk-synced:3 chunk-renamed:4 journaled:5 assembling:7; do
        d="$T/p-${point%%:*}"
        EMBEDC_JOB_CRASH="$point" "$E" encode "${ARGS[@]}" -o "$d.npy" --job "$d" 2>>"$T/log"
        rc=$?
        check "crash at $point: killed, nothing under the output name" '[[ $rc == 137 && ! -e "$d.npy" ]]'
        finish "$d.npy" "$d"
        check "crash at $point, then resume: byte-identical" 'cmp -s "$d.npy" "$T/ref.npy"'
    done

    # A torn journal line (a crash in the middle of appending one).
    d="$T/torn"
    EMBEDC_JOB_CRASH=journaled:3 "$E" encode "${ARGS[@]}" -o "$d.npy" --job "$d" 2>>"$T/log"
    printf 'chunk 48 16 3' >> "$d/journal-0.log"
    finish "$d.npy" "$d"
    check "a torn journal line is dropped and the job completes identically" 'cmp -s "$d.npy" "$T/ref.npy"'

    # A chunk damaged after it was journaled is detected, never assembled.
    d="$T/dmg"
    "$E" encode "${ARGS[@]}" -o "$d.npy" --job "$d"
    printf 'X' | dd of="$d/chunk-000000000032.f32" bs=1 seek=100 conv=notrunc status=none
    rm -f "$d.npy"
    "$E" encode "${ARGS[@]}" -o "$d.npy" --job "$d" 2>"$T/err"; rc=$?
    check "a damaged chunk is reported by name, no output" '[[ $rc != 0 && ! -e "$d.npy" ]] && grep -q "chunk-000000000032.f32 does not match" "$T/err"'

    for sig in TERM INT; do
        d="$T/sig$sig"
        "$E" encode "${ARGS[@]}" -o "$d.npy" --job "$d" 2>"$T/err" &
        pid=$!
        # Wait for the first durable chunk, then signal.
        for _ in $(seq 100); do [[ -s "$d/journal-0.log" ]] && break; sleep 0.05; done
        kill -s "$sig" "$pid"; wait "$pid"; rc=$?
        want=$((128 + $(kill -l "$sig")))
        check "SIG$sig stops at a batch boundary with exit $want, resumable" \
              '[[ $rc == $want && ! -e "$d.npy" ]] && grep -q "run the same command to continue" "$T/err"'
        finish "$d.npy" "$d"
        check "after SIG$sig, resume: byte-identical" 'cmp -s "$d.npy" "$T/ref.npy"'
    done

    if "$E" --version | grep -q "FAISS indexes: yes"; then
        IX=(--index-spec IVF4,Flat)
        "$E" encode "${ARGS[@]}" -o "$T/ix.npy" --index "$T/ix.faiss" "${IX[@]}"
        d="$T/ixjob"
        EMBEDC_JOB_CRASH=assembling:5 "$E" encode "${ARGS[@]}" -o "$d.npy" --index "$d.faiss" "${IX[@]}" --job "$d" 2>>"$T/log"
        rc=$?
        check "--index in a job: killed while assembling, no index under its name" '[[ $rc == 137 && ! -e "$d.faiss" ]]'
        "$E" encode "${ARGS[@]}" -o "$d.npy" --index "$d.faiss" "${IX[@]}" --job "$d" 2>>"$T/log"
        check "--index in a job, resumed: the index of an uninterrupted run, byte for byte" \
              'cmp -s "$d.faiss" "$T/ix.faiss" && cmp -s "$d.npy" "$T/ref.npy"'
    fi

    "$E" encode "${ARGS[@]}" -o "$T/a.npy" --job "$T/a" --no-normalize 2>"$T/err"; rc=$?
    check "a changed option is refused, naming it" '[[ $rc != 0 ]] && grep -q "started with normalize = 1" "$T/err"'
    "$E" encode "${ARGS[@]}" -o "$T/a.npy" --job "$T/a" --max-length 64 2>"$T/err"; rc=$?
    check "a changed max length is refused, naming it" '[[ $rc != 0 ]] && grep -q "max length" "$T/err"'
    echo '{"text": "one more"}' >> "$T/in.jsonl"
    "$E" encode "${ARGS[@]}" -o "$T/a.npy" --job "$T/a" 2>"$T/err"; rc=$?
    check "a changed input is refused, naming it" '[[ $rc != 0 ]] && grep -q "started with input = " "$T/err"'
    "$E" encode -m "$M" -o "$T/x.npy" --job "$T/x" < "$T/in.jsonl" 2>"$T/err"; rc=$?
    check "--job from standard input is refused" '[[ $rc != 0 ]] && grep -q "needs an input file" "$T/err"'
fi

if [[ "$MODE" == disk ]]; then
    [[ $(id -u) == 0 ]] && mkdir -p "$T/disk" && mount -t tmpfs -o size=200k tmpfs "$T/disk" 2>/dev/null ||
        { echo "cannot mount a small tmpfs (needs root): skipped"; exit 77; }
    d="$T/disk/job"
    "$E" encode "${ARGS[@]}" -o "$T/disk.npy" --job "$d" 2>"$T/err"; rc=$?
    check "a full disk stops the job with a message naming the file" \
          '[[ $rc != 0 && ! -e "$T/disk.npy" ]] && grep -q "No space left on device" "$T/err"'
    mount -o remount,size=16m "$T/disk"
    finish "$T/disk.npy" "$d"
    check "after space is freed, resume: byte-identical" 'cmp -s "$T/disk.npy" "$T/ref.npy"'
fi

if [[ "$MODE" == mpi ]]; then
    command -v mpirun >/dev/null || { echo "mpirun not installed: skipped"; exit 77; }
    MPI=(mpirun --allow-run-as-root --oversubscribe -np 3)
    "${MPI[@]}" "$E" encode "${ARGS[@]}" -o "$T/mpi.npy" --job "$T/mpi" 2>>"$T/log"
    check "mpirun -np 3: byte-identical to one process" 'cmp -s "$T/mpi.npy" "$T/ref.npy"'
    check "mpirun -np 3: each rank journaled its own share" \
          '[[ $(ls "$T/mpi"/journal-*.log | wc -l) == 3 ]] && grep -q "^end 300$" "$T/mpi/journal-2.log"'
    "${MPI[@]}" "$E" encode "${ARGS[@]}" -o "$T/mk.npy" --job "$T/mk" 2>>"$T/log" &
    mp=$!
    for _ in $(seq 200); do [[ -s "$T/mk/journal-1.log" ]] && break; sleep 0.05; done
    victim=$(pgrep -f -- "--job $T/mk" | while read -r p; do [[ $p != "$mp" ]] && echo "$p"; done | tail -n 1)
    [[ -n "$victim" ]] && kill -9 "$victim"
    wait "$mp"; rc=$?
    check "one rank killed: the job fails, no output" '[[ -n "$victim" && $rc != 0 && ! -e "$T/mk.npy" ]]'
    "${MPI[@]}" "$E" encode "${ARGS[@]}" -o "$T/mk.npy" --job "$T/mk" 2>>"$T/log"
    check "then re-run: completes byte-identical" 'cmp -s "$T/mk.npy" "$T/ref.npy"'
fi

if [[ $fails -ne 0 ]]; then echo "--- log"; tail -n 30 "$T/log"; exit 1; fi
exit 0

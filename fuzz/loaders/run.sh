#!/bin/sh
# Builds the loader fuzzers (clang, ASan+UBSan, libFuzzer) and runs each for
# SECONDS (default 30) from the committed seed corpus.  Exit status is
# non-zero on any crash, leak or sanitizer report; the input that found it is
# left in BUILD_DIR/artifacts/.
# usage: fuzz/loaders/run.sh [SECONDS] [BUILD_DIR]     (from the repository root)
set -e
SECS=${1:-30}
BUILD=${2:-build-fuzz-loaders}
cmake -S fuzz/loaders -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug > /dev/null
cmake --build "$BUILD" -j 2 > /dev/null
WORK=$(mktemp -d)
mkdir -p "$BUILD/artifacts"
for t in safetensors model_dir jsonl; do
    cp -r "fuzz/loaders/seeds/$t" "$WORK/$t"
    "$BUILD/fuzz_$t" -artifact_prefix="$BUILD/artifacts/" -max_total_time="$SECS" -max_len=16384 -timeout=10 \
        -rss_limit_mb=2048 "$WORK/$t"
done
rm -rf "$WORK"
echo "loader fuzzers: no crash in ${SECS}s each"

#!/bin/sh
# Builds the tokenizer fuzzers (clang, ASan+UBSan, libFuzzer) and runs each
# for SECONDS (default 60) from the committed seed corpus.  Exit status is
# non-zero on any crash, leak or sanitizer report.
# usage: fuzz/tokenizer/run.sh [SECONDS] [BUILD_DIR]     (from the repository root)
set -e
SECS=${1:-60}
BUILD=${2:-build-fuzz}
cmake -S fuzz/tokenizer -B "$BUILD" -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug > /dev/null
cmake --build "$BUILD" -j 2 > /dev/null
WORK=$(mktemp -d)
cp -r fuzz/tokenizer/seeds/load "$WORK/load"
cp -r fuzz/tokenizer/seeds/encode "$WORK/encode"
mkdir -p "$BUILD/artifacts"
"$BUILD/fuzz_load" -artifact_prefix="$BUILD/artifacts/" -max_total_time="$SECS" -max_len=65536 -timeout=10 -rss_limit_mb=2048 "$WORK/load"
"$BUILD/fuzz_encode" -artifact_prefix="$BUILD/artifacts/" -max_total_time="$SECS" -max_len=4096 -timeout=10 -rss_limit_mb=2048 "$WORK/encode"
rm -rf "$WORK"
echo "tokenizer fuzzers: no crash in ${SECS}s each"

#!/bin/sh
# Tokenizer throughput beside HF tokenizers, same corpus, same threads.
# usage: bench/tokenizer/run.sh BUILD_DIR [THREADS]   (from the repository root)
set -e
BUILD=${1:-build}
THREADS=${2:-$(nproc)}
CORPUS=tests/data/corpus/texts.jsonl
FAMILIES=$(ls -d tests/data/tokenizer/*/)
BIN=$(find "$BUILD" -name bench_tokenizer -type f -perm -u+x | head -1)
"$BIN" "$CORPUS" "$THREADS" $FAMILIES > /tmp/bench_c.txt
RAYON_NUM_THREADS=1 python3 bench/tokenizer/bench_hf.py "$CORPUS" $FAMILIES > /tmp/bench_hf1.txt
RAYON_NUM_THREADS=$THREADS python3 bench/tokenizer/bench_hf.py "$CORPUS" $FAMILIES > /tmp/bench_hfn.txt
echo "| family | tokens | embedc 1 thread tok/s | HF 1 thread tok/s | ratio | embedc $THREADS threads | HF $THREADS threads | ratio |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
join /tmp/bench_c.txt /tmp/bench_hf1.txt | join - /tmp/bench_hfn.txt |
  awk '{printf "| %s | %d | %.2fM | %.2fM | %.1fx | %.2fM | %.2fM | %.1fx |\n", $1, $2, $3/1e6, $6/1e6, $3/$6, $4/1e6, $8/1e6, $4/$8}'

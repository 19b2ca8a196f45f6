#!/usr/bin/env bash
# Runs `embedc encode` on a few awkward documents (empty, invalid UTF-8,
# multilingual, over-long) under valgrind: no invalid access, no definite
# leak. --max-length 24 makes the 40-word document over-long (truncated) and
# keeps the forward pass small enough for valgrind's speed. Exits 77
# (skipped) when valgrind or the default model is missing.
set -u
EMBEDC="$1"; SRC="$2"
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 77; }
[[ -f "$SRC/models/all-MiniLM-L6-v2/config.json" ]] || { echo "default model not fetched"; exit 77; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
{ printf 'hello world\n\nbad \xff\xfe bytes \xc3\nLe chat dort sur le rebord.\n猫在窗台上。\n'
  for i in $(seq 40); do printf 'word '; done; printf '\n'; } > "$tmp/in.txt"
valgrind --suppressions="$SRC/tests/valgrind.supp" --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite -q \
    "$EMBEDC" encode -q -m "$SRC/models/all-MiniLM-L6-v2" -i "$tmp/in.txt" -o "$tmp/out.npy" --threads 1 --max-length 24 --device cpu

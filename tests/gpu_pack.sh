#!/usr/bin/env bash
# tools/gpu-pack: a model packed (F16, byte planes, xz) and unpacked elsewhere
# is byte for byte what tools/safetensors-to-half makes of it, with every
# other file; a build packed with the libraries its binaries load (here the
# CPU build's embedc standing in for the GPU one) unpacks to the same files,
# executable, with those libraries in BUILD/lib; an unpack never overwrites
# weights already there; a model that would go over the size limit is left
# out, saying so; bad arguments are refused.
#   usage: tests/gpu_pack.sh SOURCE_DIR EMBEDC_BINARY
set -u
SRC=$1 EMBEDC=$2
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
M=$SRC/tests/golden/families/mpnet/model
cp -rL "$M" "$T/toy"   # a model directory given by path, named by its basename
# The test models are stored in BF16: widen to F32 (exactly), as published models are.
python3 - "$T/toy/model.safetensors" <<'PY'
import array, json, struct, sys
p = sys.argv[1]
with open(p, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n)); base = 8 + n
    meta = h.pop("__metadata__", None)
    new, blobs, off = {}, [], 0
    for k in sorted(h, key=lambda k: h[k]["data_offsets"][0]):
        t = h[k]; b, e = t["data_offsets"]; f.seek(base + b); raw = f.read(e - b)
        if t["dtype"] == "BF16":
            hw = array.array("H"); hw.frombytes(raw)
            raw = array.array("I", [x << 16 for x in hw]).tobytes(); t = dict(t, dtype="F32")
        new[k] = dict(t, data_offsets=[off, off + len(raw)]); off += len(raw); blobs.append(raw)
if meta is not None: new["__metadata__"] = meta
hdr = json.dumps(new).encode(); hdr += b" " * (-len(hdr) % 8)
with open(p, "wb") as f:
    f.write(struct.pack("<Q", len(hdr))); f.write(hdr); [f.write(x) for x in blobs]
PY
dtypes() { python3 -c 'import json,struct,sys; f=open(sys.argv[1],"rb"); n=struct.unpack("<Q",f.read(8))[0]; h=json.loads(f.read(n)); h.pop("__metadata__",None); print(" ".join(sorted(set(v["dtype"] for v in h.values()))))' "$1"; }
check "the source model is F32" '[ "$(dtypes "$T/toy/model.safetensors")" = F32 ]'

# A stand-in build: the CPU build's embedc, and a system program for the
# other binaries gpu-check runs.
B=$T/build
TRUE=$(type -P true)   # the program, not the shell builtin
mkdir -p "$B/host" "$B/bench" "$B/kernels" "$B/tests/cuda"
cp "$EMBEDC" "$B/host/embedc"
for f in bench/bench_kernels tests/cuda/test_x_gpu; do cp "$TRUE" "$B/$f"; done
printf 'not an ELF' > "$B/kernels/libembedc_kernels.a"

out=$("$SRC/tools/gpu-pack" --dir "$T/pack" --build "$B" --limit-mib 100000 --xz-preset 1 "$T/toy" 2>&1)
check "pack succeeds" '[ $? = 0 ]'
check "weights compressed, no plain copy" '[ -f "$T/pack/models/toy/model.safetensors.planes.xz" ] && [ ! -f "$T/pack/models/toy/model.safetensors" ]'
check "pack reports the traveling size" 'echo "$out" | grep -q "MiB (limit 100000 MiB)"'
libs=$(python3 -c 'import sys, tarfile; print(" ".join(tarfile.open(sys.argv[1]).getnames()))' "$T/pack/build.tar.xz")
check "the archive holds the binaries and the suites" 'for f in host/embedc bench/bench_kernels kernels/libembedc_kernels.a tests/cuda/test_x_gpu; do echo "$libs" | grep -qw "build/$f" || exit 1; done'
check "the archive holds the libraries embedc loads (cJSON)" 'echo "$libs" | grep -q "lib/libcjson.so"'
check "not the C runtime or CUDA libraries" '! echo "$libs" | grep -Eq "lib/(libc\.so|libstdc|libcudart|libcublas|libnccl)"'

python3 "$SRC/tools/safetensors-to-half" "$T/toy" "$T/half" f16 >/dev/null
out=$("$SRC/tools/gpu-pack" --unpack --dir "$T/pack" --build "$T/unpacked" --into "$T/models" 2>&1)
check "unpack succeeds" '[ $? = 0 ]'
check "unpacked weights = safetensors-to-half's F16" 'cmp -s "$T/models/toy/model.safetensors" "$T/half/model.safetensors"'
check "unpacked weights are F16" '[ "$(dtypes "$T/models/toy/model.safetensors")" = F16 ]'
same=1
for f in $(cd "$T/toy" && find . -type f ! -name '*.safetensors'); do
    cmp -s "$T/toy/$f" "$T/models/toy/$f" || same=0
done
check "every other model file restored as is" '[ $same = 1 ]'
check "binaries restored, executable" 'cmp -s "$T/unpacked/host/embedc" "$EMBEDC" && [ -x "$T/unpacked/host/embedc" ] && cmp -s "$T/unpacked/tests/cuda/test_x_gpu" "$TRUE"'
check "libraries in BUILD/lib, loaded from there" 'LD_LIBRARY_PATH="$T/unpacked/lib" ldd "$T/unpacked/host/embedc" | grep -q "libcjson.so.1 => $T/unpacked/lib/libcjson.so.1"'

printf 'x' > "$T/models/toy/model.safetensors"
out=$("$SRC/tools/gpu-pack" --unpack --dir "$T/pack" --build "$T/unpacked" --into "$T/models" 2>&1)
check "weights already there left alone" 'echo "$out" | grep -q "left alone" && [ "$(cat "$T/models/toy/model.safetensors")" = x ]'

out=$("$SRC/tools/gpu-pack" --dir "$T/pack2" --no-build --limit-mib 1 --xz-preset 1 "$T/toy" 2>&1)
check "a model over the limit is left out, saying so" 'echo "$out" | grep -q "toy left out" && [ ! -d "$T/pack2/models/toy" ]'
out=$("$SRC/tools/gpu-pack" --unpack --dir "$T/pack" toy 2>&1)
check "--unpack refuses model names" '[ $? != 0 ] && echo "$out" | grep -q "takes no model names"'
out=$("$SRC/tools/gpu-pack" --dir "$T/pack3" --no-build "$T/nothing" 2>&1)
check "a directory without config.json is refused" '[ $? != 0 ] && echo "$out" | grep -q "has no config.json"'
mkdir -p "$T/b2/host" && cp "$EMBEDC" "$T/b2/host/embedc"
out=$("$SRC/tools/gpu-pack" --dir "$T/pack4" --build "$T/b2" --no-model 2>&1)
check "a build without its suites is refused, saying so" '[ $? != 0 ] && echo "$out" | grep -q "holds no \*_gpu suites"'
mkdir -p "$T/b2/tests/cuda" && cp "$TRUE" "$T/b2/tests/cuda/test_x_gpu"
out=$("$SRC/tools/gpu-pack" --dir "$T/pack4" --build "$T/b2" --no-model 2>&1)
check "a build missing a binary is refused, naming it" '[ $? != 0 ] && echo "$out" | grep -q "bench/bench_kernels is missing"'

[ $fails = 0 ] || { echo "gpu_pack: $fails failed"; exit 1; }
echo "gpu_pack: all passed"

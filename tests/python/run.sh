#!/usr/bin/env bash
# ctest entry for the pytest suites: skips (77) when the Python packages of
# tests/python/requirements.txt are missing (tools/test installs them).
set -uo pipefail
EMBEDC="$1"; ROOT="$2"
if ! python3 -c "import pytest, numpy, faiss, sklearn, PIL" 2>/dev/null; then
    echo "pytest suites skipped: pip install -r tests/python/requirements.txt" >&2
    exit 77
fi
cd "$ROOT" && EMBEDC="$EMBEDC" OMP_NUM_THREADS=1 exec python3 -m pytest -q -p no:cacheprovider tests/python

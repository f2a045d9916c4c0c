#!/usr/bin/env bash
# Regenerates the TypeScript flatbuffers code from src/model/snapshot.fbs. Needs flatc (Debian: flatbuffers-compiler).
# The generated code is committed, so a build needs no compiler.
set -euo pipefail
cd "$(dirname "$0")/.."
rm -rf src/model/fb
flatc --ts -o src/model/fb src/model/snapshot.fbs
# flatc 2.0.8 emits extension-less relative imports; NodeNext ESM needs ".js".
find src/model/fb -name '*.ts' -print0 | xargs -0 sed -i -E "s#(from '\.{1,2}/[^']+)';#\1.js';#"
echo "generated: $(find src/model/fb -name '*.ts' | wc -l) files"

#!/bin/sh
# Seeds the fuzz corpora with the .gopclntab and .go.buildinfo sections of the Go fixtures that
# `cargo test -p mapleak pclntab` builds (run that first, with Go toolchains installed).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
fixtures="$here/../target/pclntab-fixtures"
mkdir -p "$here/corpus/pclntab" "$here/corpus/buildinfo"
for bin in "$fixtures"/*/stripped "$fixtures"/*/external; do
    [ -f "$bin" ] || continue
    name=$(basename "$(dirname "$bin")")-$(basename "$bin")
    objcopy -O binary --only-section=.gopclntab "$bin" "$here/corpus/pclntab/$name"
    objcopy -O binary --only-section=.go.buildinfo "$bin" "$here/corpus/buildinfo/$name"
done
ls -l "$here/corpus/pclntab" "$here/corpus/buildinfo"

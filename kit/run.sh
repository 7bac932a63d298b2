#!/usr/bin/env bash
# Unpacks the GPU run kit from its parts (kit/pack.sh) and runs its checks: devices, the device kernel
# checks, generate parity with the JVM, bench --profile on random 110M and 1B F16 models (see
# kit/runtime/checks for the KIT_* settings). Needs bash, tar, gzip, sha256sum; no Java.
#
#   run.sh PARTS_DIR [DEST]       (default DEST: ./lora4j-kit-run; the report is DEST/lora4j-kit/work/report.md)
set -euo pipefail
PARTS="${1:?usage: run.sh PARTS_DIR [DEST]}"
DEST="${2:-$PWD/lora4j-kit-run}"
[ -f "$PARTS/SHA256SUMS" ] || { echo "run.sh: no SHA256SUMS in $PARTS" >&2; exit 1; }
(cd "$PARTS" && sha256sum -c --quiet SHA256SUMS) || { echo "run.sh: a part of the kit is damaged or missing" >&2; exit 1; }
mkdir -p "$DEST"
if [ ! -x "$DEST/lora4j-kit/lora4j" ]; then
  cat "$PARTS"/lora4j-kit.tar.gz.part-* | tar -C "$DEST" -xzf -
fi
echo "unpacked into $DEST/lora4j-kit ($(du -sh "$DEST/lora4j-kit" | cut -f1))" >&2
exec "$DEST/lora4j-kit/checks"

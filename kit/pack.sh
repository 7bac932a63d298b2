#!/usr/bin/env bash
# Packs the GPU run kit: what a Linux x86-64 machine with an NVIDIA GPU (driver installed) but no Java needs
# to run lora4j on TornadoVM: a jlinked JDK 25 runtime, the TornadoVM SDK, lora4j.jar, the ocl-icd OpenCL
# loader and an ICD file naming NVIDIA's OpenCL driver, plus the launcher and the checks (kit/runtime/).
# The kit is one tar.gz split into parts of at most 60 MiB, with their SHA-256 sums.
#
#   kit/pack.sh [OUT_DIR]          (default kit/out/; build outputs, not committed)
#
# Takes JDK 25 from JAVA_HOME (default /usr/lib/jvm/temurin-25-jdk-amd64), the SDK from TORNADO_SDK (default
# ../shared/tools/tornadovm beside the checkout), the loader from the system (Debian's ocl-icd-libopencl1,
# which .ci/run installs), the Llama 2 tokenizer for the checks' random models from ../shared/models (or
# TOKENIZER_GGUF), and builds cli/target/lora4j.jar when it is missing. Unpack and run with kit/run.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/kit/out}"
JAVA_HOME="${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}"
SDK="${TORNADO_SDK:-$ROOT/../shared/tools/tornadovm}"
# the Llama 2 vocabulary the checks' random models get (create-model --tokenizer-from)
TOKENIZER="${TOKENIZER_GGUF:-$ROOT/../shared/models/llama-2-tiny-random-gguf/llama-2-tiny-random.gguf}"
PART_SIZE=60M
die() { echo "kit/pack.sh: $*" >&2; exit 1; }

[ -x "$JAVA_HOME/bin/jlink" ] || die "no jlink in $JAVA_HOME (set JAVA_HOME to a JDK 25)"
"$JAVA_HOME/bin/java" -version 2>&1 | grep -q 'version "25' || die "$JAVA_HOME is not a JDK 25"
[ -f "$SDK/tornado-argfile.template" ] || die "no TornadoVM SDK at $SDK (set TORNADO_SDK)"
[ -f "$TOKENIZER" ] || die "no tokenizer GGUF at $TOKENIZER (set TOKENIZER_GGUF)"
loader=""
for l in /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 /usr/lib64/libOpenCL.so.1 /usr/lib/libOpenCL.so.1; do
  [ -e "$l" ] && { loader="$l"; break; }
done
[ -n "$loader" ] || die "no OpenCL ICD loader (libOpenCL.so.1) here: apt-get install ocl-icd-libopencl1"
JAR="$ROOT/cli/target/lora4j.jar"
if [ ! -f "$JAR" ]; then
  echo "building $JAR ..." >&2
  (cd "$ROOT" && JAVA_HOME="$JAVA_HOME" MAVEN_OPTS="${MAVEN_OPTS:---sun-misc-unsafe-memory-access=allow}" \
     mvn -B -q -DskipTests -pl cli -am package) || die "the build failed"
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
kit="$stage/lora4j-kit"
mkdir -p "$kit/lib" "$kit/vendors"

# The JDK's modules but its development tools (compiler, jshell, jlink, debugger agents, ...): TornadoVM runs
# with --add-modules ALL-SYSTEM and needs jdk.internal.vm.ci (JVMCI); lora4j needs jdk.incubator.vector.
mods=$("$JAVA_HOME/bin/java" --list-modules | sed 's/@.*//' | grep -v -E '^jdk\.(jshell|jdeps|jpackage|jlink|javadoc|jconsole|hotspot\.agent|jcmd|jdi|jdwp\.agent|jstatd|editpad|jsobject|compiler|jartool|internal\.ed|internal\.le|internal\.opt)$' | paste -sd, -)
echo "jlink: $(tr ',' '\n' <<<"$mods" | wc -l) modules" >&2
"$JAVA_HOME/bin/jlink" --add-modules "$mods" --strip-debug --no-man-pages --no-header-files --compress=zip-6 \
  --output "$kit/jdk" 2> >(grep -v 'incubator' >&2)
cp -r "$SDK" "$kit/sdk"
chmod -R u+w "$kit/sdk"
rm -rf "$kit/sdk/examples"
cp "$JAR" "$kit/lora4j.jar"
cp "$TOKENIZER" "$kit/tokenizer.gguf"
cp -L "$loader" "$kit/lib/libOpenCL.so.1"
# NVIDIA's driver installs libnvidia-opencl.so.1; this ICD file lets the kit's loader find it (the runner adds the
# machine's own ICD files, e.g. PoCL's, beside it)
echo "libnvidia-opencl.so.1" > "$kit/vendors/nvidia.icd"
cp "$ROOT/kit/runtime/lora4j" "$ROOT/kit/runtime/checks" "$kit/"
chmod +x "$kit/lora4j" "$kit/checks"
{
  echo "lora4j GPU run kit, packed $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$ROOT" && git diff --quiet 2>/dev/null || echo ' (with local changes)')"
  echo "jdk: $("$kit/jdk/bin/java" -version 2>&1 | head -1)"
  echo "tornadovm: $(basename "$(ls "$kit"/sdk/share/java/tornado/tornado-api-*.jar)" .jar)"
  echo "opencl loader: $(readlink -f "$loader")"
} > "$kit/VERSION"

mkdir -p "$OUT"
rm -f "$OUT"/lora4j-kit.tar.gz.part-* "$OUT/SHA256SUMS"
tar -C "$stage" -czf - lora4j-kit | split -b "$PART_SIZE" -d -a 2 - "$OUT/lora4j-kit.tar.gz.part-"
(cd "$OUT" && sha256sum lora4j-kit.tar.gz.part-* > SHA256SUMS)
ls -l "$OUT"/lora4j-kit.tar.gz.part-* | awk '{printf "%s  %.1f MiB\n", $NF, $5 / 1048576}'
echo "kit: $(ls "$OUT"/lora4j-kit.tar.gz.part-* | wc -l) parts in $OUT; unpack and run: kit/run.sh $OUT" >&2

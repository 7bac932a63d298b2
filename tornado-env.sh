# Source this file:  . ./tornado-env.sh
# Selects JDK 25 (TornadoVM's jdk25 line needs it) and, when a TornadoVM SDK is found, exports what
# the SDK needs so that Maven's `tornado` profile compiles against the real jars and ./lora4j runs with
# TornadoVM's JVM flags. The SDK is, in this order: $TORNADO_SDK; ../shared/tools/tornadovm beside this
# checkout; ~/TornadoVM/bin/sdk. The SDK folder may be read-only: its tornado-argfile.template is
# expanded (${TORNADOVM_HOME} → the SDK folder) into ${XDG_CACHE_HOME:-~/.cache}/lora4j/, where
# TornadoVM's OpenCL build logs go too.
export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
export PATH="$JAVA_HOME/bin:$PATH"
_lora4j_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
if [ -z "${TORNADO_SDK:-}" ]; then
  for _lora4j_sdk in "$_lora4j_root/../shared/tools/tornadovm" "$HOME/TornadoVM/bin/sdk"; do
    if [ -d "$_lora4j_sdk" ]; then
      export TORNADO_SDK="$_lora4j_sdk"
      break
    fi
  done
fi
if [ -n "${TORNADO_SDK:-}" ] && [ -d "$TORNADO_SDK" ]; then
  TORNADO_SDK="$(cd "$TORNADO_SDK" && pwd)"
  export TORNADO_SDK
  export TORNADOVM_HOME="$TORNADO_SDK"
  export PATH="$TORNADO_SDK/bin:$PATH"
  # One folder per SDK, so that shells using different SDKs do not overwrite each other's argfile.
  _lora4j_work="${XDG_CACHE_HOME:-$HOME/.cache}/lora4j/tornadovm-$(printf %s "$TORNADO_SDK" | cksum | cut -d' ' -f1)"
  mkdir -p "$_lora4j_work/opencl-logs"
  if [ -f "$TORNADO_SDK/tornado-argfile.template" ]; then
    # The SDK's argfile: JVMCI flags, module paths and the --add-exports/--add-opens it requires.
    _lora4j_argfile="$_lora4j_work/tornado-argfile"
    _lora4j_tpl="$(cat "$TORNADO_SDK/tornado-argfile.template")"
    _lora4j_var='${TORNADOVM_HOME}'
    printf '%s\n' "${_lora4j_tpl//"$_lora4j_var"/"$TORNADO_SDK"}" > "$_lora4j_argfile"
  else
    # An SDK that ships an expanded argfile (no template).
    _lora4j_argfile="$TORNADO_SDK/tornado-argfile"
  fi
  # TornadoVM writes OpenCL build logs (on a failed kernel compilation) to $TORNADOVM_HOME + this + /device-P-D:
  # the ".."s climb from the SDK folder to /, so that they land in the writable folder instead.
  _lora4j_logs="/../../../../../../../../../../../../../../../..$_lora4j_work/opencl-logs"
  # TornadoVM reads our project-owned @Parallel by name; bailouts are errors; no explicit fma() in the OpenCL it
  # generates (an fma() chain cannot be reassociated, so PoCL's compiler leaves such reductions scalar; GPU compilers
  # contract a*b+c themselves under the -cl-mad-enable TornadoVM passes). Never run TornadoVM with -ea.
  export LORA4J_JAVA_OPTS="@$_lora4j_argfile -Dtornado.load.annotation.parallel=io.lora4j.kernels.Parallel -Dtornado.recover.bailout=False -Dtornado.tvm.maxbytecodesize=262144 -Dtornado.enable.fma=False -Dtornado.opencl.log.dir=$_lora4j_logs"
  echo "TornadoVM SDK: $TORNADO_SDK (argfile $_lora4j_argfile)" >&2
elif [ -n "${TORNADO_SDK:-}" ]; then
  echo "TORNADO_SDK=$TORNADO_SDK is not a folder; JDK 25 selected, JVM backend only." >&2
else
  echo "TornadoVM SDK not found (set TORNADO_SDK); JDK 25 selected, JVM backend only." >&2
fi
unset _lora4j_root _lora4j_sdk _lora4j_work _lora4j_argfile _lora4j_tpl _lora4j_var _lora4j_logs

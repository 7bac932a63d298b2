# Source this file:  . ./tornado-env.sh
# Selects JDK 25 (TornadoVM's jdk25 line needs it) and, when a TornadoVM SDK is installed
# (TORNADO_SDK set, or ~/TornadoVM/bin/sdk present), exports what the SDK needs so that Maven's
# `tornado` profile compiles against the real jars and ./lora4j runs with TornadoVM's JVM flags.
export JAVA_HOME=/usr/lib/jvm/temurin-25-jdk-amd64
export PATH="$JAVA_HOME/bin:$PATH"
if [ -z "${TORNADO_SDK:-}" ] && [ -d "$HOME/TornadoVM/bin/sdk" ]; then
  export TORNADO_SDK="$HOME/TornadoVM/bin/sdk"
fi
if [ -n "${TORNADO_SDK:-}" ]; then
  export TORNADOVM_HOME="$TORNADO_SDK"
  export PATH="$TORNADO_SDK/bin:$PATH"
  # The SDK's argfile: JVMCI flags, module paths and the --add-exports/--add-opens it requires.
  # TornadoVM reads our project-owned @Parallel by name. Never run TornadoVM with -ea.
  export LORA4J_JAVA_OPTS="@$TORNADO_SDK/tornado-argfile -Dtornado.load.annotation.parallel=io.lora4j.kernels.Parallel -Dtornado.recover.bailout=False -Dtornado.tvm.maxbytecodesize=262144"
  echo "TornadoVM SDK: $TORNADO_SDK" >&2
else
  echo "TornadoVM SDK not found (set TORNADO_SDK); JDK 25 selected, JVM backend only." >&2
fi

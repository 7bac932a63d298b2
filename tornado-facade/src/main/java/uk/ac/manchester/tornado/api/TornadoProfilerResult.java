// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/TornadoProfilerResult.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api;

/**
 * The profiler's figures for the graphs an execution ran (with {@code withProfiler}): times in
 * nanoseconds, sizes in bytes. The real class implements {@code profiler.ProfilerInterface}.
 */
public class TornadoProfilerResult {

    TornadoProfilerResult() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public long getTotalTime() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public long getCompileTime() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public long getDeviceWriteTime() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public long getDeviceReadTime() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public long getDeviceKernelTime() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public String getProfileLog() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public long getTotalBytesCopyIn() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public long getTotalBytesCopyOut() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }
}

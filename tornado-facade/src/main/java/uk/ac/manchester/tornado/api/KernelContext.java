// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/KernelContext.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api;

/**
 * The thread ids and local memory of a {@code KernelContext} kernel. As in the real class the ids
 * are {@code Integer} fields (TornadoVM replaces their reads with the OpenCL/PTX built-ins); as plain
 * Java every id reads 0, so such kernels only run correctly under TornadoVM. The real class also
 * implements {@code ExecutionContext}, which callers never name.
 */
public class KernelContext {
    public final Integer globalIdx = 0;
    public final Integer groupIdx = 0;
    public final Integer localIdx = 0;
    public final Integer localGroupSizeX = 0;

    public KernelContext() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public void localBarrier() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public float[] allocateFloatLocalArray(int size) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }
}

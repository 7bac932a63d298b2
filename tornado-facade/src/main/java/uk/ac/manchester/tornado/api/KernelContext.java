// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/KernelContext.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api;

/**
 * What a kernel written against thread indices sees: its global, local and group indices, the
 * local (work-group) size, barriers and local-memory arrays. Run as plain Java every index is 0,
 * so such kernels run only on a device.
 */
public class KernelContext {
    public final Integer globalIdx = null;
    public final Integer globalIdy = null;
    public final Integer groupIdx = null;
    public final Integer groupIdy = null;
    public final Integer localIdx = null;
    public final Integer localIdy = null;
    public final Integer localGroupSizeX = null;
    public final Integer localGroupSizeY = null;

    public KernelContext() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public void localBarrier() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public void globalBarrier() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public float[] allocateFloatLocalArray(int size) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }
}

// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/WorkerGrid2D.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api;

/** A two-dimensional grid. The real class extends {@code AbstractWorkerGrid}, which implements {@link WorkerGrid}. */
public class WorkerGrid2D implements WorkerGrid {

    public WorkerGrid2D(int x, int y) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    @Override
    public void setGlobalWork(long x, long y, long z) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    @Override
    public void setLocalWork(long x, long y, long z) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }
}

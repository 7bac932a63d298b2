// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/GridScheduler.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api;

/** The thread grids of tasks, by {@code "graph.task"}; an execution plan takes one with {@code withGridScheduler}. */
public class GridScheduler {

    public GridScheduler() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public void addWorkerGrid(String taskName, WorkerGrid workerGrid) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }
}

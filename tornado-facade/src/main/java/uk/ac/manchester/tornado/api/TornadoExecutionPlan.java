// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/TornadoExecutionPlan.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api;

import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.exceptions.TornadoExecutionPlanException;

/**
 * Runs immutable task graphs. The real class is {@code sealed ... permits ExecutionPlanType} (its
 * {@code with*} methods return decorating subclasses); callers only see this type, so the facade
 * omits the permits list.
 */
public class TornadoExecutionPlan implements AutoCloseable {

    public TornadoExecutionPlan(ImmutableTaskGraph... immutableTaskGraphs) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoExecutionResult execute() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoExecutionPlan withGraph(int graphIndex) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoExecutionPlan withDevice(TornadoDevice device) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoExecutionPlan withGridScheduler(GridScheduler gridScheduler) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoExecutionPlan withProfiler(ProfilerMode profilerMode) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoExecutionPlan freeDeviceMemory() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    @Override
    public void close() throws TornadoExecutionPlanException {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }
}

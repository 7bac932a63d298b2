// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/TornadoExecutionResult.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api;

/** What {@link TornadoExecutionPlan#execute} returns; brings UNDER_DEMAND data back on request. */
public class TornadoExecutionResult {

    TornadoExecutionResult() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoProfilerResult getProfilerResult() {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }

    public TornadoExecutionResult transferToHost(Object... objects) {
        throw new UnsupportedOperationException("tornado-api compile-only facade");
    }
}

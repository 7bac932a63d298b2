// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/enums/ProfilerMode.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api.enums;

/** How an execution plan's profiler reports: printed after every execution, or only kept for the result. */
public enum ProfilerMode {
    CONSOLE, SILENT
}

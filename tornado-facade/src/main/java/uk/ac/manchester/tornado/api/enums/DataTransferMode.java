// Compile-only declaration of TornadoVM's API (tornado-api 5.2.1-jdk25): same package, names and
// signatures as tornado-api/src/main/java/uk/ac/manchester/tornado/api/enums/DataTransferMode.java
// in beehive-lab/TornadoVM (branch jdk25), so code compiled against it links against the real jar.
// Never on a run-time class path: the lora4j build uses it with <scope>provided</scope>.
package uk.ac.manchester.tornado.api.enums;

/** When {@code transferToDevice} / {@code transferToHost} move data. Compile-time constants: their values are the real ones. */
public class DataTransferMode {

    public static final int FIRST_EXECUTION = 0;
    public static final int EVERY_EXECUTION = 1;
    public static final int UNDER_DEMAND = 2;

    private DataTransferMode() {
    }
}

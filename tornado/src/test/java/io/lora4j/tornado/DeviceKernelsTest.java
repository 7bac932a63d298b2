package io.lora4j.tornado;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The device kernel checks ({@link DeviceChecks}): every device kernel alone on the TornadoVM device
 * against the JVM runner (a work-group kernel against its oracle). Runs only where a TornadoVM runtime
 * is present.
 */
@Tag("tornado")
class DeviceKernelsTest {

    @BeforeEach
    void needsTornado() {
        String why = Tornado.unavailable();
        assumeTrue(why == null, () -> "TornadoVM runtime not present: " + why);
    }

    static Stream<DeviceChecks.Check> naive() {
        return DeviceChecks.naive();
    }

    static Stream<DeviceChecks.Check> workGroups() {
        return DeviceChecks.workGroups();
    }

    @ParameterizedTest
    @MethodSource("naive")
    void theDeviceComputesWhatTheJvmComputes(DeviceChecks.Check c) {
        assertNull(DeviceChecks.compare(c, p -> new TornadoRunner(p, null)));
    }

    @ParameterizedTest
    @MethodSource("workGroups")
    void theWorkGroupKernelsComputeWhatTheirOraclesCompute(DeviceChecks.Check c) {
        assertNull(DeviceChecks.compare(c, p -> new TornadoRunner(p, null)));
    }
}

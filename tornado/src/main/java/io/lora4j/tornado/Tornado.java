package io.lora4j.tornado;

import uk.ac.manchester.tornado.api.TornadoBackend;
import uk.ac.manchester.tornado.api.TornadoRuntime;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
import uk.ac.manchester.tornado.api.enums.TornadoDeviceType;
import uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider;

import java.util.ArrayList;
import java.util.List;

/**
 * Whether a TornadoVM runtime is present in this JVM, and its devices. TornadoVM is present when
 * the JVM was started with the SDK's {@code tornado-argfile} (it names the runtime implementation
 * in {@code tornado.load.runtime.implementation} and puts the TornadoVM modules on the module path);
 * {@code tornado-env.sh} makes {@code ./lora4j} do that. No TornadoVM class is touched before that
 * property is checked, so this works without any TornadoVM jar.
 */
public final class Tornado {
    private static final String RUNTIME = "tornado.load.runtime.implementation";

    private Tornado() {
    }

    /** One device of one TornadoVM backend, numbered across all backends for {@code --device}. */
    public record Device(int index, int backend, int device, String backendName, String name, String type,
                         long globalMemory, String description) {
        public boolean isGpu() {
            return type.equals(TornadoDeviceType.GPU.name());
        }
    }

    /** Why TornadoVM cannot run in this JVM, or null when it can. */
    public static String unavailable() {
        String impl = System.getProperty(RUNTIME);
        if (impl == null) {
            return "this JVM was not started with TornadoVM's options (set TORNADO_SDK to a TornadoVM SDK and "
                    + "source tornado-env.sh; ./lora4j then passes the SDK's tornado-argfile)";
        }
        try {
            Class.forName(impl);
        } catch (ClassNotFoundException | LinkageError e) {
            return "the TornadoVM runtime " + impl + " is not on the module path (" + e + ")";
        }
        try {
            if (TornadoRuntimeProvider.getTornadoRuntime().getNumBackends() == 0) {
                return "TornadoVM started but has no backend (build it with the OpenCL, PTX or SPIR-V backend)";
            }
        } catch (RuntimeException | LinkageError e) {
            return "TornadoVM failed to start: " + e;
        }
        return null;
    }

    /** Every device of every backend, in TornadoVM's order. Call only when {@link #unavailable()} is null. */
    public static List<Device> devices() {
        TornadoRuntime rt = TornadoRuntimeProvider.getTornadoRuntime();
        List<Device> out = new ArrayList<>();
        for (int b = 0; b < rt.getNumBackends(); b++) {
            TornadoBackend be = rt.getBackend(b);
            for (int d = 0; d < be.getNumDevices(); d++) {
                TornadoDevice dev = be.getDevice(d);
                out.add(new Device(out.size(), b, d, be.getName(), dev.getDeviceName(), dev.getDeviceType().name(),
                        dev.getMaxGlobalMemory(), dev.getDescription()));
            }
        }
        return out;
    }

    /** TornadoVM's device for {@code --device index} (null: TornadoVM's default device). */
    static TornadoDevice device(Integer index) {
        if (index == null) {
            return null;
        }
        List<Device> all = devices();
        if (index < 0 || index >= all.size()) {
            throw new IllegalArgumentException("--device " + index + ": TornadoVM has " + all.size()
                    + " device(s) (see lora4j devices)");
        }
        Device d = all.get(index);
        return TornadoRuntimeProvider.getTornadoRuntime().getBackend(d.backend()).getDevice(d.device());
    }
}

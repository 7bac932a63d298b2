package io.lora4j.tornado;

/** Executes the graphs of one {@link DevicePlan}, one at a time, on a device (or its emulation). */
public interface PlanRunner extends AutoCloseable {

    /** Runs graph {@code index} of the plan: its copies in, its tasks in order, its copies out. */
    void execute(int index);

    /** Brings {@code UNDER_DEMAND} outputs of graph {@code index} (executed at least once) back to the host arrays. */
    void copyToHost(int index, Object... arrays);

    /** Records into {@code p} from now on (every execution's times, copies, kernels and the device memory); null stops. */
    void profile(DeviceProfile p);

    /** What runs the plan, for messages (device name). */
    String device();

    /** Frees the device memory of the plan. */
    @Override
    void close();
}

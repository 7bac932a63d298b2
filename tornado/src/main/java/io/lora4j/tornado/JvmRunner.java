package io.lora4j.tornado;

import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;
import io.lora4j.tornado.DevicePlan.Task;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task1;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task10;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task11;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task12;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task13;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task14;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task15;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task2;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task3;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task4;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task5;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task6;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task7;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task8;
import uk.ac.manchester.tornado.api.common.TornadoFunctions.Task9;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs a {@link DevicePlan} as plain Java over emulated device memory: the reference executor of
 * the plans, and how they are tested without TornadoVM. Each graph has its own "device" copies of
 * the arrays it declares, made and refreshed exactly when TornadoVM would copy them
 * (FIRST_EXECUTION once, EVERY_EXECUTION each time), shared with later graphs only through
 * persist/consume, and written back to the host arrays only by declared copies out. As in
 * TornadoVM 5.2 ({@code TornadoTaskGraph.updatePersistedObjectState}), a consumed array is bound to
 * the source graph's device copy only when the source is the graph executed immediately before; a
 * graph that runs with a consumed array still unbound is an error (on TornadoVM it dereferences a
 * null buffer). A task that touches an array its graph did not declare is an error. So a plan that
 * forgets a transfer fails here as it would on a device. Kernels run sequentially (their
 * {@code @Parallel} loops are plain loops on the JVM); a work-group kernel runs as its oracle (its
 * thread indices would all be 0 here). With a {@link DeviceProfile} attached, graph and kernel times
 * are wall times, bytes are what this runner copies, and the device memory is the emulated copies'
 * size. One difference: TornadoVM does not copy in
 * an array that its tasks only write, so elements such a task leaves alone hold whatever the
 * device buffer held; plans never read those (a KV cache row is read only after it was stored).
 */
public final class JvmRunner implements PlanRunner {
    private final DevicePlan plan;
    private final List<Map<Object, Object>> memory = new ArrayList<>(); // per graph: host array → device copy
    private final boolean[] executed;
    private int last = -1;
    private DeviceProfile profile;

    public JvmRunner(DevicePlan plan) {
        this.plan = plan;
        for (int i = 0; i < plan.graphs().size(); i++) {
            memory.add(new IdentityHashMap<>());
        }
        executed = new boolean[plan.graphs().size()];
    }

    @Override
    public void execute(int index) {
        Graph g = plan.graphs().get(index);
        Map<Object, Object> mem = memory.get(index);
        long t0 = System.nanoTime(), in = 0, out = 0;
        for (var e : g.consumed().entrySet()) {
            int from = plan.index(e.getValue());
            if (from == last) {
                if (!containsIdentity(plan.graphs().get(from).persisted(), e.getKey())) {
                    throw new IllegalStateException(g.name() + " consumes an array that " + e.getValue()
                            + " does not persist on the device");
                }
                mem.put(e.getKey(), memory.get(from).get(e.getKey()));
            } else if (!mem.containsKey(e.getKey())) {
                throw new IllegalStateException(g.name() + " consumes an array from " + e.getValue() + ", which did not run"
                        + " immediately before it (TornadoVM binds consumed arrays only from the graph executed last)");
            }
        }
        if (!executed[index]) {
            for (Object a : g.copyIn().keySet()) {
                mem.put(a, copyOf(a));
                in += DevicePlan.bytes(a);
            }
        } else {
            for (var e : g.copyIn().entrySet()) {
                if (e.getValue() == Mode.EVERY_EXECUTION) {
                    copy(e.getKey(), mem.get(e.getKey()));
                    in += DevicePlan.bytes(e.getKey());
                }
            }
        }
        long tasks = System.nanoTime();
        for (Task t : g.tasks()) {
            Object[] args = t.args().clone();
            for (int i = 0; i < args.length; i++) {
                if (DevicePlan.isArray(args[i])) {
                    Object dev = mem.get(args[i]);
                    if (dev == null) {
                        throw new IllegalStateException("task " + g.name() + "." + t.name() + ": argument " + (i + 1)
                                + " is an array the graph neither copies in nor consumes");
                    }
                    args[i] = dev;
                }
            }
            long k0 = System.nanoTime();
            if (t.workGroups()) {
                invoke(t.oracle(), java.util.Arrays.copyOfRange(args, 1, args.length));
            } else {
                invoke(t.code(), args);
            }
            if (profile != null) {
                profile.kernel(t.name(), System.nanoTime() - k0);
            }
        }
        long copies = System.nanoTime();
        for (var e : g.copyOut().entrySet()) {
            if (e.getValue() == Mode.EVERY_EXECUTION) {
                copy(deviceCopy(g, mem, e.getKey()), e.getKey());
                out += DevicePlan.bytes(e.getKey());
            }
        }
        executed[index] = true;
        last = index;
        if (profile != null) {
            long end = System.nanoTime();
            DeviceProfile.GraphStats s = profile.graph(g.name());
            s.executions++;
            s.wallNanos += end - t0;
            s.deviceNanos = -1;
            s.kernelNanos += copies - tasks;
            s.copyInBytes += in;
            s.copyInNanos += tasks - t0;
            s.copyOutBytes += out;
            s.copyOutNanos += end - copies;
            s.compileNanos = -1;
        }
    }

    @Override
    public void profile(DeviceProfile p) {
        profile = p;
        if (p != null) {
            p.device(device(), plan.deviceBytes());
        }
    }


    @Override
    public void copyToHost(int index, Object... arrays) {
        Graph g = plan.graphs().get(index);
        if (!executed[index]) {
            throw new IllegalStateException(g.name() + " has not run yet");
        }
        for (Object a : arrays) {
            if (g.copyOut().get(a) != Mode.UNDER_DEMAND) {
                throw new IllegalStateException(g.name() + " does not declare that array as an UNDER_DEMAND output");
            }
            copy(deviceCopy(g, memory.get(index), a), a);
            if (profile != null) {
                profile.graph(g.name()).copyOutBytes += DevicePlan.bytes(a);
            }
        }
    }

    @Override
    public String device() {
        return "JVM emulation of the device plan";
    }

    @Override
    public void close() {
        memory.forEach(Map::clear);
    }

    private static Object deviceCopy(Graph g, Map<Object, Object> mem, Object host) {
        Object dev = mem.get(host);
        if (dev == null) {
            throw new IllegalStateException(g.name() + " copies out an array that is not on the device");
        }
        return dev;
    }

    private static boolean containsIdentity(List<Object> list, Object o) {
        for (Object x : list) {
            if (x == o) {
                return true;
            }
        }
        return false;
    }

    private static Object copyOf(Object a) {
        return switch (a) {
            case float[] f -> f.clone();
            case int[] i -> i.clone();
            case short[] s -> s.clone();
            case byte[] b -> b.clone();
            case long[] l -> l.clone();
            case double[] d -> d.clone();
            default -> throw new IllegalArgumentException(a.getClass().getName());
        };
    }

    private static void copy(Object from, Object to) {
        System.arraycopy(from, 0, to, 0, java.lang.reflect.Array.getLength(from));
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void invoke(Object code, Object[] a) {
        switch (a.length) {
            case 1 -> ((Task1) code).apply(a[0]);
            case 2 -> ((Task2) code).apply(a[0], a[1]);
            case 3 -> ((Task3) code).apply(a[0], a[1], a[2]);
            case 4 -> ((Task4) code).apply(a[0], a[1], a[2], a[3]);
            case 5 -> ((Task5) code).apply(a[0], a[1], a[2], a[3], a[4]);
            case 6 -> ((Task6) code).apply(a[0], a[1], a[2], a[3], a[4], a[5]);
            case 7 -> ((Task7) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
            case 8 -> ((Task8) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
            case 9 -> ((Task9) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
            case 10 -> ((Task10) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
            case 11 -> ((Task11) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]);
            case 12 -> ((Task12) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]);
            case 13 -> ((Task13) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                    a[12]);
            case 14 -> ((Task14) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                    a[12], a[13]);
            case 15 -> ((Task15) code).apply(a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                    a[12], a[13], a[14]);
            default -> throw new IllegalArgumentException("tasks take 1 to 15 arguments, got " + a.length);
        }
    }
}

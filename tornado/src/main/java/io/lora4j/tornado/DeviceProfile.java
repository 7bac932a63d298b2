package io.lora4j.tornado;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Where a device plan's time goes: per task graph its executions, its time (as the runner measured it
 * around the execution, and as the device reported it), its kernels' time, the bytes copied in and out
 * and the time they took; per kernel (a task name, summed over the graphs that hold it: the blocks' graphs
 * share their task names) its launches and time; and the device memory the plan holds. A
 * {@link PlanRunner} records into it while it is attached ({@link PlanRunner#profile}): on TornadoVM
 * from the profiler of the execution plan ({@code withProfiler}, the per-task kernel times from its
 * profile log), on the JVM runner from wall times and the copies it makes. Times are nanoseconds; a
 * figure the runner cannot measure is −1. The device memory is the plan's own count of its buffers
 * ({@link DevicePlan#deviceBytes}): TornadoVM 5.2's {@code getCurrentDeviceMemoryUsage} counts, per
 * graph execution, what that execution allocated plus the consumed buffers, so it neither adds up
 * over graphs nor holds after the first execution.
 */
public final class DeviceProfile {

    /** One graph's figures, summed over its executions. */
    public static final class GraphStats {
        long executions, wallNanos, deviceNanos, kernelNanos, copyInBytes, copyInNanos, copyOutBytes, copyOutNanos, compileNanos;

        public long executions() {
            return executions;
        }

        public long copyInBytes() {
            return copyInBytes;
        }

        public long copyOutBytes() {
            return copyOutBytes;
        }
    }

    /** One kernel's figures (a task name over all graphs holding it), summed over its launches. */
    public static final class KernelStats {
        long launches, nanos;

        public long launches() {
            return launches;
        }

        public long nanos() {
            return nanos;
        }
    }

    private final Map<String, GraphStats> graphs = new LinkedHashMap<>();
    private final Map<String, KernelStats> kernels = new LinkedHashMap<>();
    private String device = "";
    private long deviceBytes;

    /** Forgets every time, count and size of the executions (not the device and its memory). */
    public void reset() {
        graphs.clear();
        kernels.clear();
    }

    /** The device that runs the plan, and the bytes of the buffers the plan holds there. */
    void device(String d, long bytes) {
        device = d;
        deviceBytes = bytes;
    }

    GraphStats graph(String name) {
        return graphs.computeIfAbsent(name, k -> new GraphStats());
    }

    void kernel(String task, long nanos) {
        KernelStats k = kernels.computeIfAbsent(task, x -> new KernelStats());
        k.launches++;
        k.nanos += nanos;
    }

    /** Per graph, in the order first executed. */
    public Map<String, GraphStats> graphs() {
        return java.util.Collections.unmodifiableMap(graphs);
    }

    /** Per kernel (task name), in the order first launched. */
    public Map<String, KernelStats> kernels() {
        return java.util.Collections.unmodifiableMap(kernels);
    }

    /** Executions of all graphs. */
    public long executions() {
        return graphs.values().stream().mapToLong(g -> g.executions).sum();
    }

    /** Bytes of the device buffers the plan holds (its distinct arrays: weights, caches, scratch, adapters). */
    public long deviceMemory() {
        return deviceBytes;
    }

    /**
     * The figures as text: a table of graphs, a table of the kernels by time (at most {@code topKernels}),
     * and the device memory, every figure divided by {@code runs} (the profiled runs of one test).
     */
    public String report(String title, int runs, int topKernels) {
        StringBuilder sb = new StringBuilder();
        double r = Math.max(1, runs);
        sb.append(String.format(Locale.ROOT, "profile of %s on %s (per run; %d run%s)%n", title, device, runs, runs == 1 ? "" : "s"));
        sb.append("| graph | executions | time ms | device ms | kernels ms | in KiB | in ms | out KiB | out ms | compile ms |\n");
        sb.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
        GraphStats total = new GraphStats();
        for (var e : graphs.entrySet()) {
            GraphStats g = e.getValue();
            row(sb, e.getKey(), g, r);
            total.executions += g.executions;
            total.wallNanos += g.wallNanos;
            total.deviceNanos = add(total.deviceNanos, g.deviceNanos);
            total.kernelNanos = add(total.kernelNanos, g.kernelNanos);
            total.copyInBytes += g.copyInBytes;
            total.copyInNanos = add(total.copyInNanos, g.copyInNanos);
            total.copyOutBytes += g.copyOutBytes;
            total.copyOutNanos = add(total.copyOutNanos, g.copyOutNanos);
            total.compileNanos = add(total.compileNanos, g.compileNanos);
        }
        row(sb, "**all**", total, r);
        List<Map.Entry<String, KernelStats>> ks = new ArrayList<>(kernels.entrySet());
        ks.sort(Comparator.comparingLong((Map.Entry<String, KernelStats> e) -> e.getValue().nanos).reversed());
        long all = ks.stream().mapToLong(e -> e.getValue().nanos).sum();
        sb.append("\n| kernel | launches | ms | share |\n| --- | ---: | ---: | ---: |\n");
        for (var e : ks.subList(0, Math.min(topKernels, ks.size()))) {
            KernelStats k = e.getValue();
            sb.append(String.format(Locale.ROOT, "| %s | %.1f | %.3f | %.1f%% |%n", e.getKey(), k.launches / r, k.nanos / r / 1e6,
                    all > 0 ? 100.0 * k.nanos / all : 0));
        }
        if (ks.size() > topKernels) {
            long rest = ks.subList(topKernels, ks.size()).stream().mapToLong(e -> e.getValue().nanos).sum();
            long launches = ks.subList(topKernels, ks.size()).stream().mapToLong(e -> e.getValue().launches).sum();
            sb.append(String.format(Locale.ROOT, "| (%d others) | %.1f | %.3f | %.1f%% |%n", ks.size() - topKernels, launches / r,
                    rest / r / 1e6, all > 0 ? 100.0 * rest / all : 0));
        }
        sb.append(String.format(Locale.ROOT, "%ndevice memory: %.2f MiB (the plan's buffers: weights, caches, adapters, scratch)%n", deviceMemory() / 1048576.0));
        return sb.toString();
    }

    private static long add(long a, long b) {
        return a < 0 || b < 0 ? -1 : a + b;
    }

    private static void row(StringBuilder sb, String name, GraphStats g, double r) {
        sb.append(String.format(Locale.ROOT, "| %s | %.1f | %.3f | %s | %s | %.1f | %s | %.1f | %s | %s |%n", name, g.executions / r,
                g.wallNanos / r / 1e6, ms(g.deviceNanos, r), ms(g.kernelNanos, r), g.copyInBytes / r / 1024, ms(g.copyInNanos, r),
                g.copyOutBytes / r / 1024, ms(g.copyOutNanos, r), ms(g.compileNanos, r)));
    }

    private static String ms(long nanos, double r) {
        return nanos < 0 ? "–" : String.format(Locale.ROOT, "%.3f", nanos / r / 1e6);
    }
}

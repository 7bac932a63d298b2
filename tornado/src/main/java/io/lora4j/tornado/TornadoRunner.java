package io.lora4j.tornado;

import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;
import io.lora4j.tornado.DevicePlan.Task;
import uk.ac.manchester.tornado.api.GridScheduler;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.KernelContext;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
import uk.ac.manchester.tornado.api.TornadoProfilerResult;
import uk.ac.manchester.tornado.api.WorkerGrid;
import uk.ac.manchester.tornado.api.WorkerGrid1D;
import uk.ac.manchester.tornado.api.WorkerGrid2D;
import uk.ac.manchester.tornado.api.common.TornadoDevice;
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
import uk.ac.manchester.tornado.api.enums.DataTransferMode;
import uk.ac.manchester.tornado.api.enums.ProfilerMode;
import uk.ac.manchester.tornado.api.exceptions.TornadoExecutionPlanException;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Runs a {@link DevicePlan} on TornadoVM: every graph becomes a {@code TaskGraph} (consumed arrays,
 * copies in, tasks, persisted arrays, copies out, in that order), all of them one
 * {@code TornadoExecutionPlan}; {@link #execute} selects a graph with {@code withGraph(i)}. Work-group
 * kernels get one {@code KernelContext} per graph and their grids through one {@code GridScheduler}
 * (keys {@code "graph.task"}), whose worker grids take the plan's grid sizes before every execution.
 * With a {@link DeviceProfile} attached the plan runs with TornadoVM's profiler ({@code SILENT}): after
 * each execution the graph's figures come from its {@code TornadoProfilerResult}, the per-task kernel
 * times from the new part of its profile log.
 */
final class TornadoRunner implements PlanRunner {
    private static final Pattern TASK = Pattern.compile("^\\s*\"([^\"]+)\": \\{$");
    private static final Pattern KERNEL_TIME = Pattern.compile("\"TASK_KERNEL_TIME\": \"(\\d+)\"");
    private final TornadoExecutionPlan plan;
    private final TornadoExecutionResult[] results;
    private final String device;
    private final DevicePlan source;
    private final List<List<Map.Entry<DevicePlan.Grid, WorkerGrid>>> grids = new ArrayList<>(); // per graph
    private final int[] logSeen; // per graph: how much of its profile log was read
    private DeviceProfile profile;

    TornadoRunner(DevicePlan p, TornadoDevice dev) {
        source = p;
        GridScheduler scheduler = new GridScheduler();
        List<ImmutableTaskGraph> graphs = new ArrayList<>();
        boolean anyGrid = false;
        for (Graph g : p.graphs()) {
            List<Map.Entry<DevicePlan.Grid, WorkerGrid>> gg = new ArrayList<>();
            graphs.add(taskGraph(g, scheduler, gg).snapshot());
            grids.add(gg);
            anyGrid |= !gg.isEmpty();
        }
        plan = new TornadoExecutionPlan(graphs.toArray(new ImmutableTaskGraph[0]));
        if (dev != null) {
            plan.withDevice(dev);
        }
        if (anyGrid) {
            plan.withGridScheduler(scheduler);
        }
        results = new TornadoExecutionResult[graphs.size()];
        logSeen = new int[graphs.size()];
        TornadoDevice d = dev != null ? dev : uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider.getTornadoRuntime().getDefaultDevice();
        device = "TornadoVM " + d.getDescription() + " [" + d.getDeviceName() + "]";
    }

    private static TaskGraph taskGraph(Graph g, GridScheduler scheduler, List<Map.Entry<DevicePlan.Grid, WorkerGrid>> grids) {
        TaskGraph tg = new TaskGraph(g.name());
        Map<String, List<Object>> bySource = new LinkedHashMap<>();
        g.consumed().forEach((a, from) -> bySource.computeIfAbsent(from, k -> new ArrayList<>()).add(a));
        bySource.forEach((from, arrays) -> tg.consumeFromDevice(from, arrays.toArray()));
        for (Mode m : Mode.values()) {
            Object[] in = select(g.copyIn(), m);
            if (in.length > 0) {
                tg.transferToDevice(mode(m), in);
            }
        }
        KernelContext context = null;
        for (Task t : g.tasks()) {
            if (t.workGroups()) {
                if (context == null) {
                    context = new KernelContext();
                }
                Object[] args = t.args().clone();
                args[0] = context;
                add(tg, t.name(), t.code(), args);
                DevicePlan.Grid grid = t.grid();
                long[] gl = grid.global();
                WorkerGrid w = grid.dims() == 1 ? new WorkerGrid1D(Math.toIntExact(gl[0])) : new WorkerGrid2D(Math.toIntExact(gl[0]),
                        Math.toIntExact(gl[1]));
                scheduler.addWorkerGrid(g.name() + "." + t.name(), w);
                grids.add(Map.entry(grid, w));
            } else {
                add(tg, t.name(), t.code(), t.args());
            }
        }
        if (!g.persisted().isEmpty()) {
            tg.persistOnDevice(g.persisted().toArray());
        }
        for (Mode m : Mode.values()) {
            Object[] out = select(g.copyOut(), m);
            if (out.length > 0) {
                tg.transferToHost(mode(m), out);
            }
        }
        return tg;
    }

    private static Object[] select(Map<Object, Mode> arrays, Mode m) {
        return arrays.entrySet().stream().filter(e -> e.getValue() == m).map(Map.Entry::getKey).toArray();
    }

    private static int mode(Mode m) {
        return switch (m) {
            case FIRST_EXECUTION -> DataTransferMode.FIRST_EXECUTION;
            case EVERY_EXECUTION -> DataTransferMode.EVERY_EXECUTION;
            case UNDER_DEMAND -> DataTransferMode.UNDER_DEMAND;
        };
    }

    @SuppressWarnings({"unchecked", "rawtypes"})
    private static void add(TaskGraph tg, String id, Object k, Object[] a) {
        switch (a.length) {
            case 1 -> tg.task(id, (Task1) k, a[0]);
            case 2 -> tg.task(id, (Task2) k, a[0], a[1]);
            case 3 -> tg.task(id, (Task3) k, a[0], a[1], a[2]);
            case 4 -> tg.task(id, (Task4) k, a[0], a[1], a[2], a[3]);
            case 5 -> tg.task(id, (Task5) k, a[0], a[1], a[2], a[3], a[4]);
            case 6 -> tg.task(id, (Task6) k, a[0], a[1], a[2], a[3], a[4], a[5]);
            case 7 -> tg.task(id, (Task7) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6]);
            case 8 -> tg.task(id, (Task8) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]);
            case 9 -> tg.task(id, (Task9) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]);
            case 10 -> tg.task(id, (Task10) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9]);
            case 11 -> tg.task(id, (Task11) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10]);
            case 12 -> tg.task(id, (Task12) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11]);
            case 13 -> tg.task(id, (Task13) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                    a[12]);
            case 14 -> tg.task(id, (Task14) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                    a[12], a[13]);
            case 15 -> tg.task(id, (Task15) k, a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
                    a[12], a[13], a[14]);
            default -> throw new IllegalArgumentException("tasks take 1 to 15 arguments, got " + a.length);
        }
    }

    @Override
    public void execute(int index) {
        for (var e : grids.get(index)) {
            long[] gl = e.getKey().global(), lo = e.getKey().local();
            e.getValue().setGlobalWork(gl[0], gl[1], 1);
            e.getValue().setLocalWork(lo[0], lo[1], 1);
        }
        long t0 = System.nanoTime();
        results[index] = plan.withGraph(index).execute();
        if (profile != null) {
            record(index, System.nanoTime() - t0);
        }
    }

    @Override
    public void profile(DeviceProfile p) {
        profile = p;
        if (p != null) {
            p.device(device, source.deviceBytes());
            plan.withProfiler(ProfilerMode.SILENT);
        }
    }

    /** The profiler's figures for the execution of graph {@code index} just finished. */
    private void record(int index, long wall) {
        TornadoProfilerResult r = results[index].getProfilerResult();
        String name = source.graphs().get(index).name();
        DeviceProfile.GraphStats g = profile.graph(name);
        g.executions++;
        g.wallNanos += wall;
        g.deviceNanos += r.getTotalTime();
        g.kernelNanos += r.getDeviceKernelTime();
        g.copyInBytes += r.getTotalBytesCopyIn();
        g.copyInNanos += r.getDeviceWriteTime();
        g.copyOutBytes += r.getTotalBytesCopyOut();
        g.copyOutNanos += r.getDeviceReadTime();
        g.compileNanos += r.getCompileTime();
        // the log holds one JSON section per profiled execution of this graph: read only the new one
        String log = r.getProfileLog();
        String fresh = log.substring(Math.min(logSeen[index], log.length()));
        logSeen[index] = log.length();
        String task = null;
        for (String line : fresh.split("\n")) {
            Matcher m = TASK.matcher(line);
            if (m.matches()) {
                task = m.group(1);
                continue;
            }
            Matcher k = KERNEL_TIME.matcher(line);
            if (k.find() && task != null) {
                // tasks are named graph.task; the blocks' graphs share task names, so kernels are counted by task name
                profile.kernel(task.substring(task.indexOf('.') + 1), Long.parseLong(k.group(1)));
            }
        }
    }

    @Override
    public void copyToHost(int index, Object... arrays) {
        if (results[index] == null) {
            throw new IllegalStateException("graph " + index + " has not run yet");
        }
        results[index].transferToHost(arrays);
    }

    @Override
    public String device() {
        return device;
    }

    @Override
    public void close() {
        try {
            plan.freeDeviceMemory();
            plan.close();
        } catch (TornadoExecutionPlanException e) {
            throw new IllegalStateException("TornadoVM: " + e.getMessage(), e);
        }
    }
}

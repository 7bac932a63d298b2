package io.lora4j.tornado;

import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;
import io.lora4j.tornado.DevicePlan.Task;
import uk.ac.manchester.tornado.api.ImmutableTaskGraph;
import uk.ac.manchester.tornado.api.TaskGraph;
import uk.ac.manchester.tornado.api.TornadoExecutionPlan;
import uk.ac.manchester.tornado.api.TornadoExecutionResult;
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
import uk.ac.manchester.tornado.api.exceptions.TornadoExecutionPlanException;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Runs a {@link DevicePlan} on TornadoVM: every graph becomes a {@code TaskGraph} (consumed arrays,
 * copies in, tasks, persisted arrays, copies out, in that order), all of them one
 * {@code TornadoExecutionPlan}; {@link #execute} selects a graph with {@code withGraph(i)}.
 */
final class TornadoRunner implements PlanRunner {
    private final TornadoExecutionPlan plan;
    private final TornadoExecutionResult[] results;
    private final String device;

    TornadoRunner(DevicePlan p, TornadoDevice dev) {
        List<ImmutableTaskGraph> graphs = new ArrayList<>();
        for (Graph g : p.graphs()) {
            graphs.add(taskGraph(g).snapshot());
        }
        plan = new TornadoExecutionPlan(graphs.toArray(new ImmutableTaskGraph[0]));
        if (dev != null) {
            plan.withDevice(dev);
        }
        results = new TornadoExecutionResult[graphs.size()];
        TornadoDevice d = dev != null ? dev : uk.ac.manchester.tornado.api.runtime.TornadoRuntimeProvider.getTornadoRuntime().getDefaultDevice();
        device = "TornadoVM " + d.getDescription() + " [" + d.getDeviceName() + "]";
    }

    private static TaskGraph taskGraph(Graph g) {
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
        for (Task t : g.tasks()) {
            add(tg, t);
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
    private static void add(TaskGraph tg, Task t) {
        Object[] a = t.args();
        Object k = t.code();
        String id = t.name();
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
        results[index] = plan.withGraph(index).execute();
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

package io.lora4j.tornado;

import uk.ac.manchester.tornado.api.KernelContext;
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
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.ObjIntConsumer;

/**
 * A device plan: task graphs described as data, in the shape TornadoVM takes them. Each
 * {@link Graph} names the arrays it moves ({@link Graph#copyIn}, {@link Graph#copyOut},
 * {@link Graph#persist}, {@link Graph#consume}) and a list of tasks, each a kernel method
 * reference (TornadoVM's {@code TaskN} functional interfaces) with its arguments. A
 * {@link PlanRunner} executes the plan: {@link TornadoRunner} builds real {@code TaskGraph}s from
 * it; {@link JvmRunner} runs the same kernels as plain Java over emulated device memory, which is
 * how the plans are tested where no TornadoVM runtime exists.
 * <p>
 * Scalar arguments are captured when the task is added (as TornadoVM does); values that change
 * between executions (positions, learning rate) live in small arrays copied in every execution.
 */
public final class DevicePlan {

    /** When an array is copied: as TornadoVM's {@code DataTransferMode}. */
    public enum Mode {
        /** Once, at the first execution (weights, caches). */
        FIRST_EXECUTION,
        /** At every execution (inputs, outputs). */
        EVERY_EXECUTION,
        /** Only when the host asks ({@link PlanRunner#copyToHost}). */
        UNDER_DEMAND
    }

    /**
     * One kernel launch: a method reference and its arguments (arrays and boxed scalars). A work-group
     * kernel (written against TornadoVM's {@code KernelContext}: thread indices, barriers, local memory)
     * has a {@link Grid}, its first argument is {@link #CONTEXT}, and an {@code oracle}: a method taking
     * the other arguments that computes the same outputs as plain Java (such kernels cannot run as Java:
     * every thread index is 0 there), which is what {@link JvmRunner} runs.
     */
    public record Task(String name, Object code, Object[] args, Grid grid, Object oracle) {
        /** Whether this is a work-group kernel (with a grid, a context and an oracle). */
        public boolean workGroups() {
            return grid != null;
        }
    }

    /** Stands for the {@code KernelContext} argument of a work-group kernel; the TornadoVM runner passes a real one. */
    public static final Object CONTEXT = new Object() {
        @Override
        public String toString() {
            return "KernelContext";
        }
    };

    /**
     * The thread grid of a work-group kernel: global and local thread counts in one or two dimensions
     * (the global counts are multiples of the local ones). A grid may follow a rule of the live rows
     * (a plan built for chunks of T rows launches only the work-groups a shorter chunk needs, or another
     * shape for one row): {@link Graph#liveRows} applies it before the chunk's executions, and
     * TornadoVM reads a task's grid at every launch.
     */
    public static final class Grid {
        private final int dims;
        private final ObjIntConsumer<Grid> byLiveRows;
        private final long[] global = {1, 1}, local = {1, 1};

        private Grid(int dims, ObjIntConsumer<Grid> byLiveRows) {
            this.dims = dims;
            this.byLiveRows = byLiveRows;
        }

        /** {@code groups} work-groups of {@code local} threads. */
        public static Grid of(long groups, long local) {
            return new Grid(1, null).set(groups, local);
        }

        /** {@code groupsX × groupsY} work-groups of {@code localX × localY} threads. */
        public static Grid of(long groupsX, long groupsY, long localX, long localY) {
            return new Grid(2, null).set(groupsX, groupsY, localX, localY);
        }

        /** A {@code dims}-D grid that {@code byLiveRows} sizes for a number of live rows; sized now for {@code rows}. */
        public static Grid byLiveRows(int dims, int rows, ObjIntConsumer<Grid> byLiveRows) {
            Grid g = new Grid(dims, byLiveRows);
            byLiveRows.accept(g, rows);
            return g;
        }

        public Grid set(long groups, long local) {
            return set(groups, 1, local, 1);
        }

        public Grid set(long groupsX, long groupsY, long localX, long localY) {
            if (groupsX < 1 || groupsY < 1 || localX < 1 || localY < 1 || (dims == 1 && (groupsY != 1 || localY != 1))) {
                throw new IllegalArgumentException("a " + dims + "-D grid of " + groupsX + "×" + groupsY + " groups of "
                        + localX + "×" + localY + " threads");
            }
            global[0] = groupsX * localX;
            global[1] = groupsY * localY;
            local[0] = localX;
            local[1] = localY;
            return this;
        }

        void liveRows(int n) {
            if (byLiveRows != null) {
                byLiveRows.accept(this, n);
            }
        }

        public int dims() {
            return dims;
        }

        /** Global thread counts (x, y). */
        public long[] global() {
            return global.clone();
        }

        /** Local (work-group) thread counts (x, y). */
        public long[] local() {
            return local.clone();
        }
    }

    /** A named list of tasks and the data movement around them. */
    public static final class Graph {
        private final String name;
        private final Map<Object, Mode> copyIn = new LinkedHashMap<>();
        private final Map<Object, Mode> copyOut = new LinkedHashMap<>();
        private final Map<Object, String> consumed = new LinkedHashMap<>();
        private final List<Object> persisted = new ArrayList<>();
        private final List<Task> tasks = new ArrayList<>();

        Graph(String name) {
            this.name = name;
        }

        public String name() {
            return name;
        }

        /** Arrays copied host → device, in declaration order. */
        public Map<Object, Mode> copyIn() {
            return Collections.unmodifiableMap(copyIn);
        }

        /** Arrays copied device → host after the tasks. */
        public Map<Object, Mode> copyOut() {
            return Collections.unmodifiableMap(copyOut);
        }

        /** Arrays that stay on the device from an earlier graph: array → that graph's name. */
        public Map<Object, String> consumed() {
            return Collections.unmodifiableMap(consumed);
        }

        /** Arrays this graph leaves on the device for later graphs. */
        public List<Object> persisted() {
            return Collections.unmodifiableList(persisted);
        }

        public List<Task> tasks() {
            return Collections.unmodifiableList(tasks);
        }

        /** Sizes this graph's grids that follow the live rows for {@code n} live rows (before a chunk's execution). */
        public void liveRows(int n) {
            for (Task t : tasks) {
                if (t.grid() != null) {
                    t.grid().liveRows(n);
                }
            }
        }

        public Graph copyIn(Mode mode, Object... arrays) {
            for (Object a : arrays) {
                requireArray(a);
                if (copyIn.containsKey(a) || consumed.containsKey(a)) {
                    throw new IllegalStateException(name + ": an array is declared twice");
                }
                copyIn.put(a, mode);
            }
            return this;
        }

        public Graph copyOut(Mode mode, Object... arrays) {
            for (Object a : arrays) {
                requireArray(a);
                copyOut.put(a, mode);
            }
            return this;
        }

        /** The arrays come from graph {@code from}, which must {@link #persist} them. */
        public Graph consume(String from, Object... arrays) {
            for (Object a : arrays) {
                requireArray(a);
                if (copyIn.containsKey(a) || consumed.containsKey(a)) {
                    throw new IllegalStateException(name + ": an array is declared twice");
                }
                consumed.put(a, from);
            }
            return this;
        }

        public Graph persist(Object... arrays) {
            for (Object a : arrays) {
                requireArray(a);
                persisted.add(a);
            }
            return this;
        }

        private Graph add(String id, Object code, Object... args) {
            return add(id, null, null, code, args);
        }

        private Graph add(String id, Grid grid, Object oracle, Object code, Object... args) {
            for (int i = 0; i < args.length; i++) {
                for (int j = i + 1; j < args.length; j++) {
                    if (isArray(args[i]) && args[i] == args[j]) {
                        // TornadoVM 5.2's graph compiler loops forever on a task that names an array twice
                        throw new IllegalStateException(name + "." + id + ": arguments " + (i + 1) + " and " + (j + 1)
                                + " are the same array; a device task must not alias its arguments");
                    }
                }
            }
            for (Task t : tasks) {
                if (t.name().equals(id)) {
                    throw new IllegalStateException(name + ": two tasks named " + id);
                }
            }
            tasks.add(new Task(id, code, args, grid, oracle));
            return this;
        }

        public <A> Graph task(String id, Task1<A> k, A a) {
            return add(id, k, a);
        }

        public <A, B> Graph task(String id, Task2<A, B> k, A a, B b) {
            return add(id, k, a, b);
        }

        public <A, B, C> Graph task(String id, Task3<A, B, C> k, A a, B b, C c) {
            return add(id, k, a, b, c);
        }

        public <A, B, C, D> Graph task(String id, Task4<A, B, C, D> k, A a, B b, C c, D d) {
            return add(id, k, a, b, c, d);
        }

        public <A, B, C, D, E> Graph task(String id, Task5<A, B, C, D, E> k, A a, B b, C c, D d, E e) {
            return add(id, k, a, b, c, d, e);
        }

        public <A, B, C, D, E, F> Graph task(String id, Task6<A, B, C, D, E, F> k, A a, B b, C c, D d, E e, F f) {
            return add(id, k, a, b, c, d, e, f);
        }

        public <A, B, C, D, E, F, G> Graph task(String id, Task7<A, B, C, D, E, F, G> k, A a, B b, C c, D d, E e, F f,
                                                G g) {
            return add(id, k, a, b, c, d, e, f, g);
        }

        public <A, B, C, D, E, F, G, H> Graph task(String id, Task8<A, B, C, D, E, F, G, H> k, A a, B b, C c, D d, E e,
                                                   F f, G g, H h) {
            return add(id, k, a, b, c, d, e, f, g, h);
        }

        public <A, B, C, D, E, F, G, H, I> Graph task(String id, Task9<A, B, C, D, E, F, G, H, I> k, A a, B b, C c, D d,
                                                      E e, F f, G g, H h, I i) {
            return add(id, k, a, b, c, d, e, f, g, h, i);
        }

        public <A, B, C, D, E, F, G, H, I, J> Graph task(String id, Task10<A, B, C, D, E, F, G, H, I, J> k, A a, B b,
                                                         C c, D d, E e, F f, G g, H h, I i, J j) {
            return add(id, k, a, b, c, d, e, f, g, h, i, j);
        }

        public <A, B, C, D, E, F, G, H, I, J, K> Graph task(String id, Task11<A, B, C, D, E, F, G, H, I, J, K> k, A a,
                                                            B b, C c, D d, E e, F f, G g, H h, I i, J j, K l) {
            return add(id, k, a, b, c, d, e, f, g, h, i, j, l);
        }

        public <A, B, C, D, E, F, G, H, I, J, K, L> Graph task(String id, Task12<A, B, C, D, E, F, G, H, I, J, K, L> k,
                                                               A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K l,
                                                               L m) {
            return add(id, k, a, b, c, d, e, f, g, h, i, j, l, m);
        }

        public <A, B, C, D, E, F, G, H, I, J, K, L, M> Graph task(String id,
                                                                  Task13<A, B, C, D, E, F, G, H, I, J, K, L, M> k,
                                                                  A a, B b, C c, D d, E e, F f, G g, H h, I i, J j,
                                                                  K l, L m, M n) {
            return add(id, k, a, b, c, d, e, f, g, h, i, j, l, m, n);
        }

        public <A, B, C, D, E, F, G, H, I, J, K, L, M, N> Graph task(String id,
                                                                     Task14<A, B, C, D, E, F, G, H, I, J, K, L, M, N> k,
                                                                     A a, B b, C c, D d, E e, F f, G g, H h, I i, J j,
                                                                     K l, L m, M n, N o) {
            return add(id, k, a, b, c, d, e, f, g, h, i, j, l, m, n, o);
        }

        public <A, B, C, D, E, F, G, H, I, J, K, L, M, N, O> Graph task(
                String id, Task15<A, B, C, D, E, F, G, H, I, J, K, L, M, N, O> k, A a, B b, C c, D d, E e, F f, G g,
                H h, I i, J j, K l, L m, M n, N o, O p) {
            return add(id, k, a, b, c, d, e, f, g, h, i, j, l, m, n, o, p);
        }

        // ---- work-group kernels: the kernel (KernelContext first), its JVM oracle over the other arguments, the grid ----

        public <A, B, C> Graph kernel(String id, Grid grid, Task4<KernelContext, A, B, C> k, Task3<A, B, C> oracle,
                A a, B b, C c) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c);
        }

        public <A, B, C, D> Graph kernel(String id, Grid grid, Task5<KernelContext, A, B, C, D> k, Task4<A, B, C, D> oracle,
                A a, B b, C c, D d) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d);
        }

        public <A, B, C, D, E> Graph kernel(String id, Grid grid, Task6<KernelContext, A, B, C, D, E> k, Task5<A, B, C, D, E> oracle,
                A a, B b, C c, D d, E e) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e);
        }

        public <A, B, C, D, E, F> Graph kernel(String id, Grid grid, Task7<KernelContext, A, B, C, D, E, F> k, Task6<A, B, C, D, E, F> oracle,
                A a, B b, C c, D d, E e, F f) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f);
        }

        public <A, B, C, D, E, F, G> Graph kernel(String id, Grid grid, Task8<KernelContext, A, B, C, D, E, F, G> k, Task7<A, B, C, D, E, F, G> oracle,
                A a, B b, C c, D d, E e, F f, G g) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g);
        }

        public <A, B, C, D, E, F, G, H> Graph kernel(String id, Grid grid, Task9<KernelContext, A, B, C, D, E, F, G, H> k, Task8<A, B, C, D, E, F, G, H> oracle,
                A a, B b, C c, D d, E e, F f, G g, H h) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g, h);
        }

        public <A, B, C, D, E, F, G, H, I> Graph kernel(String id, Grid grid, Task10<KernelContext, A, B, C, D, E, F, G, H, I> k, Task9<A, B, C, D, E, F, G, H, I> oracle,
                A a, B b, C c, D d, E e, F f, G g, H h, I i) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g, h, i);
        }

        public <A, B, C, D, E, F, G, H, I, J> Graph kernel(String id, Grid grid, Task11<KernelContext, A, B, C, D, E, F, G, H, I, J> k, Task10<A, B, C, D, E, F, G, H, I, J> oracle,
                A a, B b, C c, D d, E e, F f, G g, H h, I i, J j) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g, h, i, j);
        }

        public <A, B, C, D, E, F, G, H, I, J, K> Graph kernel(String id, Grid grid, Task12<KernelContext, A, B, C, D, E, F, G, H, I, J, K> k, Task11<A, B, C, D, E, F, G, H, I, J, K> oracle,
                A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K l) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g, h, i, j, l);
        }

        public <A, B, C, D, E, F, G, H, I, J, K, L> Graph kernel(String id, Grid grid, Task13<KernelContext, A, B, C, D, E, F, G, H, I, J, K, L> k, Task12<A, B, C, D, E, F, G, H, I, J, K, L> oracle,
                A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K l, L m) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g, h, i, j, l, m);
        }

        public <A, B, C, D, E, F, G, H, I, J, K, L, M> Graph kernel(String id, Grid grid, Task14<KernelContext, A, B, C, D, E, F, G, H, I, J, K, L, M> k, Task13<A, B, C, D, E, F, G, H, I, J, K, L, M> oracle,
                A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K l, L m, M n) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g, h, i, j, l, m, n);
        }

        public <A, B, C, D, E, F, G, H, I, J, K, L, M, N> Graph kernel(String id, Grid grid, Task15<KernelContext, A, B, C, D, E, F, G, H, I, J, K, L, M, N> k, Task14<A, B, C, D, E, F, G, H, I, J, K, L, M, N> oracle,
                A a, B b, C c, D d, E e, F f, G g, H h, I i, J j, K l, L m, M n, N o) {
            return add(id, grid, oracle, k, CONTEXT, a, b, c, d, e, f, g, h, i, j, l, m, n, o);
        }
    }

    private final List<Graph> graphs = new ArrayList<>();

    /** Appends a new graph; its index is the order of creation. */
    public Graph graph(String name) {
        for (Graph g : graphs) {
            if (g.name.equals(name)) {
                throw new IllegalStateException("two graphs named " + name);
            }
        }
        Graph g = new Graph(name);
        graphs.add(g);
        return g;
    }

    public List<Graph> graphs() {
        return Collections.unmodifiableList(graphs);
    }

    /** The index of the graph called {@code name}. */
    public int index(String name) {
        for (int i = 0; i < graphs.size(); i++) {
            if (graphs.get(i).name.equals(name)) {
                return i;
            }
        }
        throw new IllegalArgumentException("no graph named " + name);
    }

    /**
     * Links the graphs into one chain, in creation order, the way TornadoVM 5.2 shares device buffers
     * (a graph binds consumed arrays only from the graph executed immediately before it): every array
     * that a task or a copy out of graph i uses, and that graph i does not copy in, is consumed by
     * graph i from graph i−1 — which persists it — and so on back to the graph that copies it in. A
     * plan linked this way must run its graphs in creation order (any prefix, restarting from any
     * graph that consumes nothing it has not already bound). Refuses an array that a graph copies in for
     * later graphs without using it (TornadoVM allocates no buffer for it). Returns the largest number of
     * arrays one graph holds (TornadoVM bounds the size of a graph).
     */
    public int linkChain() {
        int most = 0;
        for (int i = 0; i < graphs.size(); i++) {
            Graph g = graphs.get(i);
            java.util.Set<Object> used = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
            for (Task t : g.tasks) {
                for (Object a : t.args()) {
                    if (isArray(a)) {
                        used.add(a);
                    }
                }
            }
            used.addAll(g.copyOut.keySet());
            for (Object a : used) {
                if (g.copyIn.containsKey(a) || g.consumed.containsKey(a)) {
                    continue;
                }
                int owner = i - 1;
                while (owner >= 0 && !graphs.get(owner).copyIn.containsKey(a)) {
                    owner--;
                }
                if (owner < 0) {
                    throw new IllegalStateException(g.name + " uses an array that no earlier graph copies in");
                }
                for (int k = owner + 1; k <= i; k++) {
                    Graph from = graphs.get(k - 1), to = graphs.get(k);
                    if (!to.consumed.containsKey(a)) {
                        to.consumed.put(a, from.name);
                    }
                    if (from.persisted.stream().noneMatch(x -> x == a)) {
                        from.persisted.add(a);
                    }
                }
            }
        }
        for (Graph g : graphs) {
            most = Math.max(most, g.copyIn.size() + g.consumed.size());
            for (Object a : g.persisted) {
                if (g.copyIn.containsKey(a) && g.tasks.stream().noneMatch(t -> java.util.Arrays.stream(t.args()).anyMatch(x -> x == a))) {
                    // TornadoVM 5.2 allocates no device buffer for it: the consuming graph fails (a null buffer)
                    throw new IllegalStateException(g.name + " copies in an array for later graphs that none of its tasks uses; "
                            + "copy it in where it is first used (copyInAtFirstUse)");
                }
            }
        }
        return most;
    }

    /**
     * Declares {@code array} copied in (with {@code mode}) by the first graph, in creation order, whose tasks use
     * it: TornadoVM allocates no device buffer for an array that a graph copies in but none of its tasks uses, so
     * a graph consuming it later would find none.
     */
    public void copyInAtFirstUse(Mode mode, Object array) {
        for (Graph g : graphs) {
            for (Task t : g.tasks) {
                for (Object a : t.args()) {
                    if (a == array) {
                        g.copyIn(mode, array);
                        return;
                    }
                }
            }
        }
        throw new IllegalStateException("no task uses the array");
    }

    /** Bytes of the distinct arrays the graphs copy in: the device buffers the plan holds. */
    public long deviceBytes() {
        java.util.Set<Object> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        long n = 0;
        for (Graph g : graphs) {
            for (Object a : g.copyIn.keySet()) {
                if (seen.add(a)) {
                    n += bytes(a);
                }
            }
        }
        return n;
    }

    /** Bytes of a primitive array. */
    static long bytes(Object a) {
        long n = java.lang.reflect.Array.getLength(a);
        return switch (a) {
            case byte[] b -> n;
            case short[] s -> 2 * n;
            case long[] l -> 8 * n;
            case double[] d -> 8 * n;
            default -> 4 * n;
        };
    }

    static boolean isArray(Object o) {
        return o instanceof float[] || o instanceof int[] || o instanceof short[] || o instanceof byte[]
                || o instanceof long[] || o instanceof double[];
    }

    private static void requireArray(Object o) {
        if (!isArray(o)) {
            throw new IllegalArgumentException("only primitive arrays move between host and device, got "
                    + (o == null ? "null" : o.getClass().getSimpleName()));
        }
    }
}

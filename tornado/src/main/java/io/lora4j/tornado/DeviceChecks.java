package io.lora4j.tornado;

import io.lora4j.kernels.AdamW;
import io.lora4j.kernels.Attention;
import io.lora4j.kernels.CrossEntropy;
import io.lora4j.kernels.Dora;
import io.lora4j.kernels.Dropout;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.Sgd;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.VectorOps;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.Quantizer;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Grid;
import io.lora4j.tornado.DevicePlan.Mode;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiConsumer;
import java.util.function.Function;
import java.util.stream.Stream;

/**
 * The device kernel checks: every device kernel alone, as a one-task graph on a device and as plain
 * Java (the {@link JvmRunner}, which runs a work-group kernel's oracle), on odd sizes, every output
 * compared. The tornado tests run them ({@code DeviceKernelsTest}), and so does {@code lora4j devices
 * --check} (the GPU run kit's first check on a new machine).
 */
public final class DeviceChecks {
    static final int T = 3, C = 37, R = 29, NH = 4, NKV = 2, HS = 8, V = 45, N = 101;

    private DeviceChecks() {
    }

    /** Every check: the naive kernels, then the work-group kernels. */
    public static List<Check> all() {
        return Stream.concat(naive(), workGroups()).toList();
    }

    /**
     * Runs {@code c} on the JVM runner and on {@code device}: null when every float output agrees to
     * 2·10⁻⁵ (relative above 1), else the first difference.
     */
    public static String compare(Check c, Function<DevicePlan, PlanRunner> device) {
        List<Object> want = run(c, JvmRunner::new), got = run(c, device);
        for (int i = 0; i < want.size(); i++) {
            if (want.get(i) instanceof float[] w) {
                float[] g = (float[]) got.get(i);
                for (int j = 0; j < w.length; j++) {
                    float tol = 2e-5f * Math.max(1f, Math.abs(w[j]));
                    if (!(Math.abs(w[j] - g[j]) <= tol || (Float.isNaN(w[j]) && Float.isNaN(g[j])))) {
                        return c + ": array " + (i + 1) + "[" + j + "] JVM " + w[j] + ", device " + g[j];
                    }
                }
            }
        }
        return null;
    }

    /** {@link #compare} on TornadoVM device {@code device} (null: TornadoVM's default device). */
    public static String compareOnTornado(Check c, Integer device) {
        var dev = Tornado.device(device);
        return compare(c, p -> new TornadoRunner(p, dev));
    }

    /** A check: builds one kernel's task into a graph (its arrays are declared by {@link #run}). */
    public record Check(String name, BiConsumer<Graph, Inputs> task) {
        @Override
        public String toString() {
            return name;
        }
    }

    /** Random inputs, fresh for each runner (the same seed gives the same values). */
    static final class Inputs {
        final SplittableRandom r = new SplittableRandom(11);
        final List<Object> all = new ArrayList<>();

        float[] f(int n) {
            float[] a = new float[n];
            for (int i = 0; i < n; i++) {
                a[i] = (float) (r.nextDouble() * 2 - 1);
            }
            all.add(a);
            return a;
        }

        float[] pos(int n) {
            float[] a = f(n);
            for (int i = 0; i < n; i++) {
                a[i] = Math.abs(a[i]) + 0.1f;
            }
            return a;
        }

        short[] halves(int n) {
            short[] a = new short[n];
            for (int i = 0; i < n; i++) {
                a[i] = Float.floatToFloat16((float) (r.nextDouble() * 2 - 1));
            }
            all.add(a);
            return a;
        }

        byte[] bytes(int n) {
            byte[] a = new byte[n];
            r.nextBytes(a);
            all.add(a);
            return a;
        }

        int[] ints(int... v) {
            all.add(v);
            return v;
        }

        long[] longs(long... v) {
            all.add(v);
            return v;
        }
    }

    /** The naive kernels (one work-item per output element, as {@code kernels/} writes them). */
    static Stream<Check> naive() {
        int Q = NH * HS, KV = NKV * HS;
        return Stream.of(
                new Check("matmul f32", (g, in) -> g.task("k", Matmul::forwardNaive, in.f(T * R), in.f(T * C), in.f(5 + R * C), 5, in.ints(T), T, R, C)),
                new Check("matmul f16", (g, in) -> g.task("k", Matmul::forwardNaive, in.f(T * R), in.f(T * 64), in.halves(7 + R * 64), 7, in.ints(T), T, R, 64)),
                new Check("matmul q8_0", (g, in) -> g.task("k", Matmul::forwardNaive, in.f(T * R), in.f(T * 64), in.bytes(32 + R * 64),
                        in.f(1 + R * 2), 32, in.ints(T), T, R, 64)),
                new Check("matmul input gradient f32", (g, in) -> g.task("k", Matmul::backwardNaive, in.f(T * C), in.f(T * R), in.f(R * C), 0,
                        T, R, C, 1)),
                new Check("matmul input gradient f16", (g, in) -> g.task("k", Matmul::backwardNaive, in.f(T * 64), in.f(T * R),
                        in.halves(R * 64), 0, T, R, 64, 0)),
                new Check("matmul input gradient q8_0", (g, in) -> g.task("k", Matmul::backwardNaive, in.f(T * 64), in.f(T * R),
                        in.bytes(R * 64), in.f(R * 2), 0, T, R, 64, 1)),
                new Check("matmul weight gradient", (g, in) -> g.task("k", Matmul::backwardWeightNaive, in.f(3 + R * C), 3, in.f(T * R),
                        in.f(T * C), T, R, C)),
                new Check("rmsnorm", (g, in) -> g.task("k", RmsNorm::forwardNaive, in.f(T * C), in.f(T), in.f(T * C), in.f(C), T, C, 1e-5f)),
                new Check("rmsnorm backward", (g, in) -> g.task("k", RmsNorm::backwardNaive, in.f(T * C), in.f(T * C), in.f(T * C), in.f(C),
                        in.pos(T), T, C)),
                new Check("rmsnorm weight gradient", (g, in) -> g.task("k", RmsNorm::backwardWeightNaive, in.f(C), in.f(T * C), in.f(T * C),
                        in.pos(T), T, C)),
                new Check("rope adjacent", (g, in) -> g.task("k", Rope::forwardNaive, in.f(T * Q), in.pos(HS / 2), in.ints(4, 9, 17), T, NH, HS, 0)),
                new Check("rope halves backward", (g, in) -> g.task("k", Rope::backwardNaive, in.f(T * Q), in.pos(HS / 2), in.ints(0, 1, 2), T, NH,
                        HS, 1)),
                new Check("attention", (g, in) -> g.task("k", Attention::forwardNaive, in.f(T * Q), in.f(T * NH * 8), in.f(T * Q), in.f(8 * KV),
                        in.f(8 * KV), in.ints(2, 5, 7), T, NH, NKV, HS, 8)),
                new Check("attention with a padding row", (g, in) -> g.task("k", Attention::forwardNaive, in.f(T * Q), in.f(T * NH * 8),
                        in.f(T * Q), in.f(8 * KV), in.f(8 * KV), in.ints(3, 4, -1), T, NH, NKV, HS, 8)),
                new Check("lora branch, flat parameters", (g, in) -> g.task("k", Lora::forwardNaive, in.f(T * R), in.f(T * 4), in.f(T * C),
                        in.f(9 + 4 * C + 4 + R * 4), 9, 9 + 4 * C, 9 + 4 * C + 4, in.ints(T), 0.5f, T, C, R, 4)),
                new Check("dora magnitude, two live rows", (g, in) -> g.task("k", Dora::forwardNaive, in.f(T * R), in.f(5 + R), 5, in.pos(R),
                        in.ints(2), T, R)),
                new Check("bias rows", (g, in) -> g.task("k", VectorOps::addRowsNaive, in.f(T * 7), in.f(11), 4, 0.25f, T, 7)),
                new Check("last live row", (g, in) -> g.task("k", VectorOps::lastRowNaive, in.f(C), in.f(T * C), in.ints(2), C)),
                // every cache row is written: TornadoVM does not copy in an array its task only writes
                new Check("kv store", (g, in) -> g.task("k", Attention::storeNaive, in.f(T * KV), in.f(T * KV), in.ints(2, 0, 1), T, KV)),
                new Check("attention backward queries", (g, in) -> g.task("k", Attention::backwardQueryNaive, in.f(T * Q), in.f(T * NH * T),
                        in.f(T * Q), in.pos(T * NH * T), in.f(T * KV), in.f(T * KV), T, NH, NKV, HS)),
                new Check("attention backward keys and values", (g, in) -> g.task("k", Attention::backwardKeyValueNaive, in.f(T * KV),
                        in.f(T * KV), in.f(T * NH * T), in.f(T * Q), in.pos(T * NH * T), in.f(T * Q), T, NH, NKV, HS)),
                new Check("swiglu", (g, in) -> g.task("k", SwiGlu::forwardNaive, in.f(N), in.f(N), in.f(N), N)),
                new Check("swiglu backward", (g, in) -> g.task("k", SwiGlu::backwardNaive, in.f(N), in.f(N), in.f(N), in.f(N), in.f(N), N)),
                new Check("cross-entropy", (g, in) -> g.task("k", CrossEntropy::forwardNaive, in.f(T), in.f(T * V), in.f(T * V),
                        in.ints(3, -1, 44), T, V)),
                new Check("cross-entropy backward", (g, in) -> g.task("k", CrossEntropy::backwardNaive, in.f(T * V), in.pos(T * V),
                        in.ints(3, -1, 44), in.f(T), T, V)),
                new Check("adamw", (g, in) -> {
                    float[] h = in.f(AdamW.HYPER);
                    AdamW.hyper(h, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 0.5f);
                    g.task("k", AdamW::updateNaive, in.f(N), in.f(N), in.f(N), in.pos(N), h, N);
                }),
                new Check("sgd", (g, in) -> {
                    float[] h = in.f(Sgd.HYPER);
                    Sgd.hyper(h, 0.1f, 0.9f, 0.01f, 0.5f);
                    g.task("k", Sgd::updateNaive, in.f(N), in.f(N), in.f(N), h, N);
                }),
                new Check("dropout", (g, in) -> g.task("k", Dropout::forwardNaive, in.f(N), in.f(N), in.longs(-123456789L), in.pos(1), N)),
                new Check("dropout backward", (g, in) -> g.task("k", Dropout::backwardNaive, in.f(N), in.f(N), in.longs(987654321L),
                        new float[]{0.3f}, N)),
                new Check("axpy", (g, in) -> g.task("k", VectorOps::axpyNaive, in.f(N), in.f(N), 0.7f, N)),
                new Check("scale", (g, in) -> g.task("k", VectorOps::scaleNaive, in.f(N), in.f(N), -1.5f, N)),
                new Check("multiply rows", (g, in) -> g.task("k", VectorOps::mulRowsNaive, in.f(T * 7), in.f(T * 7), in.f(10), 3, T * 7, 7)),
                new Check("multiply", (g, in) -> g.task("k", VectorOps::mulNaive, in.f(N), in.f(N), N)),
                new Check("gather rows", (g, in) -> g.task("k", VectorOps::gatherRowsNaive, in.f(T * 7), in.f(5 + 6 * 7), 5, in.ints(4, -1, 0),
                        T, 7)),
                new Check("scatter-add rows, an index twice", (g, in) -> g.task("k", VectorOps::scatterAddRowsNaive, in.f(5 + 6 * 7), 5,
                        in.f(4 * 7), in.ints(4, -1, 0, 4), 4, 7)),
                new Check("singular values gradient", (g, in) -> g.task("k", Lora::backwardSingularValuesNaive, in.f(9 + 4), 9, in.f(T * 4),
                        in.f(T * 4), T, 4)),
                new Check("fill", (g, in) -> g.task("k", VectorOps::fillNaive, in.f(N), 0f, N)),
                new Check("sum of squares", (g, in) -> g.task("k", VectorOps::sumSquaresNaive, in.f(4), in.f(N), N, 32)));
    }

    /** The work-group kernels (GPU-shaped) against their oracles, in every mode their grids take. */
    static Stream<Check> workGroups() {
        int Q = NH * HS, KV = NKV * HS;
        return Stream.of(
                // the products through DeviceMatrix (a matrix packed after another: non-zero offsets), in both shapes of
                // their grid; one live row of one (rows beyond n keep what the device buffer held: TornadoVM does not
                // copy in an array a task only writes)
                new Check("gemm f32", (g, in) -> product(g, in, GgmlType.F32, C, T, T)),
                new Check("gemv f32", (g, in) -> product(g, in, GgmlType.F32, C, 1, 1)),
                new Check("gemm f16, two token tiles", (g, in) -> product(g, in, GgmlType.F16, C, 20, 19)),
                new Check("gemv f16", (g, in) -> product(g, in, GgmlType.F16, C, 1, 1)),
                new Check("gemm q8_0", (g, in) -> product(g, in, GgmlType.Q8_0, 96, T, T)),
                new Check("gemv q8_0", (g, in) -> product(g, in, GgmlType.Q8_0, 96, 1, 1)),
                new Check("gemm nf4, double-quantized", (g, in) -> product(g, in, GgmlType.NF4_DQ, 77, T, T)),
                new Check("gemv fp4", (g, in) -> product(g, in, GgmlType.FP4, 77, 1, 1)),
                new Check("gemv int8", (g, in) -> product(g, in, GgmlType.INT8, 77, 1, 1)),
                new Check("gemm int8 with zero points", (g, in) -> product(g, in, GgmlType.INT8_ZP, 77, T, T)),
                new Check("tiled input gradient f32, accumulating", (g, in) -> gradient(g, in, GgmlType.F32, C, T, true)),
                new Check("tiled input gradient f16", (g, in) -> gradient(g, in, GgmlType.F16, C, 20, false)),
                new Check("tiled input gradient q8_0, accumulating", (g, in) -> gradient(g, in, GgmlType.Q8_0, 64, T, true)),
                new Check("tiled input gradient nf4", (g, in) -> gradient(g, in, GgmlType.NF4, 77, T, true)),
                new Check("tiled input gradient fp4, double-quantized", (g, in) -> gradient(g, in, GgmlType.FP4_DQ, 77, T, true)),
                new Check("tiled input gradient int8", (g, in) -> gradient(g, in, GgmlType.INT8, 77, T, false)),
                new Check("fused rmsnorm", (g, in) -> g.kernel("k", Grid.of(T, GpuRmsNorm.THREADS), GpuRmsNorm::forward, GpuRmsNorm::forward,
                        in.f(T * C), in.f(T), in.f(T * C), in.f(C), T, C, 1e-5f)),
                new Check("fused rmsnorm, rows wider than the work-group", (g, in) -> g.kernel("k", Grid.of(2, GpuRmsNorm.THREADS),
                        GpuRmsNorm::forward, GpuRmsNorm::forward, in.f(2 * 300), in.f(2), in.f(2 * 300), in.f(300), 2, 300, 1e-5f)),
                new Check("work-group attention with a padding row", (g, in) -> g.kernel("k", Grid.of(T * NH, GpuAttention.THREADS),
                        GpuAttention::forward, GpuAttention::forward, in.f(T * Q), in.f(T * NH * 8), in.f(T * Q), in.f(8 * KV), in.f(8 * KV),
                        in.ints(3, 4, -1), T, NH, NKV, HS, 8)),
                new Check("work-group attention over more positions than threads", (g, in) -> g.kernel("k",
                        Grid.of(2 * NH, GpuAttention.THREADS), GpuAttention::forward, GpuAttention::forward, in.f(2 * Q),
                        in.f(2 * NH * 150), in.f(2 * Q), in.f(150 * KV), in.f(150 * KV), in.ints(70, 149), 2, NH, NKV, HS, 150)));
    }

    /** {@code out (T, R) = x · Wᵀ} over {@code live} rows, W (R × cols) of {@code type} packed after a 5 × cols matrix. */
    private static void product(Graph g, Inputs in, GgmlType type, int cols, int T, int live) {
        DeviceMatrix[] d = DeviceMatrix.pack(weight(type, 5, cols, 1), weight(type, R, cols, 2));
        d[1].matmul(g, "k", in.f(T * R), in.f(T * cols), in.ints(live), T);
    }

    /** {@code dx (T, cols) (+)= dy · W}, W (R × cols) of {@code type} packed after a 3 × cols matrix. */
    private static void gradient(Graph g, Inputs in, GgmlType type, int cols, int T, boolean accumulate) {
        DeviceMatrix[] d = DeviceMatrix.pack(weight(type, 3, cols, 3), weight(type, R, cols, 4));
        d[1].backward(g, "k", in.f(T * cols), in.f(T * R), T, accumulate);
    }

    /** A random matrix as a weight of {@code type}: F32, F16, Q8_0 (ggml's reference quantizer) or a k-bit type. */
    private static Weight weight(GgmlType type, int rows, int cols, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] w = new float[rows * cols];
        for (int i = 0; i < w.length; i++) {
            w[i] = (float) r.nextGaussian() * 0.05f;
        }
        if (!type.ggml) {
            return Kbit.quantize(type, "w" + seed, w, rows, cols);
        }
        MemorySegment data = Arena.ofAuto().allocate(type.byteSize((long) rows * cols));
        Quantizer.quantizeRow(type, data, 0, w, 0, rows * cols);
        return new Weight("w" + seed, type, data, rows, cols);
    }

    /** Runs the case's task once and returns every array as it came back. */
    private static List<Object> run(Check c, java.util.function.Function<DevicePlan, PlanRunner> runner) {
        DevicePlan p = new DevicePlan();
        Inputs in = new Inputs();
        Graph g = p.graph("g");
        c.task().accept(g, in);
        for (Object a : g.tasks().getFirst().args()) {
            if (DevicePlan.isArray(a) && !g.copyIn().containsKey(a)) {
                g.copyIn(Mode.FIRST_EXECUTION, a);
            }
        }
        for (Object a : g.copyIn().keySet()) {
            g.copyOut(Mode.EVERY_EXECUTION, a);
        }
        try (PlanRunner r = runner.apply(p)) {
            r.execute(0);
        }
        return List.copyOf(g.copyIn().keySet());
    }
}

package io.lora4j.tornado;

import io.lora4j.kernels.AdamW;
import io.lora4j.kernels.Attention;
import io.lora4j.kernels.CrossEntropy;
import io.lora4j.kernels.Dora;
import io.lora4j.kernels.Dropout;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.Sgd;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.VectorOps;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.BiConsumer;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * Every device kernel alone, as a one-task graph on the TornadoVM device and as plain Java (the JVM
 * runner), on odd sizes: all outputs compared. Runs only where a TornadoVM runtime is present.
 */
@Tag("tornado")
class DeviceKernelsTest {
    static final int T = 3, C = 37, R = 29, NH = 4, NKV = 2, HS = 8, V = 45, N = 101;

    @BeforeEach
    void needsTornado() {
        String why = Tornado.unavailable();
        assumeTrue(why == null, () -> "TornadoVM runtime not present: " + why);
    }

    /** A kernel case: builds its one task into a graph whose arrays it declares. */
    record Case(String name, BiConsumer<Graph, Inputs> task) {
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

    static Stream<Case> cases() {
        int Q = NH * HS, KV = NKV * HS;
        return Stream.of(
                new Case("matmul f32", (g, in) -> g.task("k", Matmul::forwardNaive, in.f(T * R), in.f(T * C), in.f(5 + R * C), 5, in.ints(T), T, R, C)),
                new Case("matmul f16", (g, in) -> g.task("k", Matmul::forwardNaive, in.f(T * R), in.f(T * 64), in.halves(7 + R * 64), 7, in.ints(T), T, R, 64)),
                new Case("matmul q8_0", (g, in) -> g.task("k", Matmul::forwardNaive, in.f(T * R), in.f(T * 64), in.bytes(32 + R * 64),
                        in.f(1 + R * 2), 32, in.ints(T), T, R, 64)),
                new Case("matmul input gradient f32", (g, in) -> g.task("k", Matmul::backwardNaive, in.f(T * C), in.f(T * R), in.f(R * C), 0,
                        T, R, C, 1)),
                new Case("matmul input gradient f16", (g, in) -> g.task("k", Matmul::backwardNaive, in.f(T * 64), in.f(T * R),
                        in.halves(R * 64), 0, T, R, 64, 0)),
                new Case("matmul input gradient q8_0", (g, in) -> g.task("k", Matmul::backwardNaive, in.f(T * 64), in.f(T * R),
                        in.bytes(R * 64), in.f(R * 2), 0, T, R, 64, 1)),
                new Case("matmul weight gradient", (g, in) -> g.task("k", Matmul::backwardWeightNaive, in.f(3 + R * C), 3, in.f(T * R),
                        in.f(T * C), T, R, C)),
                new Case("rmsnorm", (g, in) -> g.task("k", RmsNorm::forwardNaive, in.f(T * C), in.f(T), in.f(T * C), in.f(C), T, C, 1e-5f)),
                new Case("rmsnorm backward", (g, in) -> g.task("k", RmsNorm::backwardNaive, in.f(T * C), in.f(T * C), in.f(T * C), in.f(C),
                        in.pos(T), T, C)),
                new Case("rmsnorm weight gradient", (g, in) -> g.task("k", RmsNorm::backwardWeightNaive, in.f(C), in.f(T * C), in.f(T * C),
                        in.pos(T), T, C)),
                new Case("rope adjacent", (g, in) -> g.task("k", Rope::forwardNaive, in.f(T * Q), in.pos(HS / 2), in.ints(4, 9, 17), T, NH, HS, 0)),
                new Case("rope halves backward", (g, in) -> g.task("k", Rope::backwardNaive, in.f(T * Q), in.pos(HS / 2), in.ints(0, 1, 2), T, NH,
                        HS, 1)),
                new Case("attention", (g, in) -> g.task("k", Attention::forwardNaive, in.f(T * Q), in.f(T * NH * 8), in.f(T * Q), in.f(8 * KV),
                        in.f(8 * KV), in.ints(2, 5, 7), T, NH, NKV, HS, 8)),
                new Case("attention with a padding row", (g, in) -> g.task("k", Attention::forwardNaive, in.f(T * Q), in.f(T * NH * 8),
                        in.f(T * Q), in.f(8 * KV), in.f(8 * KV), in.ints(3, 4, -1), T, NH, NKV, HS, 8)),
                new Case("lora branch, flat parameters", (g, in) -> g.task("k", Lora::forwardNaive, in.f(T * R), in.f(T * 4), in.f(T * C),
                        in.f(9 + 4 * C + 4 + R * 4), 9, 9 + 4 * C, 9 + 4 * C + 4, in.ints(T), 0.5f, T, C, R, 4)),
                new Case("dora magnitude, two live rows", (g, in) -> g.task("k", Dora::forwardNaive, in.f(T * R), in.f(5 + R), 5, in.pos(R),
                        in.ints(2), T, R)),
                new Case("bias rows", (g, in) -> g.task("k", VectorOps::addRowsNaive, in.f(T * 7), in.f(11), 4, 0.25f, T, 7)),
                new Case("last live row", (g, in) -> g.task("k", VectorOps::lastRowNaive, in.f(C), in.f(T * C), in.ints(2), C)),
                // every cache row is written: TornadoVM does not copy in an array its task only writes
                new Case("kv store", (g, in) -> g.task("k", Attention::storeNaive, in.f(T * KV), in.f(T * KV), in.ints(2, 0, 1), T, KV)),
                new Case("attention backward queries", (g, in) -> g.task("k", Attention::backwardQueryNaive, in.f(T * Q), in.f(T * NH * T),
                        in.f(T * Q), in.pos(T * NH * T), in.f(T * KV), in.f(T * KV), T, NH, NKV, HS)),
                new Case("attention backward keys and values", (g, in) -> g.task("k", Attention::backwardKeyValueNaive, in.f(T * KV),
                        in.f(T * KV), in.f(T * NH * T), in.f(T * Q), in.pos(T * NH * T), in.f(T * Q), T, NH, NKV, HS)),
                new Case("swiglu", (g, in) -> g.task("k", SwiGlu::forwardNaive, in.f(N), in.f(N), in.f(N), N)),
                new Case("swiglu backward", (g, in) -> g.task("k", SwiGlu::backwardNaive, in.f(N), in.f(N), in.f(N), in.f(N), in.f(N), N)),
                new Case("cross-entropy", (g, in) -> g.task("k", CrossEntropy::forwardNaive, in.f(T), in.f(T * V), in.f(T * V),
                        in.ints(3, -1, 44), T, V)),
                new Case("cross-entropy backward", (g, in) -> g.task("k", CrossEntropy::backwardNaive, in.f(T * V), in.pos(T * V),
                        in.ints(3, -1, 44), in.f(T), T, V)),
                new Case("adamw", (g, in) -> {
                    float[] h = in.f(AdamW.HYPER);
                    AdamW.hyper(h, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, 3, 0.5f);
                    g.task("k", AdamW::updateNaive, in.f(N), in.f(N), in.f(N), in.pos(N), h, N);
                }),
                new Case("sgd", (g, in) -> {
                    float[] h = in.f(Sgd.HYPER);
                    Sgd.hyper(h, 0.1f, 0.9f, 0.01f, 0.5f);
                    g.task("k", Sgd::updateNaive, in.f(N), in.f(N), in.f(N), h, N);
                }),
                new Case("dropout", (g, in) -> g.task("k", Dropout::forwardNaive, in.f(N), in.f(N), in.longs(-123456789L), in.pos(1), N)),
                new Case("dropout backward", (g, in) -> g.task("k", Dropout::backwardNaive, in.f(N), in.f(N), in.longs(987654321L),
                        new float[]{0.3f}, N)),
                new Case("axpy", (g, in) -> g.task("k", VectorOps::axpyNaive, in.f(N), in.f(N), 0.7f, N)),
                new Case("scale", (g, in) -> g.task("k", VectorOps::scaleNaive, in.f(N), in.f(N), -1.5f, N)),
                new Case("multiply rows", (g, in) -> g.task("k", VectorOps::mulRowsNaive, in.f(T * 7), in.f(T * 7), in.f(7), T * 7, 7)),
                new Case("fill", (g, in) -> g.task("k", VectorOps::fillNaive, in.f(N), 0f, N)),
                new Case("sum of squares", (g, in) -> g.task("k", VectorOps::sumSquaresNaive, in.f(4), in.f(N), N, 32)));
    }

    @ParameterizedTest
    @MethodSource("cases")
    void theDeviceComputesWhatTheJvmComputes(Case c) {
        List<Object> want = run(c, JvmRunner::new), got = run(c, p -> new TornadoRunner(p, null));
        assertEquals(want.size(), got.size());
        for (int i = 0; i < want.size(); i++) {
            if (want.get(i) instanceof float[] w) {
                float[] g = (float[]) got.get(i);
                for (int j = 0; j < w.length; j++) {
                    float tol = 2e-5f * Math.max(1f, Math.abs(w[j]));
                    int k = j;
                    assertTrue(Math.abs(w[j] - g[j]) <= tol || (Float.isNaN(w[j]) && Float.isNaN(g[j])),
                            () -> c + ": array " + (want.indexOf(w) + 1) + "[" + k + "] JVM " + w[k] + ", device " + g[k]);
                }
            }
        }
    }

    /** Runs the case's task once and returns every array as it came back. */
    private static List<Object> run(Case c, java.util.function.Function<DevicePlan, PlanRunner> runner) {
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

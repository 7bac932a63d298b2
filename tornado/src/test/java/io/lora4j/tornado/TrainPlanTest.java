package io.lora4j.tornado;

import io.lora4j.kernels.AdamW;
import io.lora4j.kernels.Sgd;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Llama;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.RandomModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.ParamStore;
import io.lora4j.model.train.TrainGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The device training plan, run by the JVM runner, against {@link TrainGraph} and the JVM AdamW: the
 * same losses, the same gradients and the same adapter after several optimizer steps, with sequences
 * shorter than the plan (padding), dropout, a lora_B bias and every projection adapted.
 */
class TrainPlanTest {

    static LoraAdapter adapter(Llama m, float dropout, String bias) {
        return adapter(m, dropout, bias, "lora");
    }

    /**
     * LoRA on every projection ({@code kind} "lora"), with trainable lm_head and embed_tokens copies
     * ("modules": modules_to_save), or AdaLoRA with non-zero singular values ("adalora"), with those copies
     * too ("adalora+modules").
     */
    static LoraAdapter adapter(Llama m, float dropout, String bias, String kind) {
        boolean ada = kind.startsWith("adalora");
        LoraConfig c = new LoraConfig(4, 8f, dropout, List.of("all-linear"), null, bias, false, "false", List.of(),
                Map.of(), Map.of(), kind.endsWith("modules") ? List.of("lm_head", "embed_tokens") : List.of());
        if (!ada) {
            return new LoraAdapter("default", c, m, 5);
        }
        LoraAdapter a = new LoraAdapter("default", io.lora4j.model.lora.AdaLoraConfig.of(c, 4, 2, 0, 0, 1, 0.85f, 0.85f, 0.5f, 10), m, 5);
        for (LoraLayer l : a.layers()) {
            for (int j = 0; j < l.r; j++) {
                l.e.set(j, 1f - 0.1f * j); // distinct singular values of a well-conditioned size
            }
        }
        return a;
    }

    @ParameterizedTest
    @CsvSource({"F32,0.0,none,adamw,lora", "F16,0.1,lora_only,adamw,lora", "Q8_0,0.2,none,adamw,lora", "F32,0.1,lora_only,sgd,lora",
            "F16,0.0,none,sgd,lora", "F16,0.1,none,sgd,adalora", "F32,0.0,none,sgd,modules", "NF4_DQ,0.0,none,adamw,lora", "INT8,0.0,none,sgd,lora"})
    void lossesGradientsAndStepsMatchTheJvmTrainer(String type, float dropout, String bias, String optimizer, String kind,
                                                   @TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        GgmlType t = GgmlType.valueOf(type);
        boolean kbit = !t.ggml; // a base quantized on load (QLoRA): the device keeps its k-bit layout
        RandomModel.write(f, InferencePlanTest.SMALL, kbit ? GgmlType.F32 : t, 11, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = kbit ? new Llama(src, io.lora4j.model.Quantization.parse(type.toLowerCase().replace("_dq", ""), type.endsWith("_DQ")))
                    : new Llama(src);
            LoraAdapter host = adapter(m, dropout, bias, kind), dev = adapter(m, dropout, bias, kind);
            int maxT = 12;
            TrainGraph tg = new TrainGraph(m, host, maxT, false);
            int V = m.config().vocabSize();
            int[][] seqs = {sequence(12, V, 1), sequence(7, V, 2)};
            boolean adam = optimizer.equals("adamw");
            try (TrainPlan tp = new TrainPlan(m, dev, maxT, optimizer, JvmRunner::new)) {
                for (int[] s : seqs) {
                    int[] tgt = targets(s, V);
                    assertClose("eval loss", tg.loss(s, tgt, s.length), tp.loss(s, tgt, s.length), 1e-5);
                }
                // the host side: TrainGraph's gradients in the host adapter's store, the JVM optimizer over it
                ParamStore hs = host.store(), ds = dev.store();
                float[] m1 = new float[hs.size()], m2 = new float[hs.size()];
                for (int step = 1; step <= 3; step++) {
                    java.util.Arrays.fill(hs.grads, 0f);
                    float scale = 1f / 17;
                    for (int i = 0; i < seqs.length; i++) {
                        int[] s = seqs[i];
                        int[] tgt = targets(s, V);
                        long seed = 1000L * step + i;
                        assertClose("training loss step " + step, tg.forwardBackward(s, tgt, s.length, scale, seed),
                                tp.forwardBackward(s, tgt, s.length, scale, seed), 1e-5);
                    }
                    // Adam turns tiny rounding differences of near-zero gradients into parameter differences of
                    // up to ~lr, which later gradients inherit: tight only before the first Adam step (the JVM
                    // executor's blocked input gradient sums in another order than the device kernel, and after
                    // two Adam steps the F16 case's norms differed by 2e-4)
                    double tol = adam && step > 1 ? 2e-3 : 1e-4;
                    double norm = sumSq(hs.grads);
                    assertClose("squared gradient norm step " + step, norm, tp.gradNormSquared(), tol);
                    tp.gradientsToHost();
                    if (kind.startsWith("adalora")) {
                        // dE_j = Σ_t (s·dy·B)[t][j]·(A x)[t][j] cancels across tokens, and some branches' gradients nearly
                        // vanish after a step: the gradients compared as one vector, to 1e-3 of its largest element
                        assertArraysClose("gradients step " + step, hs.grads, ds.grads, 1e-3);
                    } else {
                        for (ParamStore.View v : hs.views()) {
                            assertArraysClose(v.name() + " gradient step " + step, grads(hs, v), grads(ds, v), tol);
                        }
                    }
                    float clip = (float) Math.min(1.0, 0.5 / Math.sqrt(norm)); // exercise the scaled-gradient path
                    for (int i = 0; i < hs.grads.length; i++) {
                        hs.grads[i] *= clip;
                    }
                    if (adam) {
                        AdamW.update(hs.values, hs.grads, m1, m2, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, step, hs.size());
                    } else {
                        Sgd.update(hs.values, hs.grads, m1, 1e-2f, 0.9f, 0.01f, hs.size());
                    }
                    tp.update(1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, step, clip);
                }
                tp.syncToHost();
                for (ParamStore.View v : hs.views()) {
                    // a bias starts at zero, so after 3 steps its small values carry the gradients' rounding differences
                    double tol = adam || v.name().endsWith(".bias") ? 5e-3 : 1e-4;
                    assertArraysClose(v.name() + " after 3 steps", v.toArray(), ds.view(v.name()).toArray(), tol);
                }
            }
        }
    }

    /**
     * QLoRA on the device keeps the base's block projections in NF4 with double quantization (½ byte per weight,
     * an 8-bit code per 64-weight block, the second-level scales): the plan's device memory, which the profile
     * reports, is the F32 plan's less exactly the difference between 4 bytes per weight and those.
     */
    @Test
    void aQloraPlanKeepsItsNf4BaseResidentInFourBits(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, InferencePlanTest.SMALL, GgmlType.F32, 11, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama full = new Llama(src), nf4 = new Llama(src, io.lora4j.model.Quantization.parse("nf4", true));
            long f32Bytes = 0, nf4Bytes = 0;
            for (int l = 0; l < full.config().nLayers(); l++) {
                for (var mod : io.lora4j.model.arch.LinearModule.values()) {
                    var w = mod.weight(nf4.layer(l));
                    assertEquals(GgmlType.NF4_DQ, w.type());
                    f32Bytes += 4L * w.rows() * w.cols();
                    nf4Bytes += io.lora4j.kernels.Kbit.deviceBytes(w.type(), w.rows(), w.cols())
                            + 4 * io.lora4j.kernels.Kbit.deviceFloats(w.type(), w.rows(), w.cols());
                }
                nf4Bytes += 4L * io.lora4j.kernels.Kbit.deviceTables().length; // each block's graph holds the code tables
                // and the one-element placeholders of the layouts it does not use: fp16 bits (F32 also bytes and tables)
                f32Bytes += 2 + 1 + 4;
                nf4Bytes += 2;
            }
            DeviceProfile p = new DeviceProfile(), q = new DeviceProfile();
            try (TrainPlan a = new TrainPlan(full, adapter(full, 0f, "none"), 12, "adamw", JvmRunner::new);
                 TrainPlan b = new TrainPlan(nf4, adapter(nf4, 0f, "none"), 12, "adamw", JvmRunner::new)) {
                a.profile(p);
                b.profile(q);
                assertEquals(a.deviceBytes() - f32Bytes + nf4Bytes, b.deviceBytes());
                assertEquals(b.deviceBytes(), q.deviceMemory());
                assertTrue(q.report("train", 1, 5).contains(String.format(java.util.Locale.ROOT, "%.2f MiB", b.deviceBytes() / 1048576.0)));
            }
        }
    }

    @org.junit.jupiter.api.Test
    void doraTrainingIsRefusedWithWhereToTrainIt(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, InferencePlanTest.SMALL, GgmlType.F32, 11, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = new Llama(src);
            LoraAdapter d = InferencePlanTest.dora(m, "default", 1);
            var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> new TrainPlan(m, d, 8, "adamw", JvmRunner::new));
            assertTrue(e.getMessage().contains("DoRA") && e.getMessage().contains("--backend jvm"), e.getMessage());
        }
    }

    /** A bottleneck adapter has no device kernels: training and inference plans refuse it, naming it and where to run it. */
    @org.junit.jupiter.api.Test
    void bottleneckAdaptersAreRefusedOnTheDevice(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, InferencePlanTest.SMALL, GgmlType.F32, 11, null);
        try (GgufFile src = GgufFile.open(f); TornadoBackend b = InferencePlanTest.emulated()) {
            Llama m = new Llama(src);
            LoraAdapter bn = new LoraAdapter("bn", io.lora4j.model.lora.BottleneckConfig.houlsby(16), m, 1);
            var e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> new TrainPlan(m, bn, 8, "adamw", JvmRunner::new));
            assertTrue(e.getMessage().contains("adapter bn is a bottleneck adapter") && e.getMessage().contains("--backend jvm"),
                    e.getMessage());
            m.adapters().set(bn);
            e = org.junit.jupiter.api.Assertions.assertThrows(IllegalArgumentException.class,
                    () -> m.forward(b, m.newState(4, 16), new int[]{1, 2}, 0, 2, 0));
            assertTrue(e.getMessage().contains("adapter bn is a bottleneck adapter"), e.getMessage());
        }
    }

    static float[] grads(ParamStore s, ParamStore.View v) {
        return java.util.Arrays.copyOfRange(s.grads, v.off(), v.off() + v.len());
    }

    static int[] sequence(int n, int V, long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        return r.ints(n, 0, V).toArray();
    }

    /** Next-token targets, with the first two positions not counted (a prompt). */
    static int[] targets(int[] s, int V) {
        int[] t = new int[s.length];
        for (int i = 0; i < s.length; i++) {
            t[i] = i < 2 ? -1 : i + 1 < s.length ? s[i + 1] : (s[0] + 1) % V;
        }
        return t;
    }

    static double sumSq(float[] a) {
        double s = 0;
        for (float x : a) {
            s += (double) x * x;
        }
        return s;
    }

    static void assertClose(String what, double want, double got, double rel) {
        assertEquals(want, got, rel * Math.max(1, Math.abs(want)), what);
    }

    static void assertArraysClose(String what, float[] want, float[] got, double rel) {
        double scale = 0;
        for (float x : want) {
            scale = Math.max(scale, Math.abs(x));
        }
        double worst = 0;
        int at = -1;
        for (int i = 0; i < want.length; i++) {
            double d = Math.abs(want[i] - got[i]);
            if (d > worst) {
                worst = d;
                at = i;
            }
        }
        assertTrue(worst <= rel * Math.max(scale, 1e-6) + 1e-9, what + ": max difference " + worst + " at " + at
                + " (largest magnitude " + scale + ")");
    }
}

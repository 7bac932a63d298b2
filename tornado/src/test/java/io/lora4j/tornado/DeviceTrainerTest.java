package io.lora4j.tornado;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Llama;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.RandomModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.train.Checkpoints;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The {@link Trainer} with its steps on the TornadoVM backend (device plans run by the JVM runner)
 * against the Trainer on the JVM: loss curve, evaluation and adapter; and checkpoints / resume on the
 * device reproduce the uninterrupted device run exactly.
 */
class DeviceTrainerTest {

    static List<Example> data(int V, int n, long seed) {
        java.util.SplittableRandom r = new java.util.SplittableRandom(seed);
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int len = 6 + r.nextInt(7);
            int[] tok = r.ints(len, 0, V).toArray();
            int[] tgt = new int[len];
            for (int t = 0; t < len; t++) {
                tgt[t] = t + 1 < len ? tok[t + 1] : -1;
            }
            out.add(new Example(tok, tgt));
        }
        return out;
    }

    static TrainConfig cfg(String optimizer, int steps) {
        // clipping at 0.05 is active on these random models, accumulation over 2 micro-batches of 2
        return new TrainConfig(optimizer, 1e-2f, 0.01f, 0.9f, 0.999f, 1e-8f, "cosine", 1, steps, 2, 2, 0.05f, 16, 3, true,
                false, 0, 0f);
    }

    static Llama model(Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, InferencePlanTest.SMALL, GgmlType.F16, 13, null);
        return new Llama(GgufFile.open(f));
    }

    @ParameterizedTest
    @ValueSource(strings = {"sgd", "adamw"})
    void theDeviceTrainerFollowsTheJvmTrainer(String optimizer, @TempDir Path dir) throws Exception {
        Llama m = model(dir);
        int V = m.config().vocabSize();
        List<Example> train = data(V, 6, 1), eval = data(V, 2, 2);
        LoraAdapter a = TrainPlanTest.adapter(m, 0.1f, "none"), b = TrainPlanTest.adapter(m, 0.1f, "none");
        Trainer jvm = new Trainer(m, a, cfg(optimizer, 4), train, eval);
        try (TornadoBackend backend = new TornadoBackend(JvmRunner::new)) {
            Trainer dev = new Trainer(m, b, cfg(optimizer, 4), train, eval, backend);
            assertNull(dev.graph(), "no JVM training graph when a device trains");
            assertEquals(jvm.evalLoss(), dev.evalLoss(), 1e-5);
            double tol = optimizer.equals("sgd") ? 1e-4 : 2e-3;
            for (int s = 0; s < 4; s++) {
                Trainer.StepStats x = jvm.trainStep(), y = dev.trainStep();
                assertEquals(x.loss(), y.loss(), 1e-4 * Math.max(1, x.loss()), "loss at step " + (s + 1));
                assertEquals(x.gradNorm(), y.gradNorm(), 1e-3 * x.gradNorm(), "gradient norm at step " + (s + 1));
            }
            assertEquals(jvm.evalLoss(), dev.evalLoss(), 1e-3);
            dev.sync();
            for (int k = 0; k < a.layers().size(); k++) {
                LoraLayer h = a.layers().get(k), d = b.layers().get(k);
                TrainPlanTest.assertArraysClose(h.path() + " A", h.a.toArray(), d.a.toArray(), tol);
                TrainPlanTest.assertArraysClose(h.path() + " B", h.b.toArray(), d.b.toArray(), tol);
            }
            TrainPlanTest.assertArraysClose("first moments", jvm.firstMoments(), dev.firstMoments(), tol);
        }
    }

    @Test
    void resumingOnTheDeviceReproducesTheUninterruptedDeviceRun(@TempDir Path dir) throws Exception {
        Llama m = model(dir);
        int V = m.config().vocabSize();
        List<Example> train = data(V, 6, 3), eval = data(V, 2, 4);
        try (TornadoBackend backend = new TornadoBackend(JvmRunner::new)) {
            LoraAdapter a = TrainPlanTest.adapter(m, 0.1f, "none");
            Trainer whole = new Trainer(m, a, cfg("adamw", 4), train, eval, backend);
            Path out = dir.resolve("run");
            for (int s = 0; s < 4; s++) {
                whole.trainStep();
                if (s == 1) {
                    Checkpoints.save(whole, out);
                }
            }
            whole.sync();
            Trainer resumed = Checkpoints.resume(out.resolve("checkpoint-2"), m, train, eval, backend);
            assertEquals(2, resumed.step());
            resumed.trainStep();
            resumed.trainStep();
            resumed.sync();
            for (int k = 0; k < a.layers().size(); k++) {
                assertArrayEquals(a.layers().get(k).a.toArray(), resumed.adapter().layers().get(k).a.toArray(), "A bit for bit");
                assertArrayEquals(a.layers().get(k).b.toArray(), resumed.adapter().layers().get(k).b.toArray(), "B bit for bit");
            }
        }
    }

    /**
     * AdaLoRA (E on the device, the orthogonal regulariser and the rank allocator on the host, the cut applied
     * on the device) with trainable lm_head and embed_tokens copies (modules_to_save) follows the JVM trainer:
     * losses, regulariser, budgets, the rank pattern and every trained tensor.
     */
    @Test
    void adaLoraWithModulesToSaveTrainsOnTheDeviceAsOnTheJvm(@TempDir Path dir) throws Exception {
        Llama m = model(dir);
        int V = m.config().vocabSize();
        List<Example> train = data(V, 6, 5), eval = data(V, 2, 6);
        io.lora4j.model.lora.LoraConfig plain = new io.lora4j.model.lora.LoraConfig(4, 8f, 0f, List.of("q_proj", "v_proj", "down_proj"),
                null, "none", false, "true", List.of(), java.util.Map.of(), java.util.Map.of(), List.of("lm_head", "embed_tokens"));
        var ada = io.lora4j.model.lora.AdaLoraConfig.of(plain, 4, 2, 1, 1, 1, 0.85f, 0.85f, 0.5f, 6);
        LoraAdapter a = new LoraAdapter("a", ada, m, 9), b = new LoraAdapter("a", ada, m, 9);
        for (LoraAdapter x : List.of(a, b)) { // non-zero singular values, so that every gradient flows from the start
            for (LoraLayer l : x.layers()) {
                for (int j = 0; j < l.r; j++) {
                    l.e.set(j, 0.05f * (j + 1));
                }
            }
        }
        Trainer jvm = new Trainer(m, a, cfg("adamw", 6), train, eval);
        try (TornadoBackend backend = new TornadoBackend(JvmRunner::new)) {
            Trainer dev = new Trainer(m, b, cfg("adamw", 6), train, eval, backend);
            int cuts = 0;
            for (int s = 0; s < 6; s++) {
                Trainer.StepStats x = jvm.trainStep(), y = dev.trainStep();
                assertEquals(x.loss(), y.loss(), 1e-4 * Math.max(1, x.loss()), "loss at step " + (s + 1));
                assertEquals(x.orthLoss(), y.orthLoss(), 1e-3 * Math.max(1e-3, x.orthLoss()), "regulariser at step " + (s + 1));
                assertEquals(x.budget(), y.budget(), "budget at step " + (s + 1));
                cuts += x.budget() < 3 * 2 * 4 ? 1 : 0;
            }
            assertTrue(cuts > 0, "the allocator cut ranks during the run");
            assertEquals(jvm.evalLoss(), dev.evalLoss(), 2e-3);
            dev.sync();
            assertEquals(a.rankPattern().keySet(), b.rankPattern().keySet());
            for (var e : a.rankPattern().entrySet()) {
                assertArrayEquals(e.getValue(), b.rankPattern().get(e.getKey()), e.getKey() + " kept triplets");
            }
            for (int k = 0; k < a.layers().size(); k++) {
                LoraLayer h = a.layers().get(k), d = b.layers().get(k);
                TrainPlanTest.assertArraysClose(h.path() + " A", h.a.toArray(), d.a.toArray(), 2e-3);
                TrainPlanTest.assertArraysClose(h.path() + " E", h.e.toArray(), d.e.toArray(), 2e-3);
                TrainPlanTest.assertArraysClose(h.path() + " B", h.b.toArray(), d.b.toArray(), 2e-3);
            }
            TrainPlanTest.assertArraysClose("lm_head", a.lmHead.toArray(), b.lmHead.toArray(), 2e-3);
            TrainPlanTest.assertArraysClose("embed_tokens", a.embedTokens.toArray(), b.embedTokens.toArray(), 2e-3);
        }
    }

    /** LoRA+ (lora_B's own learning rate) is refused on the device with the reason. */
    @Test
    void loraPlusIsRefusedWithAReason(@TempDir Path dir) throws Exception {
        Llama m = model(dir);
        List<Example> train = data(m.config().vocabSize(), 2, 5);
        io.lora4j.model.lora.LoraConfig plain = new io.lora4j.model.lora.LoraConfig(4, 4f, 0f, List.of("q_proj"), null,
                "none", false, "true", List.of(), java.util.Map.of(), java.util.Map.of(), List.of());
        try (TornadoBackend backend = new TornadoBackend(JvmRunner::new)) {
            var e3 = assertThrows(IllegalArgumentException.class, () -> new Trainer(m, new LoraAdapter("p", plain, m, 1),
                    cfg("adamw", 1).withLoraplusLrRatio(16f), train, List.of(), backend));
            assertTrue(e3.getMessage().contains("LoRA+") && e3.getMessage().contains("--backend jvm"), e3.getMessage());
        }
    }

    /** PiSSA's residual base is the base the device uploads: the device follows the JVM trainer on it. */
    @Test
    void aPissaAdapterTrainsOnTheDeviceAsOnTheJvm(@TempDir Path dir) throws Exception {
        io.lora4j.model.lora.LoraConfig pissa = new io.lora4j.model.lora.LoraConfig(2, 4f, 0f, List.of("q_proj", "v_proj"), null,
                "none", false, "pissa_niter_2", List.of(), java.util.Map.of(), java.util.Map.of(), List.of());
        Llama m1 = model(java.nio.file.Files.createDirectories(dir.resolve("1")));
        Llama m2 = model(java.nio.file.Files.createDirectories(dir.resolve("2")));
        List<Example> train = data(m1.config().vocabSize(), 4, 6);
        Trainer jvm = new Trainer(m1, new LoraAdapter("p", pissa, m1, 1), cfg("adamw", 2), train, List.of());
        try (TornadoBackend backend = new TornadoBackend(JvmRunner::new)) {
            Trainer dev = new Trainer(m2, new LoraAdapter("p", pissa, m2, 1), cfg("adamw", 2), train, List.of(), backend);
            for (int s = 0; s < 2; s++) {
                Trainer.StepStats x = jvm.trainStep(), y = dev.trainStep();
                assertEquals(x.loss(), y.loss(), 1e-4 * Math.max(1, x.loss()), "loss at step " + (s + 1));
            }
        }
    }
}

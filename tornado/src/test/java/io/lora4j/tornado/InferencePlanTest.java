package io.lora4j.tornado;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.State;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.RandomModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The TornadoVM backend's decode plan, run by the JVM runner (same kernels, same buffers, same
 * declared transfers as on a device), against the JVM backend.
 */
class InferencePlanTest {
    static final int[] LLAMA_CPP_64 = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
            410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268,
            388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310,
            439, 419, 357, 336};
    static final LlamaConfig SMALL = new LlamaConfig(64, 96, 2, 4, 2, 16, 96, 64, 1e-5f, 10000f, null,
            LlamaConfig.RopeStyle.ADJACENT, false);

    static TornadoBackend emulated() {
        return new TornadoBackend(JvmRunner::new);
    }

    static Path stories() {
        return Path.of(System.getProperty("lora4j.shared", "../shared"), "models/stories260K/stories260K.gguf");
    }

    @Test
    void stories260kContinuesOnceUponATimeAsLlamaCpp() {
        try (LoadedModel lm = LoadedModel.open(stories(), null); Backend b = emulated()) {
            int[] prompt = {1, 403, 407, 261, 378};
            Generator.Result r = Generator.generate(lm.llama(), b, lm.llama().newState(8, 128), prompt, 0, 64,
                    new Sampler(Sampler.Params.greedy(), lm.llama().config().vocabSize()), Set.of(), t -> { });
            assertArrayEquals(LLAMA_CPP_64, r.tokens());
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "Q8_0", "Q4_0", "BF16"})
    void everyWeightTypeGivesTheJvmBackendsLogits(GgmlType type, @TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, SMALL, type, 7, null);
        try (GgufFile src = GgufFile.open(f)) {
            compare(new Llama(src), 10, 1e-4f);
        }
    }

    @Test
    void activeAdaptersWithScalesAndBiasGiveTheJvmBackendsLogits(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, SMALL, GgmlType.F16, 8, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = new Llama(src);
            m.adapters().add(adapter(m, "a", 4, "lora_only", List.of("all-linear"), 1));
            m.adapters().add(adapter(m, "b", 2, "none", List.of("q_proj", "down_proj"), 2));
            Map<String, Float> scales = new LinkedHashMap<>();
            scales.put("a", 0.7f);
            scales.put("b", 1.3f);
            m.adapters().activate(scales);
            compare(m, 8, 1e-4f);
        }
    }

    /** An AdaLoRA adapter (A, E, B random; init "false") and its lm_head copy, on the device plan. */
    @Test
    void anAdaLoraAdapterGivesTheJvmBackendsLogits(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, SMALL, GgmlType.Q8_0, 10, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = new Llama(src);
            LoraConfig base = new LoraConfig(4, 6f, 0f, List.of("q_proj", "v_proj", "down_proj"), null, "none", false,
                    "false", List.of(), Map.of(), Map.of(), List.of("lm_head"));
            LoraAdapter a = new LoraAdapter("ada", io.lora4j.model.lora.AdaLoraConfig.of(base, 4, 2, 1, 1, 1, 0.85f, 0.85f,
                    0.5f, 10), m, 7);
            a.lmHead.set(3, a.lmHead.get(3) + 0.5f);
            m.adapters().set(a);
            compare(m, 6, 1e-4f);
        }
    }

    /**
     * A 23-token prompt runs as batched chunks (8, 8, 7: the last padded) on the device, with two
     * adapters active (one with a bias), and its logits are the JVM's batched prefill logits; decoding
     * then continues through the same graphs one token at a time.
     */
    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "Q8_0"})
    void batchedPrefillOnTheDeviceGivesTheJvmPrefillLogits(GgmlType type, @TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, SMALL, type, 12, null);
        try (GgufFile src = GgufFile.open(f); Backend jvm = Backend.named("jvm"); TornadoBackend dev = emulated()) {
            Llama m = new Llama(src);
            m.adapters().add(adapter(m, "a", 4, "lora_only", List.of("all-linear"), 1));
            m.adapters().add(adapter(m, "b", 2, "none", List.of("q_proj", "down_proj"), 2));
            m.adapters().activate(Map.of("a", 0.7f, "b", 1.3f));
            int n = 23;
            int[] ids = new int[n + 3];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = (i * 29 + 3) % SMALL.vocabSize();
            }
            State a = m.newState(8, SMALL.contextLength()), b = m.newState(8, SMALL.contextLength());
            assertClose(m.forward(jvm, a, ids, 0, n, 0), m.forward(dev, b, ids, 0, n, 0), 1e-4f, "prefill");
            assertEquals(8, dev.chunkRows(), "the device plan takes chunks of the state's batch size");
            for (int i = n; i < ids.length; i++) {
                assertClose(m.forward(jvm, a, ids, i, 1, i), m.forward(dev, b, ids, i, 1, i), 1e-4f, "decode at " + i);
            }
        }
    }

    /**
     * A 128-token prompt with a batch of 128 runs as two batched executions (chunks of 64, the largest)
     * of every block's graph and one of the logits graph, as the profile counts them; its kernels are
     * launched once per execution, the bytes copied in per chunk are the embeddings, positions and live
     * rows only, and the device memory is the plan's buffers (the weights among them).
     */
    @Test
    void aPromptOf128TokensRunsAsTwoBatchedExecutionsInTheProfile(@TempDir Path dir) throws Exception {
        LlamaConfig c = new LlamaConfig(64, 96, 2, 4, 2, 16, 96, 160, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false);
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, c, GgmlType.F16, 13, null);
        try (GgufFile src = GgufFile.open(f); TornadoBackend dev = emulated()) {
            Llama m = new Llama(src);
            int[] ids = new int[128];
            for (int i = 0; i < ids.length; i++) {
                ids[i] = (i * 31 + 7) % c.vocabSize();
            }
            State s = m.newState(128, c.contextLength());
            m.forward(dev, s, ids, 0, 8, 0); // builds and uploads the plan
            DeviceProfile p = new DeviceProfile();
            dev.profile(p);
            m.forward(dev, s, ids, 0, 128, 0);
            assertEquals(64, dev.chunkRows());
            assertEquals(List.of("layer_0", "layer_1", "logits"), List.copyOf(p.graphs().keySet()));
            assertEquals(2, p.graphs().get("layer_0").executions());
            assertEquals(2, p.graphs().get("layer_1").executions());
            assertEquals(1, p.graphs().get("logits").executions());
            assertEquals(5, p.executions());
            assertEquals(4, p.kernels().get("q_proj").launches(), "two chunks through two blocks");
            assertEquals(1, p.kernels().get("output").launches());
            // per chunk: layer_0 copies in the embeddings (64, C), positions (64) and the live rows (1); layer_1 the last two
            assertEquals(2 * (4L * 64 * 64 + 4 * 64 + 4), p.graphs().get("layer_0").copyInBytes());
            assertEquals(2 * (4L * 64 + 4), p.graphs().get("layer_1").copyInBytes());
            assertEquals(4L * c.vocabSize(), p.graphs().get("logits").copyOutBytes());
            long weights = 2L * 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 96) + 2L * 96 * 64;
            assertTrue(p.deviceMemory() > weights, p.deviceMemory() + " bytes on the device, " + weights + " of weights");
            String report = p.report("pp128", 1, 5);
            assertTrue(report.contains("| layer_0 | 2.0 |"), report);
            assertTrue(report.contains("(") && report.contains("others)"), report);
        }
    }

    /**
     * A DoRA adapter at weight 0.7 (its row norms of W + 0.7·s·B·A taken on the host when the plan is built)
     * then a LoRA adapter: batched prefill and decode give the JVM backend's logits; a changed magnitude
     * rebuilds the plan at the next sequence.
     */
    @Test
    void aDoraAdapterGivesTheJvmBackendsLogits(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, SMALL, GgmlType.Q8_0, 13, null);
        try (GgufFile src = GgufFile.open(f); Backend jvm = Backend.named("jvm"); TornadoBackend dev = emulated()) {
            Llama m = new Llama(src);
            LoraAdapter d = dora(m, "d", 3);
            m.adapters().add(d);
            m.adapters().add(adapter(m, "b", 2, "none", List.of("q_proj", "down_proj"), 2));
            Map<String, Float> scales = new LinkedHashMap<>();
            scales.put("d", 0.7f);
            scales.put("b", 1.3f);
            m.adapters().activate(scales);
            int[] ids = {1, 17, 33, 2, 60, 5, 9, 40, 41, 42, 8};
            State a = m.newState(4, SMALL.contextLength()), b = m.newState(4, SMALL.contextLength());
            assertClose(m.forward(jvm, a, ids, 0, 9, 0), m.forward(dev, b, ids, 0, 9, 0), 1e-4f, "prefill");
            for (int i = 9; i < ids.length; i++) {
                assertClose(m.forward(jvm, a, ids, i, 1, i), m.forward(dev, b, ids, i, 1, i), 1e-4f, "decode at " + i);
            }
            d.layers().getFirst().magnitude.set(0, 2f);
            assertClose(m.forward(jvm, a, ids, 0, 5, 0), m.forward(dev, b, ids, 0, 5, 0), 1e-4f, "after a magnitude changed");
        }
    }

    /** A DoRA adapter on every projection: A and B drawn, magnitudes 0.8 … 1.2 of the row norms. */
    static LoraAdapter dora(Llama m, String name, long seed) {
        LoraConfig c = new LoraConfig(3, 6f, 0f, List.of("all-linear"), null, "none", false, "false", List.of(), Map.of(), Map.of(),
                List.of(), true);
        LoraAdapter a = new LoraAdapter(name, c, m, seed);
        a.layers().forEach(ll -> {
            for (int i = 0; i < ll.out; i++) {
                ll.magnitude.set(i, ll.magnitude.get(i) * (0.8f + 0.1f * (i % 5)));
            }
        });
        return a;
    }

    @Test
    void changingAdaptersMidSequenceIsRefusedAndANewSequenceRebuilds(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, SMALL, GgmlType.F32, 9, null);
        try (GgufFile src = GgufFile.open(f); TornadoBackend b = emulated()) {
            Llama m = new Llama(src);
            State s = m.newState(4, SMALL.contextLength());
            int[] ids = {1, 5, 9};
            m.forward(b, s, ids, 0, 3, 0);
            LoraAdapter a = adapter(m, "a", 2, "none", List.of("v_proj"), 3);
            m.adapters().set(a);
            var e = assertThrows(IllegalStateException.class, () -> m.forward(b, s, ids, 0, 1, 3));
            assertTrue(e.getMessage().contains("middle of a sequence"), e.getMessage());
            float[] with = m.forward(b, s, ids, 0, 3, 0).clone();
            try (Backend jvm = Backend.named("jvm")) {
                assertClose(m.forward(jvm, m.newState(4, SMALL.contextLength()), ids, 0, 3, 0), with, 1e-4f, "rebuilt with the adapter");
            }
            // trained in place between sequences: the next sequence uploads the new values
            a.layers().getFirst().b.set(0, a.layers().getFirst().b.get(0) + 0.5f);
            float[] moved = m.forward(b, s, ids, 0, 3, 0).clone();
            try (Backend jvm = Backend.named("jvm")) {
                assertClose(m.forward(jvm, m.newState(4, SMALL.contextLength()), ids, 0, 3, 0), moved, 1e-4f, "after an in-place change");
            }
        }
    }

    static LoraAdapter adapter(Llama m, String name, int r, String bias, List<String> targets, long seed) {
        LoraConfig c = new LoraConfig(r, 2f * r, 0f, targets, null, bias, false, "false", List.of(), Map.of(), Map.of(), List.of());
        LoraAdapter a = new LoraAdapter(name, c, m, seed);
        a.layers().forEach(ll -> {
            if (ll.bias != null) {
                for (int i = 0; i < ll.bias.len(); i++) {
                    ll.bias.set(i, 0.01f * (i % 7 - 3));
                }
            }
        });
        return a;
    }

    /** Decodes {@code n} tokens one at a time on both backends, comparing every step's logits. */
    static void compare(Llama m, int n, float tol) {
        int V = m.config().vocabSize();
        int[] ids = new int[n];
        for (int i = 0; i < n; i++) {
            ids[i] = (i * 37 + 1) % V;
        }
        try (Backend jvm = Backend.named("jvm"); Backend dev = emulated()) {
            State a = m.newState(1, m.config().contextLength()), b = m.newState(1, m.config().contextLength());
            for (int i = 0; i < n; i++) {
                float[] want = m.forward(jvm, a, ids, i, 1, i);
                float[] got = m.forward(dev, b, ids, i, 1, i);
                assertClose(want, got, tol, "token " + i);
            }
        }
    }

    static void assertClose(float[] want, float[] got, float tol, String what) {
        float worst = 0;
        int at = -1;
        for (int v = 0; v < want.length; v++) {
            float d = Math.abs(want[v] - got[v]) / Math.max(1f, Math.abs(want[v]));
            if (d > worst) {
                worst = d;
                at = v;
            }
        }
        assertTrue(worst <= tol, what + ": max relative difference " + worst + " at logit " + at);
        assertEquals(want.length, got.length);
    }
}

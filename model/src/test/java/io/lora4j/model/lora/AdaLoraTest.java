package io.lora4j.model.lora;

import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AdaLoRA configs, PEFT's AdaLoRA files (save, load, pruning), and the export to plain LoRA. */
class AdaLoraTest {

    static AdaLoraConfig config(int initR) {
        LoraConfig base = new LoraConfig(initR, 6f, 0f, List.of("q_proj", "k_proj", "v_proj", "down_proj"), null, "none", false,
                "false", List.of(), Map.of(), Map.of(), List.of("lm_head"));
        return AdaLoraConfig.of(base, initR, 2, 1, 1, 1, 0.85f, 0.85f, 0.5f, 10);
    }

    /** A random AdaLoRA adapter (init "false": A, E, B all non-zero) with a rank pattern that cuts some triplets. */
    static LoraAdapter pruned(Llama m, boolean withEmptyModule) {
        LoraAdapter a = new LoraAdapter("default", config(4), m, 7);
        SplittableRandom r = new SplittableRandom(2);
        Map<String, boolean[]> pattern = new LinkedHashMap<>();
        for (LoraLayer l : a.layers()) {
            boolean[] keep = new boolean[l.r];
            for (int j = 0; j < l.r; j++) {
                keep[j] = r.nextBoolean();
            }
            keep[0] = true;
            if (withEmptyModule && l.layer == 1 && l.module == LinearModule.K_PROJ) {
                Arrays.fill(keep, false);
            }
            for (int j = 0; j < l.r; j++) {
                l.e.set(j, keep[j] ? l.e.get(j) : 0f); // what the allocator's masking leaves
            }
            pattern.put(l.path(), keep);
        }
        a.setRankPattern(pattern);
        return a;
    }

    static float[] logits(Llama m, LoraAdapter a) {
        m.adapters().set(a);
        int[] ids = {1, 4, 7, 2, 9, 3};
        try (Backend b = Backend.named("jvm")) {
            return m.forward(b, m.newState(8, 16), ids, 0, ids.length, 0).clone();
        } finally {
            m.adapters().set(null);
        }
    }

    static void assertSameLogits(float[] x, float[] y, float tol) {
        for (int i = 0; i < x.length; i++) {
            assertEquals(x[i], y[i], tol * Math.max(1, Math.abs(x[i])), "logit " + i);
        }
    }

    @Test
    void misconfigurationsAreRejectedWithClearMessages() {
        LoraConfig base = LoraConfig.of(12, 8f, List.of("q_proj"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> AdaLoraConfig.of(base, 12, 4, 80, 20, 1, 0.85f, 0.85f, 0.5f, 100));
        assertTrue(e.getMessage().contains("tinit (80) must be < total_step - tfinal (100 - 20 = 80)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(base, 12, 16, 0, 0, 1, 0.85f, 0.85f, 0.5f, 100));
        assertTrue(e.getMessage().contains("target_r (16) is larger than init_r (12)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(base, 12, 4, 0, 0, 1, 0.85f, 0.85f, 0.5f, null));
        assertTrue(e.getMessage().contains("total_step") && e.getMessage().contains("missing"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(base, 12, 4, 0, 0, 1, 0.85f, 0.85f, 0.5f, 0));
        assertTrue(e.getMessage().contains("total_step > 0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(base, 12, 4, 0, 0, 0, 0.85f, 0.85f, 0.5f, 10));
        assertTrue(e.getMessage().contains("deltaT"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(base, 12, 4, 0, 0, 1, 1f, 0.85f, 0.5f, 10));
        assertTrue(e.getMessage().contains("beta1 and beta2"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(base, 12, 4, 0, 0, 1, 0.85f, 0.85f, -1f, 10));
        assertTrue(e.getMessage().contains("orth_reg_weight"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(base, 12, 0, 0, 0, 1, 0.85f, 0.85f, 0.5f, 10));
        assertTrue(e.getMessage().contains("target_r must be >= 1"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new AdaLoraConfig(new LoraConfig(12, 8f, 0f, List.of("q_proj"),
                null, "none", true, "true", List.of(), Map.of(), Map.of(), List.of()), 12, 4, 0, 0, 1, 0.85f, 0.85f, 0.5f, 10));
        assertTrue(e.getMessage().contains("use_rslora"), e.getMessage());
        // PEFT's scaling: lora_alpha / (init_r + 1e-5) with a float32 ranknum
        assertEquals(8f / 12.00001f, AdaLoraConfig.of(base, 12, 4, 0, 0, 1, 0.85f, 0.85f, 0.5f, 10).scaling());
    }

    @Test
    void aFreshAdapterIsInitialisedAsPeftAndIsTheBaseModel() {
        Llama m = PeftAdaptersTest.model(LlamaConfig.RopeStyle.HALVES);
        AdaLoraConfig c = AdaLoraConfig.defaults(8f, List.of("q_proj", "v_proj"), 10);
        LoraAdapter a = new LoraAdapter("default", c, m, 1);
        assertEquals(4, a.layers().size());
        double sq = 0;
        int n = 0;
        for (LoraLayer l : a.layers()) {
            assertEquals(12, l.r);
            assertTrue(l.svd());
            assertEquals(c.scaling(), l.scaling);
            assertArrayEquals(new float[12], l.e.toArray(), "E starts at zero");
            for (float x : l.a.toArray()) {
                sq += x * x;
                n++;
            }
        }
        assertEquals(0.02, Math.sqrt(sq / n), 0.003, "A ~ N(0, 0.02²)");
        m.adapters().set(null);
        assertArrayEquals(logits(m, null), logits(m, a), "E = 0: the adapter adds exactly zero");
        assertEquals(2L * (12 * 16 + 12 + 16 * 12) + 2L * (12 * 16 + 12 + 8 * 12), a.trainableParameters(),
                "A, E and B of q (16 → 16) and v (16 → 8) in 2 layers");
    }

    @Test
    void peftFormatSaveThenLoadOnBothRopeLayouts(@TempDir Path dir) throws Exception {
        for (LlamaConfig.RopeStyle style : LlamaConfig.RopeStyle.values()) {
            Llama m = PeftAdaptersTest.model(style);
            LoraAdapter a = pruned(m, true);
            Path d = dir.resolve(style.name());
            PeftAdapters.save(a, m, d);
            // PEFT's keys: no ".weight", lora_E [k, 1], cut to the kept ranks; rank-0 modules as empty tensors
            try (SafetensorsFile st = SafetensorsFile.open(d.resolve(PeftAdapters.WEIGHTS))) {
                for (LoraLayer l : a.layers()) {
                    String k = "base_model.model." + l.path();
                    int kept = LoraAdapter.kept(a.rankPattern().get(l.path()));
                    assertArrayEquals(new long[]{kept, l.in}, st.fileShape(k + ".lora_A"), k);
                    assertArrayEquals(new long[]{kept, 1}, st.fileShape(k + ".lora_E"), k);
                    assertArrayEquals(new long[]{l.out, kept}, st.fileShape(k + ".lora_B"), k);
                }
                assertEquals(3 * a.layers().size() + 1, st.tensors().size());
            }
            String json = Files.readString(d.resolve(PeftAdapters.CONFIG));
            for (String key : new String[]{"\"peft_type\" : \"ADALORA\"", "\"init_r\" : 4", "\"target_r\" : 2", "\"tinit\" : 1",
                    "\"tfinal\" : 1", "\"deltaT\" : 1", "\"total_step\" : 10", "\"orth_reg_weight\" : 0.5", "\"beta1\" : 0.85",
                    "\"model.layers.1.self_attn.k_proj.lora_E\" : [ false, false, false, false ]"}) {
                assertTrue(json.contains(key), key + " in " + json);
            }
            LoraAdapter b = PeftAdapters.load(d, m, "default");
            assertEquals(a.adaLora(), b.adaLora());
            for (int i = 0; i < a.layers().size(); i++) {
                LoraLayer x = a.layers().get(i), y = b.layers().get(i);
                assertEquals(LoraAdapter.kept(a.rankPattern().get(x.path())), y.r, x.path());
                assertArrayEquals(a.rankPattern().get(x.path()), b.rankPattern().get(x.path()));
                assertEquals(x.scaling, y.scaling, "ranknum stays init_r after pruning");
            }
            assertArrayEquals(a.lmHead.toArray(), b.lmHead.toArray());
            // cut triplets have E = 0, so the pruned adapter is the same function
            assertSameLogits(logits(m, a), logits(m, b), 1e-5f);
            // saving a loaded (already cut) adapter again gives the same files
            Path again = dir.resolve(style.name() + "-again");
            PeftAdapters.save(b, m, again);
            assertArrayEquals(Files.readAllBytes(d.resolve(PeftAdapters.WEIGHTS)), Files.readAllBytes(again.resolve(PeftAdapters.WEIGHTS)));
        }
    }

    @Test
    void untruncatedSaveKeepsEveryTripletBitwise(@TempDir Path dir) {
        Llama m = PeftAdaptersTest.model(LlamaConfig.RopeStyle.ADJACENT);
        LoraAdapter a = pruned(m, false);
        PeftAdapters.save(a, m, dir, false);
        LoraAdapter b = PeftAdapters.load(dir, m, "x");
        assertNull(b.rankPattern(), "written without rank_pattern");
        for (int i = 0; i < a.layers().size(); i++) {
            LoraLayer x = a.layers().get(i), y = b.layers().get(i);
            assertArrayEquals(x.a.toArray(), y.a.toArray());
            assertArrayEquals(x.e.toArray(), y.e.toArray());
            assertArrayEquals(x.b.toArray(), y.b.toArray());
        }
    }

    @Test
    void brokenAdaLoraFilesAreRejectedNamingTheProblem(@TempDir Path dir) throws Exception {
        Llama m = PeftAdaptersTest.model(LlamaConfig.RopeStyle.HALVES);
        PeftAdapters.save(pruned(m, true), m, dir);
        Path cfg = dir.resolve(PeftAdapters.CONFIG);
        String good = Files.readString(cfg);
        Files.writeString(cfg, good.replace("\"total_step\" : 10,", ""));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("adapter_config.json") && e.getMessage().contains("total_step"), e.getMessage());
        Files.writeString(cfg, good.replace("\"target_r\" : 2", "\"target_r\" : 9"));
        e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("target_r (9) is larger than init_r (4)"), e.getMessage());
        // a rank pattern that keeps more triplets than the file holds
        Files.writeString(cfg, good.replace("\"model.layers.1.self_attn.k_proj.lora_E\" : [ false,", "\"model.layers.1.self_attn.k_proj.lora_E\" : [ true,"));
        e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("layers.1.self_attn.k_proj.lora_A has shape [0, 16] but the base model needs [1, 16]"), e.getMessage());
        Files.writeString(cfg, good.replace("\"model.layers.0.self_attn.q_proj.lora_E\"", "\"model.layers.0.self_attn.o_proj.lora_E\""));
        e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("o_proj, which the config does not target"), e.getMessage());
    }

    @Test
    void exportedLoraGivesTheSameLogitsAndUsesRankAndAlphaPatterns(@TempDir Path dir) throws Exception {
        for (LlamaConfig.RopeStyle style : LlamaConfig.RopeStyle.values()) {
            Llama m = PeftAdaptersTest.model(style);
            LoraAdapter a = pruned(m, true);
            Path ada = dir.resolve(style + "-ada"), lora = dir.resolve(style + "-lora");
            PeftAdapters.save(a, m, ada);
            AdaLoraExport.Result r = AdaLoraExport.toLora(ada, lora);
            assertEquals(0, r.ranks().get("model.layers.1.self_attn.k_proj"));
            LoraAdapter l = PeftAdapters.load(lora, m, "lora");
            assertNull(l.adaLora());
            assertEquals(a.layers().size() - 1, l.layers().size(), "the rank-0 module is left out");
            assertNull(l.get(1, LinearModule.K_PROJ));
            for (LoraLayer x : l.layers()) {
                assertEquals(1f, x.scaling, x.path() + ": s and E are folded into A");
                assertEquals(r.ranks().get(x.path()), x.r, x.path());
                assertTrue(!x.svd());
            }
            assertSameLogits(logits(m, a), logits(m, l), 1e-5f);
            String json = Files.readString(lora.resolve(PeftAdapters.CONFIG));
            assertTrue(json.contains("\"peft_type\" : \"LORA\"") && json.contains("\"rank_pattern\" : {")
                    && json.contains("\"alpha_pattern\" : {") && json.contains("model\\\\.layers\\\\.0"), json);
            try (SafetensorsFile st = SafetensorsFile.open(lora.resolve(PeftAdapters.WEIGHTS))) {
                assertTrue(st.tensors().keySet().stream().allMatch(k -> k.endsWith(".weight")), st.tensors().keySet().toString());
            }
        }
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> AdaLoraExport.toLora(dir.resolve("HALVES-lora"), dir.resolve("again")));
        assertTrue(e.getMessage().contains("LoRA already"), e.getMessage());
    }

    @Test
    void mergeAndWeightedCombinationFoldTheSingularValues() {
        Llama m = PeftAdaptersTest.model(LlamaConfig.RopeStyle.HALVES);
        LoraAdapter a = pruned(m, true);
        float[] unmerged = logits(m, a);
        m.merge(a);
        float[] merged = logits(m, null);
        m.unmerge();
        assertSameLogits(unmerged, merged, 1e-4f);
        LoraAdapter cat = WeightedAdapters.combine(m, List.of(a), List.of(1f), "cat", "cat", 0);
        assertSameLogits(unmerged, logits(m, cat), 1e-4f);
        LoraAdapter svd = WeightedAdapters.combine(m, List.of(a), List.of(1f), "svd", "svd", 4);
        assertSameLogits(unmerged, logits(m, svd), 1e-4f);
    }

    /**
     * The exported rank_pattern / alpha_pattern keys select exactly their module under both regexes
     * PEFT has used to match them against module names such as {@code model.layers.0.self_attn.q_proj}:
     * {@code .*\.KEY$} (PEFT 0.10 to 0.14, which needs a dot before the key) and {@code (.*\.)?(KEY)$}
     * (0.15 on); no key selects another module, here or in a 12-layer model.
     */
    @Test
    void exportedPatternKeysMatchTheirModuleInOldAndNewPeft(@TempDir Path dir) {
        Llama m = PeftAdaptersTest.model(LlamaConfig.RopeStyle.HALVES);
        Path ada = dir.resolve("ada"), lora = dir.resolve("lora");
        PeftAdapters.save(pruned(m, false), m, ada);
        AdaLoraExport.Result r = AdaLoraExport.toLora(ada, lora);
        LoraConfig c = r.config();
        assertTrue(!c.rankPattern().isEmpty(), "ranks differ, so there are pattern entries");
        assertEquals(c.rankPattern().keySet(), c.alphaPattern().keySet());
        List<String> paths = new java.util.ArrayList<>();
        for (int layer = 0; layer < 12; layer++) {
            for (LinearModule mod : LinearModule.values()) {
                paths.add(mod.path(layer));
            }
        }
        for (String key : c.rankPattern().keySet()) {
            for (String regex : new String[]{".*\\." + key, "(.*\\.)?(" + key + ")"}) {
                List<String> hit = paths.stream().filter(p -> java.util.regex.Pattern.matches(regex, p)).toList();
                assertEquals(1, hit.size(), regex + " selects " + hit);
                assertEquals((int) c.rankPattern().get(key), r.ranks().get(hit.get(0)), key);
                assertEquals((float) r.ranks().get(hit.get(0)), c.alphaPattern().get(key), key);
            }
        }
        for (var e : r.ranks().entrySet()) {
            if (e.getValue() != c.r()) {
                assertTrue(c.rankPattern().keySet().stream().anyMatch(k -> java.util.regex.Pattern.matches(".*\\." + k, e.getKey())),
                        e.getKey() + " of rank " + e.getValue() + " has an entry");
            }
        }
    }
}

package io.lora4j.model.lora;

import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.TinyModel;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class PeftAdaptersTest {

    static Llama model(LlamaConfig.RopeStyle style) {
        return new Llama(new TinyModel(TinyModel.config(style), 2, false));
    }

    static LoraConfig config() {
        return new LoraConfig(3, 6f, 0.05f, LoraConfig.ALL_LINEAR, null, "lora_only", true, "false", List.of(),
                Map.of("v_proj", 2), Map.of("o_proj", 3f), List.of("lm_head"));
    }

    @Test
    void saveThenLoadIsBitwiseIdenticalOnBothRopeLayouts(@TempDir Path dir) {
        for (LlamaConfig.RopeStyle style : LlamaConfig.RopeStyle.values()) {
            Llama m = model(style);
            LoraAdapter a = new LoraAdapter("default", config(), m, 5);
            Path d = dir.resolve(style.name());
            PeftAdapters.save(a, m, d);
            LoraAdapter b = PeftAdapters.load(d, m, "default");
            assertEquals(a.config(), b.config());
            assertEquals(a.layers().size(), b.layers().size());
            for (int i = 0; i < a.layers().size(); i++) {
                LoraLayer x = a.layers().get(i), y = b.layers().get(i);
                assertEquals(x.path(), y.path());
                assertEquals(x.scaling, y.scaling);
                assertArrayEquals(x.a.toArray(), y.a.toArray(), x.path());
                assertArrayEquals(x.b.toArray(), y.b.toArray(), x.path());
                assertEquals(x.bias == null, y.bias == null, x.path());
                if (x.bias != null) {
                    assertArrayEquals(x.bias.toArray(), y.bias.toArray(), x.path());
                }
            }
            assertEquals(a.lmHead == null, b.lmHead == null);
            if (a.lmHead != null) {
                assertArrayEquals(a.lmHead.toArray(), b.lmHead.toArray());
            }
        }
    }

    @Test
    void configUsesPeftKeys(@TempDir Path dir) throws Exception {
        Llama m = model(LlamaConfig.RopeStyle.HALVES);
        PeftAdapters.save(new LoraAdapter("default", config(), m, 5), m, dir);
        String json = Files.readString(dir.resolve("adapter_config.json"));
        for (String key : new String[]{"\"peft_type\" : \"LORA\"", "\"r\" : 3", "\"lora_alpha\" : 6.0", "\"use_rslora\" : true",
                "\"bias\" : \"lora_only\"", "\"task_type\" : \"CAUSAL_LM\"", "\"v_proj\" : 2", "\"modules_to_save\" : [ \"lm_head\" ]"}) {
            assertTrue(json.contains(key), key + " in " + json);
        }
    }

    /**
     * {@code all-linear} is saved as PEFT 0.21 saves it (references written by PEFT itself, see
     * peft-all-linear/make.py): the full module paths for 1 and 2 layers, the 7 suffixes from 3 on
     * (21 modules); PEFT rejects a list holding "all-linear". Each of PEFT's files loads, as does the
     * plain string "all-linear", and targets every projection.
     */
    @Test
    void allLinearIsSavedAsPeftSavesItAndEveryFormLoads(@TempDir Path dir) throws Exception {
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        for (int layers = 1; layers <= 3; layers++) {
            Path ref = Path.of(getClass().getResource("peft-all-linear/layers-" + layers + "/adapter_config.json").toURI());
            java.util.Set<String> peft = new java.util.TreeSet<>();
            json.readTree(ref.toFile()).get("target_modules").forEach(t -> peft.add(t.asText()));
            LoraConfig all = LoraConfig.of(2, 4f, List.of("all-linear"));
            assertEquals(peft, new java.util.TreeSet<>(all.savedTargetModules(layers)), layers + " layers");
            TinyModel base = new TinyModel(new LlamaConfig(16, 24, layers, 4, 2, 4, 11, 64, 1e-5f, 10000f, null,
                    LlamaConfig.RopeStyle.HALVES, false), 3, false);
            Llama m = new Llama(base);
            Path d = dir.resolve("l" + layers);
            PeftAdapters.save(new LoraAdapter("default", all, m, 1), m, d);
            String saved = Files.readString(d.resolve("adapter_config.json"));
            assertTrue(!saved.contains("all-linear"), saved);
            java.util.Set<String> ours = new java.util.TreeSet<>();
            json.readTree(saved).get("target_modules").forEach(t -> ours.add(t.asText()));
            assertEquals(peft, ours, "target_modules as PEFT writes it, " + layers + " layers");
            Files.copy(ref, d.resolve("adapter_config.json"), java.nio.file.StandardCopyOption.REPLACE_EXISTING);
            assertEquals(7 * layers, PeftAdapters.load(d, m, "peft").layers().size(), "PEFT's file loads with every projection");
            String string = saved.replaceAll("(?s)\"target_modules\" : \\[[^]]*]", "\"target_modules\" : \"all-linear\"");
            assertTrue(string.contains("\"target_modules\" : \"all-linear\""), string);
            Files.writeString(d.resolve("adapter_config.json"), string);
            assertEquals(7 * layers, PeftAdapters.load(d, m, "string").layers().size(), "the string form loads");
        }
    }

    @Test
    void ggufRowPermutationMatchesLlamaCppsConverter() {
        // HF q rows of one head with HS 4: [a0 a1 | b0 b1] (halves) → GGUF [a0 b0 a1 b1] (pairs)
        float[] hf = {10, 11, 20, 21};
        assertArrayEquals(new float[]{10, 20, 11, 21}, PeftAdapters.rows(hf, 4, 1, 1, true));
        assertArrayEquals(hf, PeftAdapters.rows(PeftAdapters.rows(hf, 4, 1, 1, true), 4, 1, 1, false));
    }

    @Test
    void adaptedLogitsAgreeAcrossRopeLayouts(@TempDir Path dir) {
        // An adapter trained on an HF-layout base, loaded onto the same weights in GGUF layout, gives the same logits.
        // Build the GGUF twin by permuting q/k rows of every layer (what llama.cpp's converter does).
        TinyModel hf = new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 9, false);
        TinyModel gg = new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 9, false);
        LlamaConfig c = hf.config();
        for (int l = 0; l < c.nLayers(); l++) {
            permuteInto(hf, gg, "blk." + l + ".attn_q.weight", c.nHeads(), c.dim());
            permuteInto(hf, gg, "blk." + l + ".attn_k.weight", c.nKvHeads(), c.dim());
        }
        Llama mh = new Llama(hf), mg = new Llama(gg);
        LoraAdapter a = new LoraAdapter("default", config(), mh, 3);
        PeftAdapters.save(a, mh, dir);
        mh.adapters().set(a);
        mg.adapters().set(PeftAdapters.load(dir, mg, "default"));
        int[] ids = {1, 4, 7, 2, 9};
        try (var b = io.lora4j.model.Backend.named("jvm")) {
            float[] x = mh.forward(b, mh.newState(8, 16), ids, 0, ids.length, 0).clone();
            float[] y = mg.forward(b, mg.newState(8, 16), ids, 0, ids.length, 0).clone();
            for (int i = 0; i < x.length; i++) {
                assertEquals(x[i], y[i], 1e-4f * Math.max(1, Math.abs(x[i])), "logit " + i);
            }
        }
    }

    static void permuteInto(TinyModel from, TinyModel to, String name, int heads, int cols) {
        var src = from.tensors().get(name).data();
        var dst = to.tensors().get(name).data();
        int rows = (int) (src.byteSize() / 4 / cols);
        float[] m = src.toArray(java.lang.foreign.ValueLayout.JAVA_FLOAT);
        float[] p = PeftAdapters.rows(m, rows, cols, heads, true);
        java.lang.foreign.MemorySegment.copy(java.lang.foreign.MemorySegment.ofArray(p), 0, dst, 0, src.byteSize());
    }

    @Test
    void mismatchedOrBrokenAdaptersAreRejectedNamingTheModule(@TempDir Path dir) throws Exception {
        Llama m = model(LlamaConfig.RopeStyle.ADJACENT);
        LoraAdapter a = new LoraAdapter("default", LoraConfig.of(2, 4f, List.of("q_proj", "v_proj")), m, 1);
        PeftAdapters.save(a, m, dir);
        Path st = dir.resolve("adapter_model.safetensors");

        // wrong shape
        new SafetensorsWriter().add("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", new long[]{2, 5}, new float[10])
                .write(st);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("layers.0.self_attn.q_proj.lora_A.weight") && e.getMessage().contains("[2, 5]"), e.getMessage());

        // missing keys
        new SafetensorsWriter().write(st);
        e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("missing tensor base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"), e.getMessage());

        // NaN
        PeftAdapters.save(a, m, dir);
        a.layers().get(0).b.set(3, Float.NaN);
        PeftAdapters.save(a, m, dir);
        e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("non-finite") && e.getMessage().contains("q_proj.lora_B"), e.getMessage());

        // extra keys: an adapter for a module the config does not target
        a.layers().get(0).b.set(3, 0f);
        LoraAdapter wide = new LoraAdapter("default", LoraConfig.of(2, 4f, List.of("q_proj", "v_proj", "k_proj")), m, 1);
        PeftAdapters.save(wide, m, dir);
        Files.writeString(dir.resolve("adapter_config.json"), Files.readString(dir.resolve("adapter_config.json"))
                .replace(", \"k_proj\"", ""));
        e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("k_proj"), e.getMessage());

        // unknown config keys are ignored; a broken config is named
        Files.writeString(dir.resolve("adapter_config.json"), "{\"r\": 2, \"target_modules\": [\"q_proj\"], \"unknown_key\": 1");
        e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
        assertTrue(e.getMessage().contains("adapter_config.json") && e.getMessage().contains("invalid JSON"), e.getMessage());
    }

    @Test
    void halfPrecisionFilesAndUnknownConfigKeysLoad(@TempDir Path dir) throws Exception {
        Llama m = model(LlamaConfig.RopeStyle.HALVES);
        LoraAdapter a = new LoraAdapter("default", LoraConfig.of(2, 4f, List.of("q_proj")), m, 1);
        for (var l : a.layers()) {
            for (int i = 0; i < l.b.len(); i++) {
                l.b.set(i, 0.01f * (i % 7 - 3));
            }
        }
        for (io.lora4j.kernels.GgmlType t : new io.lora4j.kernels.GgmlType[]{io.lora4j.kernels.GgmlType.F16, io.lora4j.kernels.GgmlType.BF16}) {
            SafetensorsWriter w = new SafetensorsWriter();
            for (var l : a.layers()) {
                String k = "base_model.model." + l.path();
                w.add(k + ".lora_A.weight", t, new long[]{l.r, l.in}, half(l.a.toArray(), t));
                w.add(k + ".lora_B.weight", t, new long[]{l.out, l.r}, half(l.b.toArray(), t));
            }
            Path d = dir.resolve(t.name());
            Files.createDirectories(d);
            w.write(d.resolve("adapter_model.safetensors"));
            Files.writeString(d.resolve("adapter_config.json"), "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, "
                    + "\"target_modules\": [\"q_proj\"], \"some_future_option\": {\"x\": [1, 2]}, \"use_dora\": false}");
            LoraAdapter b = PeftAdapters.load(d, m, "h");
            for (int i = 0; i < a.layers().size(); i++) {
                float[] want = a.layers().get(i).a.toArray(), got = b.layers().get(i).a.toArray();
                for (int j = 0; j < want.length; j++) {
                    float rounded = t == io.lora4j.kernels.GgmlType.F16 ? Float.float16ToFloat(Float.floatToFloat16(want[j]))
                            : Float.intBitsToFloat(io.lora4j.model.format.Quantizer.bf16(want[j]) << 16);
                    assertEquals(rounded, got[j], 0f, t + " A " + j);
                }
            }
        }
    }

    private static java.lang.foreign.MemorySegment half(float[] v, io.lora4j.kernels.GgmlType t) {
        java.lang.foreign.MemorySegment seg = java.lang.foreign.MemorySegment.ofArray(new byte[2 * v.length]);
        io.lora4j.model.format.Quantizer.quantizeRow(t, seg, 0, v, 0, v.length);
        return seg;
    }
}

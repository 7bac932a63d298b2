package io.lora4j.model.lora;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.Quantization;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** DoRA adapters: initialisation, PEFT files, merging (with PEFT's rule for the norm), the row-norm cache, what is refused. */
class DoraAdapterTest {
    static final int[] IDS = {1, 4, 7, 2, 9, 3};

    static LoraConfig config(String init, List<String> targets) {
        return new LoraConfig(3, 6f, 0f, targets, null, "none", false, init, List.of(), Map.of("v_proj", 2), Map.of(), List.of(),
                true);
    }

    /** A DoRA adapter with A and B drawn and magnitudes 0.8 … 1.2 of the row norms. */
    static LoraAdapter dora(Llama m, String name, List<String> targets, long seed) {
        LoraAdapter a = new LoraAdapter(name, config("false", targets), m, seed);
        for (LoraLayer ll : a.layers()) {
            for (int i = 0; i < ll.out; i++) {
                ll.magnitude.set(i, ll.magnitude.get(i) * (0.8f + 0.1f * ((i + seed) % 5)));
            }
        }
        return a;
    }

    static float[] logits(Llama m) {
        try (Backend b = Backend.named("jvm")) {
            return m.forward(b, m.newState(8, 16), IDS, 0, IDS.length, 0).clone();
        }
    }

    static void assertClose(float[] want, float[] got, float tol, String what) {
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], got[i], tol * Math.max(1, Math.abs(want[i])), what + ": logit " + i);
        }
    }

    /** PEFT's init: m = ‖W + s·B A‖ with B = 0, i.e. the row norms of the (dequantized) base; the model is unchanged, bit for bit. */
    @ParameterizedTest
    @ValueSource(strings = {"none", "nf4"})
    void magnitudeStartsAtTheBasesRowNormsAndLeavesTheModelAsItIs(String quant) {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 4, false),
                Quantization.parse(quant, !quant.equals("none")));
        float[] base = logits(m);
        LoraAdapter a = new LoraAdapter("d", config("true", LoraConfig.ALL_LINEAR), m, 1);
        assertEquals(7 * m.config().nLayers(), a.layers().size());
        for (LoraLayer ll : a.layers()) {
            float[] w = Dequant.matrix(ll.module.weight(m.layer(ll.layer)));
            for (int o = 0; o < ll.out; o++) {
                double sum = 0;
                for (int i = 0; i < ll.in; i++) {
                    sum += (double) w[o * ll.in + i] * w[o * ll.in + i];
                }
                assertEquals(Math.sqrt(sum), ll.magnitude.get(o), 1e-6 * Math.sqrt(sum), ll.path() + " row " + o);
            }
        }
        assertEquals(a.layers().stream().mapToLong(ll -> ll.a.len() + ll.b.len() + ll.out).sum(), a.trainableParameters());
        m.adapters().set(a);
        assertArrayEquals(base, logits(m), "B = 0 and m = the row norms: the base model's logits");
    }

    /** Saved and loaded on both RoPE row layouts (q/k magnitudes permuted like lora_B's rows): the same logits. */
    @Test
    void savedAdapterLoadsOnTheOtherRowLayoutWithTheSameLogits(@TempDir Path dir) throws Exception {
        TinyModel hf = new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 9, false);
        TinyModel gg = new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 9, false);
        LlamaConfig c = hf.config();
        for (int l = 0; l < c.nLayers(); l++) {
            PeftAdaptersTest.permuteInto(hf, gg, "blk." + l + ".attn_q.weight", c.nHeads(), c.dim());
            PeftAdaptersTest.permuteInto(hf, gg, "blk." + l + ".attn_k.weight", c.nKvHeads(), c.dim());
        }
        Llama mh = new Llama(hf), mg = new Llama(gg);
        LoraAdapter a = dora(mh, "default", LoraConfig.ALL_LINEAR, 3);
        PeftAdapters.save(a, mh, dir);
        assertTrue(Files.readString(dir.resolve(PeftAdapters.CONFIG)).contains("\"use_dora\" : true"));
        LoraAdapter back = PeftAdapters.load(dir, mh, "default");
        assertEquals(a.config(), back.config());
        for (int i = 0; i < a.layers().size(); i++) {
            assertArrayEquals(a.layers().get(i).magnitude.toArray(), back.layers().get(i).magnitude.toArray());
        }
        mh.adapters().set(a);
        mg.adapters().set(PeftAdapters.load(dir, mg, "default"));
        assertClose(logits(mh), logits(mg), 1e-4f, "HF layout vs GGUF layout");
        float[] base = logits(new Llama(hf));
        assertTrue(Math.abs(base[3] - logits(mh)[3]) > 1e-3, "the adapter changes the logits");
    }

    /**
     * Merging is PEFT's: each adapter's norm is taken on the unmerged base W₀, so after merging a then b the
     * weight is g_b ⊙ (g_a ⊙ (W₀ + s·B_a A_a) + s·B_b A_b) with g = m / ‖W₀ + s·B A‖; one adapter merged gives
     * its unmerged logits; a quantized base merges dequantized (QDoRA).
     */
    @Test
    void mergingTakesEachNormOnTheUnmergedBase() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 6, false));
        LoraAdapter a = dora(m, "a", List.of("q_proj", "down_proj"), 1), b = dora(m, "b", List.of("down_proj"), 2);
        m.adapters().set(a);
        float[] unmerged = logits(m);
        m.adapters().disable();
        m.merge(a);
        assertClose(unmerged, logits(m), 1e-4f, "merged vs unmerged");
        m.merge(b);
        LoraLayer la = a.get(1, LinearModule.DOWN_PROJ), lb = b.get(1, LinearModule.DOWN_PROJ);
        float[] w0 = Dequant.matrix(m.projection(1, LinearModule.DOWN_PROJ));
        double[] wa = decomposed(w0, w0, la);
        float[] wa32 = new float[wa.length];
        for (int i = 0; i < wa.length; i++) {
            wa32[i] = (float) wa[i];
        }
        double[] want = decomposed(wa32, w0, lb);
        float[] got = Dequant.matrix(m.layer(1).down());
        for (int i = 0; i < got.length; i++) {
            assertEquals(want[i], got[i], 1e-5 * Math.max(1, Math.abs(want[i])), "merged weight " + i);
        }
        m.unmerge();

        Llama q = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 6, false), new Quantization(GgmlType.NF4));
        LoraAdapter d = dora(q, "d", LoraConfig.ALL_LINEAR, 5);
        q.adapters().set(d);
        float[] qUnmerged = logits(q);
        q.adapters().disable();
        assertThrows(IllegalArgumentException.class, () -> q.merge(d), "a quantized base merges only when told how");
        q.merge(d, Merge.Mode.DEQUANTIZE);
        assertClose(qUnmerged, logits(q), 1e-4f, "QDoRA merged (dequantized) vs unmerged");
    }

    /** (m / ‖W₀ + s·B A‖) ⊙ (w + s·B A) in double, rows of W₀'s width. */
    private static double[] decomposed(float[] w, float[] w0, LoraLayer ll) {
        double[] out = new double[w.length];
        for (int o = 0; o < ll.out; o++) {
            double norm = 0;
            double[] ba = new double[ll.in];
            for (int i = 0; i < ll.in; i++) {
                for (int j = 0; j < ll.r; j++) {
                    ba[i] += (double) ll.b.get(o * ll.r + j) * ll.a.get(j * ll.in + i);
                }
                double v = w0[o * ll.in + i] + ll.scaling * ba[i];
                norm += v * v;
            }
            double g = ll.magnitude.get(o) / Math.sqrt(norm);
            for (int i = 0; i < ll.in; i++) {
                out[o * ll.in + i] = g * (w[o * ll.in + i] + ll.scaling * ba[i]);
            }
        }
        return out;
    }

    /** The row norms are cached for inference but follow every change of A or B (a trainer updates them in place). */
    @Test
    void rowNormsFollowTheAdaptersValues() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 7, false));
        LoraAdapter a = dora(m, "a", LoraConfig.ALL_LINEAR, 4);
        m.adapters().set(a);
        logits(m);
        LoraLayer ll = a.get(0, LinearModule.O_PROJ);
        float[] norm = ll.weightNorm(ll.module.weight(m.layer(0)), ll.scaling);
        assertTrue(norm == ll.weightNorm(ll.module.weight(m.layer(0)), ll.scaling), "cached while nothing changes");
        for (int i = 0; i < a.store().size(); i++) {
            a.store().values[i] *= 1.1f; // as an optimizer step writes the store
        }
        float[] moved = logits(m);
        LoraAdapter fresh = dora(m, "fresh", LoraConfig.ALL_LINEAR, 4);
        System.arraycopy(a.store().values, 0, fresh.store().values, 0, a.store().size());
        m.adapters().set(fresh);
        assertArrayEquals(logits(m), moved, "the same values give the same logits, whatever was cached before");
        assertTrue(norm != ll.weightNorm(ll.module.weight(m.layer(0)), ll.scaling), "computed again after the change");
    }

    @Test
    void whatDoraDoesNotTakeIsRefusedWithPeftsReasons(@TempDir Path dir) throws Exception {
        var bias = assertThrows(IllegalArgumentException.class, () -> new LoraConfig(3, 6f, 0f, LoraConfig.ALL_LINEAR, null,
                "lora_only", false, "true", List.of(), Map.of(), Map.of(), List.of(), true));
        assertTrue(bias.getMessage().contains("not supported for DoRA"), bias.getMessage());
        var pissa = assertThrows(IllegalArgumentException.class, () -> config("pissa", LoraConfig.ALL_LINEAR));
        assertTrue(pissa.getMessage().contains("magnitude vector"), pissa.getMessage());
        var ada = assertThrows(IllegalArgumentException.class, () -> AdaLoraConfig.of(config("true", LoraConfig.ALL_LINEAR), 3, 1, 0,
                0, 1, 0.85f, 0.85f, 0.5f, 10));
        assertEquals("ADALORA does not support DoRA.", ada.getMessage());

        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 7, false));
        LoraAdapter a = dora(m, "a", List.of("q_proj"), 1), b = dora(m, "b", List.of("q_proj"), 2);
        var combine = assertThrows(IllegalArgumentException.class, () -> WeightedAdapters.combine(m, List.of(a, b), List.of(0.5f, 0.5f),
                "c", "linear", 0));
        assertTrue(combine.getMessage().contains("DoRA"), combine.getMessage());

        // a DoRA file without its magnitudes, and an AdaLoRA config asking for DoRA
        Path d = dir.resolve("no-magnitude");
        PeftAdapters.save(a, m, d);
        SafetensorsWriter w = new SafetensorsWriter();
        for (LoraLayer ll : a.layers()) {
            w.add("base_model.model." + ll.path() + ".lora_A.weight", new long[]{ll.r, ll.in}, ll.a.toArray());
            w.add("base_model.model." + ll.path() + ".lora_B.weight", new long[]{ll.out, ll.r}, ll.b.toArray());
        }
        w.write(d.resolve(PeftAdapters.WEIGHTS));
        var missing = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(d, m, "x"));
        assertTrue(missing.getMessage().contains("missing tensor") && missing.getMessage().contains("lora_magnitude_vector"),
                missing.getMessage());
        Path e = dir.resolve("adalora");
        Files.createDirectories(e);
        Files.writeString(e.resolve(PeftAdapters.CONFIG), "{\"peft_type\": \"ADALORA\", \"init_r\": 4, \"target_r\": 2, "
                + "\"total_step\": 10, \"target_modules\": [\"q_proj\"], \"use_dora\": true}");
        var adaFile = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(e, m, "x"));
        assertTrue(adaFile.getMessage().contains(PeftAdapters.CONFIG) && adaFile.getMessage().contains("DoRA"), adaFile.getMessage());
    }
}

package io.lora4j.model.lora;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Llama;
import io.lora4j.model.Quantization;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.Quantizer;
import io.lora4j.model.format.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PiSSA and OLoRA on small random bases: the decomposition itself (orthonormal factors, the base's
 * leading singular values), the adapted model equal to the base at initialisation with the residual kept in
 * the base's own type, the converted adapter applying to the original base, and PEFT's refusals.
 */
class ResidualInitTest {
    static final LlamaConfig CFG = TinyModel.config(LlamaConfig.RopeStyle.ADJACENT);

    static LoraConfig config(String init) {
        return new LoraConfig(3, 6f, 0f, LoraConfig.ALL_LINEAR, null, "none", false, init, List.of(), Map.of(), Map.of(), List.of());
    }

    /** The tiny model with its projections stored as {@code type} (F32, F16, BF16 or Q8_0). */
    static Llama model(LlamaConfig c, GgmlType type) {
        TinyModel f32 = new TinyModel(c, 5, false);
        Map<String, TensorInfo> t = new LinkedHashMap<>();
        for (TensorInfo x : f32.tensors().values()) {
            if (Llama.projection(x.name()) == null || type == GgmlType.F32) {
                t.put(x.name(), x);
                continue;
            }
            int cols = (int) x.shape()[0], rows = (int) x.shape()[1];
            float[] v = new float[cols * rows];
            Dequant.row(x.asWeight(), 0, v, 0);
            for (int r = 1; r < rows; r++) {
                Dequant.row(x.asWeight(), r, v, r * cols);
            }
            long rowBytes = type.byteSize(cols);
            MemorySegment seg = Arena.ofAuto().allocate(rows * rowBytes, 64);
            for (int r = 0; r < rows; r++) {
                Quantizer.quantizeRow(type, seg, r * rowBytes, v, r * cols, cols);
            }
            t.put(x.name(), new TensorInfo(x.name(), type, x.shape(), seg));
        }
        return new Llama(new TinyModel(c, t));
    }

    static float[] logits(Llama m) {
        return MultiAdapterTest.logits(m);
    }

    static double maxRel(float[] want, float[] got) {
        double d = 0;
        for (int i = 0; i < want.length; i++) {
            d = Math.max(d, Math.abs(want[i] - got[i]) / Math.max(1, Math.abs(want[i])));
        }
        return d;
    }

    @ParameterizedTest
    @ValueSource(strings = {"F32", "F16", "BF16"})
    void atInitialisationTheAdaptedModelIsTheBaseAndTheResidualKeepsTheBaseType(String typeName) {
        GgmlType type = GgmlType.valueOf(typeName);
        double tol = type == GgmlType.F32 ? 1e-5 : type == GgmlType.F16 ? 2e-3 : 2e-2; // the residual is rounded to the type
        for (String init : List.of("pissa", "pissa_niter_3", "olora")) {
            Llama m = model(CFG, type);
            float[] base = logits(m);
            float[] w = Dequant.matrix(m.projection(1, LinearModule.UP_PROJ));
            LoraAdapter a = new LoraAdapter("p", config(init), m, 9);
            assertEquals(type, m.projection(1, LinearModule.UP_PROJ).type(), init + ": the residual keeps the base's type");
            assertTrue(maxRel(w, Dequant.matrix(m.projection(1, LinearModule.UP_PROJ))) > 1e-2, init + ": the base became a residual");
            m.adapters().set(a);
            assertTrue(maxRel(base, logits(m)) < tol, init + " " + type + ": " + maxRel(base, logits(m)));
            m.adapters().set(null);
            assertTrue(maxRel(base, logits(m)) > 1e-3, init + ": without the adapter, the residual model differs");
            // merging restores W from the residual, unmerging gives the residual back
            m.merge(a);
            assertTrue(maxRel(base, logits(m)) < tol, init + " merged");
            m.unmerge();
            assertTrue(maxRel(base, logits(m)) > 1e-3);
        }
    }

    /**
     * PiSSA's A₀ = diag(√(S/s))·Uᵀ, B₀ = V·diag(√(S/s)): A₀'s rows are orthogonal with norms² S/s and so are
     * B₀'s columns, S being W's leading singular values; OLoRA's B₀ has orthonormal columns and A₀ = B₀ᵀW
     * (the first rows of R), upper-triangular in its first columns.
     */
    @Test
    void theFactorsAreThoseOfTheDecomposition() {
        Llama m = model(CFG, GgmlType.F32);
        float[] w = Dequant.matrix(m.projection(0, LinearModule.GATE_PROJ)); // (24, 16)
        double[] wd = new double[w.length];
        for (int i = 0; i < w.length; i++) {
            wd[i] = w[i];
        }
        Linalg.Svd ref = Linalg.svd(wd, 24, 16, 3);
        LoraAdapter p = new LoraAdapter("p", config("pissa"), model(CFG, GgmlType.F32), 1);
        LoraLayer l = p.get(0, LinearModule.GATE_PROJ);
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) {
                double rows = 0, cols = 0;
                for (int k = 0; k < l.in; k++) {
                    rows += (double) l.a.get(i * l.in + k) * l.a.get(j * l.in + k);
                }
                for (int o = 0; o < l.out; o++) {
                    cols += (double) l.b.get(o * 3 + i) * l.b.get(o * 3 + j);
                }
                double want = i == j ? ref.s()[i] / l.scaling : 0;
                assertEquals(want, rows, 1e-5, "A rows " + i + "," + j);
                assertEquals(want, cols, 1e-5, "B columns " + i + "," + j);
            }
        }
        LoraAdapter o = new LoraAdapter("o", config("olora"), model(CFG, GgmlType.F32), 1);
        LoraLayer q = o.get(0, LinearModule.GATE_PROJ);
        for (int i = 0; i < 3; i++) {
            for (int j = 0; j < 3; j++) {
                double dot = 0;
                for (int r = 0; r < q.out; r++) {
                    dot += (double) q.b.get(r * 3 + i) * q.b.get(r * 3 + j);
                }
                assertEquals(i == j ? 1 : 0, dot, 1e-6, "Q columns " + i + "," + j);
            }
            for (int c = 0; c < q.in; c++) {
                double qtw = 0;
                for (int r = 0; r < q.out; r++) {
                    qtw += (double) q.b.get(r * 3 + i) * w[r * q.in + c];
                }
                assertEquals(qtw, q.a.get(i * q.in + c), 1e-5, "R = QᵀW at " + i + "," + c);
                if (c < i) {
                    assertEquals(0, q.a.get(i * q.in + c), 1e-6, "R is upper-triangular");
                }
            }
        }
    }

    /** Saved (converted), the trained adapter applies to the original base as it applied to the residual one. */
    @Test
    void theSavedAdapterAppliesToTheOriginalBase(@TempDir Path dir) {
        for (String init : List.of("pissa_niter_2", "olora")) {
            Llama m = model(CFG, GgmlType.F32);
            LoraAdapter a = new LoraAdapter("p", config(init), m, 4);
            java.util.SplittableRandom r = new java.util.SplittableRandom(3);
            for (int i = 0; i < a.store().size(); i++) {
                a.store().values[i] += (float) (0.05 * r.nextGaussian()); // "training"
            }
            m.adapters().set(a);
            float[] trained = logits(m);
            PeftAdapters.save(a, m, dir.resolve(init));
            PeftAdapters.Config c = PeftAdapters.readConfig(dir.resolve(init));
            assertEquals(6, c.lora().r());
            assertEquals(12f, c.lora().loraAlpha());
            assertEquals("true", c.lora().initLoraWeights());
            Llama original = model(CFG, GgmlType.F32);
            original.adapters().set(PeftAdapters.load(dir.resolve(init), original, "lora"));
            assertTrue(maxRel(trained, logits(original)) < 1e-4, init + ": " + maxRel(trained, logits(original)));
        }
    }

    @Test
    void quantizedBasesAreRefusedWherePeftRefusesThem() {
        Llama nf4 = new Llama(new TinyModel(CFG, 5, false), Quantization.parse("nf4", false));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new LoraAdapter("p", config("pissa"), nf4, 1));
        assertTrue(e.getMessage().contains("Please initialize PiSSA under float32, float16, or bfloat16"), e.getMessage());
        assertEquals(GgmlType.NF4, nf4.projection(0, LinearModule.Q_PROJ).type(), "nothing replaced");
        // OLoRA on a bitsandbytes-like base: dequantized, decomposed, the residual quantized back (as PEFT does)
        float[] base = logits(nf4);
        double nf4Error = maxRel(logits(model(CFG, GgmlType.F32)), base);
        nf4.adapters().set(new LoraAdapter("o", config("olora"), nf4, 1));
        assertEquals(GgmlType.NF4, nf4.projection(0, LinearModule.Q_PROJ).type());
        double requantized = maxRel(base, logits(nf4));
        assertTrue(requantized > 0 && requantized < 2 * nf4Error, "the residual requantized: " + requantized + " from the NF4 "
                + "base, whose own error is " + nf4Error);
        // a GGUF block type is a dtype PEFT does not know
        LlamaConfig wide = new LlamaConfig(32, 64, 1, 4, 2, 8, 11, 64, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false);
        Llama q8 = model(wide, GgmlType.Q8_0);
        e = assertThrows(IllegalArgumentException.class, () -> new LoraAdapter("o", config("olora"), q8, 1));
        assertTrue(e.getMessage().contains("Unsupported data type for the base layer. Got Q8_0"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new LoraAdapter("o", config("pissa_niter_2"), q8, 1));
        assertTrue(e.getMessage().contains("Please initialize PiSSA"), e.getMessage());
    }

    @Test
    void peftsConfigChecks() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> config("pissa_niter_four"));
        assertTrue(e.getMessage().contains("init_lora_weights should be 'pissa' or 'pissa_niter_[number of iters]'"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new LoraConfig(3, 6f, 0f, List.of("q_proj"), null, "lora_only", false,
                "olora", List.of(), Map.of(), Map.of(), List.of()));
        assertTrue(e.getMessage().contains("only supported with init_lora_weights=True or False"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new LoraConfig(3, 6f, 0f, List.of("q_proj"), null, "none", true,
                "pissa", List.of(), Map.of("q_proj", 2), Map.of(), List.of()));
        assertTrue(e.getMessage().contains("path_initial_model_for_weight_conversion"), e.getMessage());
        Llama m = model(CFG, GgmlType.F32);
        e = assertThrows(IllegalArgumentException.class, () -> new LoraAdapter("p", new LoraConfig(9, 6f, 0f, List.of("k_proj"), null,
                "none", false, "pissa", List.of(), Map.of(), Map.of(), List.of()), m, 1));
        assertTrue(e.getMessage().contains("exceeds min(in, out)"), e.getMessage());
        e = assertThrows(IllegalArgumentException.class, () -> new LoraAdapter("a", AdaLoraConfig.of(config("pissa"), 3, 2, 0, 0, 1,
                0.85f, 0.85f, 0.5f, 10), m, 1));
        assertTrue(e.getMessage().contains("AdaLoRA"), e.getMessage());
    }
}

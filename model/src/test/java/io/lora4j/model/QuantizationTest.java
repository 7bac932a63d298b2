package io.lora4j.model;

import io.lora4j.model.lora.Merge;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Quantization on load, preparation for k-bit training, merging into a quantized base and the memory report. */
class QuantizationTest {
    static final int[] PROBE = {1, 5, 3, 9, 2, 7};

    static float[] logits(Llama m) {
        try (Backend b = Backend.named("jvm")) {
            return m.forward(b, m.newState(8, 16), PROBE, 0, PROBE.length, 0).clone();
        }
    }

    static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }

    static TinyModel tiny(boolean tied) {
        return new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 7, tied);
    }

    @Test
    void onlyTheSevenProjectionsAreQuantized() {
        TinyModel src = tiny(false);
        Llama m = new Llama(src, Quantization.parse("nf4", true));
        assertEquals("nf4+dq", m.quantization().label());
        for (int l = 0; l < m.config().nLayers(); l++) {
            for (LinearModule mod : LinearModule.values()) {
                Weight w = mod.weight(m.layer(l));
                assertEquals(GgmlType.NF4_DQ, w.type(), mod.path(l));
                assertEquals(w, m.weight(w.name()), "weight(name) finds " + w.name());
            }
        }
        assertSame(src.tensors().get("token_embd.weight").data(), m.tokenEmbedding().data(), "embedding as stored");
        assertSame(src.tensors().get("output.weight").data(), m.baseOutput().data(), "output layer as stored");
        assertArrayEquals(new Llama(src).layer(1).ffnNorm(), m.layer(1).ffnNorm(), "norms as stored");
        assertTrue(m.quantizedBase());
        assertTrue(!new Llama(src).quantizedBase());
    }

    @Test
    void eightBitIsCloserToTheFloatModelThanFourBit() {
        TinyModel src = tiny(true);
        float[] ref = logits(new Llama(src));
        double int8 = maxDiff(ref, logits(new Llama(src, Quantization.parse("int8", false))));
        double zp = maxDiff(ref, logits(new Llama(src, Quantization.parse("int8-zp", false))));
        double nf4 = maxDiff(ref, logits(new Llama(src, Quantization.parse("nf4", false))));
        double fp4 = maxDiff(ref, logits(new Llama(src, Quantization.parse("fp4", false))));
        assertTrue(int8 > 0 && int8 < 0.05 && zp < 0.05, "8-bit max |Δlogit| " + int8 + ", zero point " + zp);
        assertTrue(nf4 > int8 && fp4 > int8 && nf4 < 1 && fp4 < 1, "4-bit max |Δlogit| nf4 " + nf4 + ", fp4 " + fp4 + " vs int8 " + int8);
    }

    @Test
    void quantizingAnAlreadyQuantizedTensorIsAnError() {
        WeightSource q8 = QuantizedBases.wide(GgmlType.Q8_0, 1);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> new Llama(q8, Quantization.parse("nf4", false)));
        assertTrue(e.getMessage().contains("tensor blk.0.attn_q.weight is Q8_0, already quantized; --quantize nf4 quantizes "
                + "F32, F16 or BF16 weights only"), e.getMessage());
        assertTrue(e.getMessage().startsWith("tiny-model"), "names the file: " + e.getMessage());
        // F16 and BF16 bases are quantized
        for (GgmlType t : new GgmlType[]{GgmlType.F16, GgmlType.BF16}) {
            Llama m = new Llama(QuantizedBases.of(tiny(true), t, 1), Quantization.parse("int8", false));
            assertEquals(GgmlType.INT8, m.layer(0).wq().type(), t.name());
        }
    }

    @Test
    void usageErrors() {
        assertEquals("--double-quant compresses the absmax constants of --quantize nf4 or fp4; it does not apply to --quantize int8",
                assertThrows(IllegalArgumentException.class, () -> Quantization.parse("int8", true)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> Quantization.parse("none", true));
        assertEquals("--quantize must be none, int8, int8-zp, nf4 or fp4, got 'q4_0'",
                assertThrows(IllegalArgumentException.class, () -> Quantization.parse("q4_0", false)).getMessage());
        assertThrows(IllegalArgumentException.class, () -> new Quantization(GgmlType.Q8_0));
        assertTrue(Quantization.parse("NONE", false).none());
    }

    @Test
    void prepareForKbitTrainingCastsHalfPrecisionTensorsToFloat32AndChangesNoResult() {
        for (boolean tied : new boolean[]{false, true}) {
            WeightSource src = QuantizedBases.of(tiny(tied), GgmlType.F16, 1,
                    n -> n.equals("token_embd.weight") || n.equals("output.weight"), 1f);
            Llama m = new Llama(src, Quantization.parse("nf4", true));
            float[] before = logits(m);
            List<String> cast = m.prepareForKbitTraining();
            assertEquals(tied ? List.of("token_embd.weight F16 → F32") : List.of("token_embd.weight F16 → F32", "output.weight F16 → F32"), cast);
            assertEquals(GgmlType.F32, m.tokenEmbedding().type());
            assertEquals(GgmlType.F32, m.baseOutput().type());
            assertEquals(tied, m.baseOutput() == m.tokenEmbedding(), "a tied output stays tied");
            assertEquals(GgmlType.NF4_DQ, m.layer(0).wq().type(), "quantized weights stay quantized");
            assertArrayEquals(before, logits(m), "F16 decodes exactly: the same logits, bit for bit");
            assertEquals(List.of(), m.prepareForKbitTraining(), "nothing left to cast");
        }
    }

    static LoraAdapter adapter(Llama m) {
        LoraConfig c = new LoraConfig(4, 8f, 0f, LoraConfig.ALL_LINEAR, null, "none", false, "false", List.of(), Map.of(), Map.of(), List.of());
        return new LoraAdapter("a", c, m, 3);
    }

    @Test
    void mergingIntoAQuantizedBaseNeedsConsent() {
        Llama m = new Llama(tiny(true), Quantization.parse("int8", false));
        float[] base = logits(m);
        LoraAdapter a = adapter(m);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.merge(a));
        assertTrue(e.getMessage().contains("is INT8 (quantized); choose --dequantize") && e.getMessage().contains("--requantize")
                && e.getMessage().endsWith("nothing was merged"), e.getMessage());
        assertArrayEquals(base, logits(m), "nothing changed");
        assertTrue(m.mergedAdapters().isEmpty());
        // a type lora4j cannot quantize: refused before anything is merged
        Llama k = new Llama(QuantizedBases.wide(GgmlType.Q4_K, 2));
        float[] kBase = logits(k);
        LoraAdapter ka = adapter(k);
        e = assertThrows(IllegalArgumentException.class, () -> k.merge(ka, Merge.Mode.REQUANTIZE));
        assertTrue(e.getMessage().contains("is Q4_K: lora4j has no Q4_K quantizer"), e.getMessage());
        assertArrayEquals(kBase, logits(k));
    }

    @Test
    void dequantizeMergesExactlyAndRequantizeKeepsTheTypeWithAMeasuredError() {
        try (Backend b = Backend.named("jvm")) {
            mergeModes(b);
        }
    }

    private static void mergeModes(Backend b) {
        for (String q : new String[]{"int8", "int8-zp", "nf4", "fp4"}) {
            Llama m = new Llama(tiny(true), Quantization.parse(q, q.equals("nf4")));
            GgmlType type = m.layer(0).wq().type();
            LoraAdapter a = adapter(m);
            float[] base = logits(m);
            m.adapters().set(a);
            float[][] unmerged = MergeError.logits(m, b, PROBE);
            m.adapters().disable();

            m.merge(a, Merge.Mode.DEQUANTIZE);
            assertEquals(GgmlType.F32, m.layer(0).wq().type());
            MergeError exact = MergeError.between(MergeError.logits(m, b, PROBE), unmerged);
            assertTrue(exact.maxAbsLogit() < 1e-4 && exact.meanKl() < 1e-9, q + " dequantized merge: " + exact.describe());
            m.unmerge();
            assertArrayEquals(base, logits(m), "unmerge restores the quantized base exactly");

            m.merge(a, Merge.Mode.REQUANTIZE);
            for (LinearModule mod : LinearModule.values()) {
                assertEquals(type, mod.weight(m.layer(1)).type(), q + " " + mod.peftName + " requantized");
            }
            MergeError err = MergeError.between(MergeError.logits(m, b, PROBE), unmerged);
            assertTrue(err.maxAbsLogit() > exact.maxAbsLogit() && err.meanKl() > 0 && err.maxKl() >= err.meanKl()
                    && Double.isFinite(err.maxKl()), q + " requantized merge: " + err.describe());
            m.unmerge();
        }
        // a stored Q8_0 base requantizes to Q8_0 bytes
        Llama q8 = new Llama(QuantizedBases.wide(GgmlType.Q8_0, 4));
        q8.merge(adapter(q8), Merge.Mode.REQUANTIZE);
        assertEquals(GgmlType.Q8_0, q8.layer(0).down().type());
    }

    @Test
    void mergeErrorOfKnownDistributions() {
        MergeError same = MergeError.between(new float[][]{{1f, 2f, 3f}}, new float[][]{{1f, 2f, 3f}});
        assertEquals(0.0, same.maxAbsLogit());
        assertEquals(0.0, same.meanKl(), 1e-15);
        // merged p = (1/2, 1/2), unmerged q = (3/4, 1/4): KL = ½ln(2/3) + ½ln 2 = ½ln(4/3)
        MergeError e = MergeError.between(new float[][]{{0f, 0f}, {5f, 5f}}, new float[][]{{(float) Math.log(3), 0f}, {5f, 5f}});
        assertEquals(0.5 * Math.log(4.0 / 3), e.maxKl(), 1e-7);
        assertEquals(0.25 * Math.log(4.0 / 3), e.meanKl(), 1e-7);
        assertEquals(Math.log(3), e.maxAbsLogit(), 1e-6);
        assertEquals(2, e.positions());
    }

    @Test
    void memoryReportCountsQuantizedProjectionsApartFromTheRest() {
        TinyModel src = tiny(false);
        for (String q : new String[]{"none", "int8", "int8-zp", "nf4", "fp4"}) {
            for (boolean dq : q.endsWith("4") ? new boolean[]{false, true} : new boolean[]{false}) {
                Quantization quant = Quantization.parse(q, dq);
                Llama m = new Llama(src, quant);
                MemoryReport r = MemoryReport.of(m);
                long linear = 0, linearParams = 0, rest = 0;
                for (TensorInfo t : src.tensors().values()) {
                    if (Llama.projection(t.name()) != null) {
                        Weight w = m.weight(t.name());
                        linear += w.type().tensorBytes(w.rows(), w.cols());
                        linearParams += t.elementCount();
                    } else {
                        rest += t.data().byteSize();
                    }
                }
                assertEquals(linear, r.linearBytes(), quant.label());
                assertEquals(linearParams, r.linearParams());
                assertEquals(rest, r.restBytes());
                assertEquals(m.parameterCount(), r.baseParams());
                assertEquals(r, MemoryReport.of(src, quant), quant.label() + ": computed without quantizing = as loaded");
                assertEquals(quant.none() ? "F32" : quant.type().name(), r.linearTypes());
            }
        }
        MemoryReport t = MemoryReport.of(new Llama(src)).withTraining(new MemoryReport.Training(100, 800, 800, 4000, 40, 10, false));
        assertEquals(8, t.lines().size());
        assertTrue(t.lines().get(3).contains("8.0000 bytes/trainable param (100)"), t.lines().get(3));
        assertTrue(t.lines().get(5).contains("400 bytes/token"), t.lines().get(5));
    }
}

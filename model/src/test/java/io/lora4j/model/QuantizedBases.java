package io.lora4j.model;

import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.format.Quantizer;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;

import java.lang.foreign.MemorySegment;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * Models with some tensors stored in another ggml type, as a converted GGUF holds them (by default
 * the block projections): F16, Q8_0 and Q4_0 converted from the float weights with ggml's reference
 * quantizers, Q4_K as random valid blocks (lora4j has no Q4_K quantizer).
 */
public final class QuantizedBases {
    private QuantizedBases() {
    }

    /** {@code base} with its block projections stored as {@code type}. */
    public static TinyModel of(WeightSource base, GgmlType type, long seed) {
        return of(base, type, seed, name -> Llama.projection(name) != null, 1f);
    }

    /** {@code base} with the tensors {@code which} names stored as {@code type} and every matrix scaled by {@code scale}. */
    public static TinyModel of(WeightSource base, GgmlType type, long seed, java.util.function.Predicate<String> which, float scale) {
        SplittableRandom r = new SplittableRandom(seed);
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (TensorInfo t : base.tensors().values()) {
            boolean matrix = t.shape().length == 2;
            tensors.put(t.name(), which.test(t.name()) ? convert(t, type, r, scale)
                    : matrix && scale != 1f ? convert(t, GgmlType.F32, r, scale) : t);
        }
        return new TinyModel(base.config(), tensors);
    }

    /**
     * A one-block model whose projections are 256 wide, so every ggml block type fits, with its
     * matrices scaled like a trained model's (±0.1: attention not saturated, so central differences
     * in float32 stay accurate), the projections stored as {@code type}.
     */
    public static TinyModel wide(GgmlType type, long seed) {
        LlamaConfig c = new LlamaConfig(256, 256, 1, 2, 1, 128, 11, 64, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false);
        return of(new TinyModel(c, seed, false), type, seed, name -> Llama.projection(name) != null, 0.25f);
    }

    private static TensorInfo convert(TensorInfo t, GgmlType type, SplittableRandom r, float scale) {
        int rows = (int) t.shape()[1], cols = (int) t.shape()[0];
        long rowBytes = type.byteSize(cols);
        byte[] bytes = new byte[(int) (rows * rowBytes)];
        MemorySegment seg = MemorySegment.ofArray(bytes);
        if (type == GgmlType.Q4_K) {
            r.nextBytes(bytes);
            for (int b = 0; b < bytes.length / type.typeSize; b++) {
                // d and dmin: values d·sc·q − dmin·m stay within about ±0.2·scale
                seg.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, (long) b * type.typeSize, Float.floatToFloat16(2e-4f * scale));
                seg.set(java.lang.foreign.ValueLayout.JAVA_SHORT_UNALIGNED, (long) b * type.typeSize + 2, Float.floatToFloat16(1e-3f * scale));
            }
        } else {
            float[] m = Dequant.matrix(t.asWeight());
            for (int i = 0; i < m.length; i++) {
                m[i] *= scale;
            }
            for (int row = 0; row < rows; row++) {
                Quantizer.quantizeRow(type, seg, row * rowBytes, m, row * cols, cols);
            }
        }
        return new TensorInfo(t.name(), type, t.shape(), seg);
    }
}

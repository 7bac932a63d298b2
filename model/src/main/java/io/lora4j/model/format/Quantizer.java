package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;

import java.lang.foreign.MemorySegment;

/**
 * Reference quantizers from F32 rows, bit-exact with ggml's {@code quantize_row_*_ref}, and the
 * matching reference dequantizers (for tests and converters; the fast kernels live elsewhere).
 * <pre>
 * Q8_0 block (34 B): f16 d, int8 q[32];  x = d*q,      d = amax/127,  q = roundf(x/d)
 * Q4_0 block (18 B): f16 d, u8 qs[16];   x = d*(q-8),  d = max/-8 (max: signed value of largest |x|),
 *                    q = min(15, (int)(x/d + 8.5)), qs[j] = q[j] | q[j+16] << 4
 * F16 = IEEE half (round to nearest even), BF16 = top 16 bits of f32 rounded to nearest even
 * </pre>
 */
public final class Quantizer {
    private Quantizer() {
    }

    /** Writes {@code n} elements of {@code src[srcOff..]} as {@code type} into {@code dst} at byte {@code dstOff}. */
    public static void quantizeRow(GgmlType type, MemorySegment dst, long dstOff, float[] src, int srcOff, int n) {
        switch (type) {
            case F32 -> MemorySegment.copy(src, srcOff, dst, Mapped.F32, dstOff, n);
            case F16 -> toF16(dst, dstOff, src, srcOff, n);
            case BF16 -> toBf16(dst, dstOff, src, srcOff, n);
            case Q8_0 -> toQ8_0(dst, dstOff, src, srcOff, n);
            case Q4_0 -> toQ4_0(dst, dstOff, src, srcOff, n);
            default -> throw new IllegalArgumentException("no reference quantizer for " + type);
        }
    }

    public static void toF16(MemorySegment dst, long dstOff, float[] src, int srcOff, int n) {
        for (int i = 0; i < n; i++) {
            dst.set(Mapped.I16, dstOff + 2L * i, Float.floatToFloat16(src[srcOff + i]));
        }
    }

    public static short bf16(float x) {
        int u = Float.floatToRawIntBits(x);
        if ((u & 0x7fffffff) > 0x7f800000) { // NaN: keep it a quiet NaN
            return (short) ((u >>> 16) | 64);
        }
        return (short) ((u + (0x7fff + ((u >>> 16) & 1))) >>> 16);
    }

    public static void toBf16(MemorySegment dst, long dstOff, float[] src, int srcOff, int n) {
        for (int i = 0; i < n; i++) {
            dst.set(Mapped.I16, dstOff + 2L * i, bf16(src[srcOff + i]));
        }
    }

    /** C roundf: half away from zero. */
    static int roundf(float v) {
        double a = Math.floor(Math.abs((double) v) + 0.5);
        return (int) (v < 0 ? -a : a);
    }

    public static void toQ8_0(MemorySegment dst, long dstOff, float[] x, int xOff, int n) {
        if (n % 32 != 0) {
            throw new IllegalArgumentException("Q8_0: " + n + " elements is not a multiple of 32");
        }
        for (int b = 0; b < n / 32; b++) {
            int base = xOff + b * 32;
            long out = dstOff + 34L * b;
            float amax = 0f;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[base + j]));
            }
            float d = amax / 127f;
            float id = d != 0f ? 1f / d : 0f;
            dst.set(Mapped.I16, out, Float.floatToFloat16(d));
            for (int j = 0; j < 32; j++) {
                dst.set(Mapped.U8, out + 2 + j, (byte) roundf(x[base + j] * id));
            }
        }
    }

    public static void toQ4_0(MemorySegment dst, long dstOff, float[] x, int xOff, int n) {
        if (n % 32 != 0) {
            throw new IllegalArgumentException("Q4_0: " + n + " elements is not a multiple of 32");
        }
        for (int b = 0; b < n / 32; b++) {
            int base = xOff + b * 32;
            long out = dstOff + 18L * b;
            float amax = 0f;
            float max = 0f;
            for (int j = 0; j < 32; j++) {
                float v = x[base + j];
                if (amax < Math.abs(v)) {
                    amax = Math.abs(v);
                    max = v;
                }
            }
            float d = max / -8f;
            float id = d != 0f ? 1f / d : 0f;
            dst.set(Mapped.I16, out, Float.floatToFloat16(d));
            for (int j = 0; j < 16; j++) {
                int q0 = Math.min(15, (byte) (int) (x[base + j] * id + 8.5f));
                int q1 = Math.min(15, (byte) (int) (x[base + 16 + j] * id + 8.5f));
                dst.set(Mapped.U8, out + 2 + j, (byte) (q0 | (q1 << 4)));
            }
        }
    }

    /** Reference dequantization of {@code n} elements at byte {@code srcOff} of {@code src} into {@code dst[dstOff..]}. */
    public static void dequantizeRow(GgmlType type, float[] dst, int dstOff, MemorySegment src, long srcOff, int n) {
        switch (type) {
            case F32 -> MemorySegment.copy(src, Mapped.F32, srcOff, dst, dstOff, n);
            case F16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = Float.float16ToFloat(src.get(Mapped.I16, srcOff + 2L * i));
                }
            }
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = Float.intBitsToFloat((src.get(Mapped.I16, srcOff + 2L * i) & 0xffff) << 16);
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    long in = srcOff + 34L * b;
                    float d = Float.float16ToFloat(src.get(Mapped.I16, in));
                    for (int j = 0; j < 32; j++) {
                        dst[dstOff + b * 32 + j] = d * src.get(Mapped.U8, in + 2 + j);
                    }
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    long in = srcOff + 18L * b;
                    float d = Float.float16ToFloat(src.get(Mapped.I16, in));
                    for (int j = 0; j < 16; j++) {
                        int q = src.get(Mapped.U8, in + 2 + j) & 0xff;
                        dst[dstOff + b * 32 + j] = d * ((q & 15) - 8);
                        dst[dstOff + b * 32 + 16 + j] = d * ((q >>> 4) - 8);
                    }
                }
            }
            default -> throw new IllegalArgumentException("no reference dequantizer for " + type);
        }
    }
}

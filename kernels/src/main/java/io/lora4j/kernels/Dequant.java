package io.lora4j.kernels;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * Decoding of ggml tensor elements to float, bit-exact with ggml's {@code dequantize_row_*}.
 * Block layouts (little-endian; d, m, dmin are fp16):
 * <pre>
 * Q8_0  (32) : d, int8 q[32]                         y = d·q
 * Q4_0  (32) : d, u8 qs[16]                          y[j] = d·((qs[j] &amp; 15) − 8), y[j+16] = d·((qs[j] &gt;&gt; 4) − 8)
 * Q4_1  (32) : d, m, u8 qs[16]                       y = d·nibble + m
 * Q5_0  (32) : d, u32 qh, u8 qs[16]                  fifth bit from qh; y = d·(q − 16)
 * Q5_1  (32) : d, m, u32 qh, u8 qs[16]               y = d·q + m
 * Q4_K (256) : d, dmin, u8 scales[12], u8 qs[128]    8 sub-blocks of 32 with 6-bit scale and min
 * Q5_K (256) : d, dmin, u8 scales[12], u8 qh[32], u8 qs[128]
 * Q6_K (256) : u8 ql[128], u8 qh[64], int8 scales[16], d
 * </pre>
 * The naive oracles read {@code byte[]} and use integer arithmetic only (TornadoVM's kernel
 * subset: no Float.float16ToFloat, no Float.intBitsToFloat); {@link #row} is the fast twin over the
 * memory-mapped segment.
 */
public final class Dequant {
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED;
    private static final ValueLayout.OfInt INT = ValueLayout.JAVA_INT_UNALIGNED;

    private Dequant() {
    }

    // ---- naive oracles (TornadoVM kernel subset) ----

    /**
     * 2^e for e in [-149, 127], exactly, as a product of the powers 2^(±2^k) selected by the bits of
     * |e|: no loop and no library call (PoCL crashes on data-dependent loops in a kernel); every
     * partial product is a power of two no further from 1 than the result, so none rounds.
     */
    static float pow2(int e) {
        boolean neg = e < 0;
        int n = neg ? -e : e;
        float r = 1.0f;
        r *= (n & 1) != 0 ? (neg ? 0.5f : 2.0f) : 1.0f;
        r *= (n & 2) != 0 ? (neg ? 0x1p-2f : 0x1p2f) : 1.0f;
        r *= (n & 4) != 0 ? (neg ? 0x1p-4f : 0x1p4f) : 1.0f;
        r *= (n & 8) != 0 ? (neg ? 0x1p-8f : 0x1p8f) : 1.0f;
        r *= (n & 16) != 0 ? (neg ? 0x1p-16f : 0x1p16f) : 1.0f;
        r *= (n & 32) != 0 ? (neg ? 0x1p-32f : 0x1p32f) : 1.0f;
        r *= (n & 64) != 0 ? (neg ? 0x1p-64f : 0x1p64f) : 1.0f;
        r *= (n & 128) != 0 ? 0x1p-128f : 1.0f; // only reached for e ≤ -128
        return r;
    }

    /** IEEE half → float from its 16 bits, with arithmetic only. */
    public static float halfToFloat(int h) {
        int sign = (h >> 15) & 1;
        int exp = (h >> 10) & 31;
        int man = h & 1023;
        float v;
        if (exp == 0) {
            v = man * pow2(-24);
        } else if (exp == 31) {
            v = man == 0 ? Float.POSITIVE_INFINITY : Float.NaN;
        } else {
            v = (1024 + man) * pow2(exp - 25);
        }
        return sign == 1 ? -v : v;
    }

    /**
     * IEEE half → float for a finite half (exponent field below 31), with arithmetic only and no NaN
     * or infinity constant: the form device kernels use (TornadoVM's OpenCL code generator emits an
     * undeclared {@code NaNF} for {@code Float.NaN}). A device plan checks its F16 weights are finite
     * when it uploads them.
     */
    public static float finiteHalfToFloat(int h) {
        int exp = (h >> 10) & 31;
        int normal = (exp + 31) >> 5; // 1 for a normal half, 0 for zero and subnormals: no branch
        // (1024 + man)·2^(exp−25), or man·2^−24: an 11-bit integer times a power of two, both exact in float
        float v = (float) ((h & 1023) + (normal << 10)) * (float) (1 << (exp - normal)) * 0x1p-24f;
        return ((h >> 15) & 1) == 1 ? -v : v;
    }

    /** bfloat16 → float from its 16 bits, with arithmetic only. */
    public static float bf16ToFloat(int b) {
        int sign = (b >> 15) & 1;
        int exp = (b >> 7) & 255;
        int man = b & 127;
        float v;
        if (exp == 0) {
            v = man * pow2(-133);
        } else if (exp == 255) {
            v = man == 0 ? Float.POSITIVE_INFINITY : Float.NaN;
        } else {
            v = (128 + man) * pow2(exp - 134);
        }
        return sign == 1 ? -v : v;
    }

    static int u8(byte[] a, int i) {
        return a[i] & 0xff;
    }

    static int u16(byte[] a, int i) {
        return (a[i] & 0xff) | (a[i + 1] & 0xff) << 8;
    }

    /**
     * Naive oracle: decodes {@code n} elements of type {@code type} starting at byte {@code off} of
     * {@code src} (n a multiple of the block size) into {@code dst[dstOff..]}.
     */
    public static void naive(GgmlType type, byte[] src, int off, float[] dst, int dstOff, int n) {
        int nb = n / type.blockSize;
        for (int b = 0; b < nb; b++) {
            int p = off + b * type.typeSize;
            int y = dstOff + b * type.blockSize;
            switch (type) {
                case F32 -> {
                    int bits = u16(src, p) | u16(src, p + 2) << 16;
                    dst[y] = Float.intBitsToFloat(bits); // oracle only; kernels use segment reads
                }
                case F16 -> dst[y] = halfToFloat(u16(src, p));
                case BF16 -> dst[y] = bf16ToFloat(u16(src, p));
                case Q8_0 -> {
                    float d = halfToFloat(u16(src, p));
                    for (int j = 0; j < 32; j++) {
                        dst[y + j] = d * src[p + 2 + j];
                    }
                }
                case Q4_0 -> {
                    float d = halfToFloat(u16(src, p));
                    for (int j = 0; j < 16; j++) {
                        int q = u8(src, p + 2 + j);
                        dst[y + j] = d * ((q & 15) - 8);
                        dst[y + j + 16] = d * ((q >> 4) - 8);
                    }
                }
                case Q4_1 -> {
                    float d = halfToFloat(u16(src, p));
                    float m = halfToFloat(u16(src, p + 2));
                    for (int j = 0; j < 16; j++) {
                        int q = u8(src, p + 4 + j);
                        dst[y + j] = d * (q & 15) + m;
                        dst[y + j + 16] = d * (q >> 4) + m;
                    }
                }
                case Q5_0, Q5_1 -> {
                    boolean one = type == GgmlType.Q5_1;
                    float d = halfToFloat(u16(src, p));
                    float m = one ? halfToFloat(u16(src, p + 2)) : 0f;
                    int h = one ? p + 4 : p + 2;
                    long qh = u16(src, h) | (long) u16(src, h + 2) << 16;
                    for (int j = 0; j < 16; j++) {
                        int q = u8(src, h + 4 + j);
                        int x0 = (q & 15) | (int) (((qh >> j) << 4) & 16);
                        int x1 = (q >> 4) | (int) ((qh >> (j + 12)) & 16);
                        if (one) {
                            dst[y + j] = d * x0 + m;
                            dst[y + j + 16] = d * x1 + m;
                        } else {
                            dst[y + j] = d * (x0 - 16);
                            dst[y + j + 16] = d * (x1 - 16);
                        }
                    }
                }
                case Q4_K, Q5_K -> {
                    boolean five = type == GgmlType.Q5_K;
                    float d = halfToFloat(u16(src, p));
                    float dmin = halfToFloat(u16(src, p + 2));
                    int sc = p + 4;
                    int qh = p + 16;
                    int qs = five ? p + 48 : p + 16;
                    for (int j = 0; j < 4; j++) {
                        float d1 = d * scaleK4(src, sc, 2 * j, false), m1 = dmin * scaleK4(src, sc, 2 * j, true);
                        float d2 = d * scaleK4(src, sc, 2 * j + 1, false), m2 = dmin * scaleK4(src, sc, 2 * j + 1, true);
                        for (int l = 0; l < 32; l++) {
                            int q = u8(src, qs + 32 * j + l);
                            int h1 = five && (u8(src, qh + l) & (1 << (2 * j))) != 0 ? 16 : 0;
                            int h2 = five && (u8(src, qh + l) & (2 << (2 * j))) != 0 ? 16 : 0;
                            dst[y + 64 * j + l] = d1 * ((q & 15) + h1) - m1;
                            dst[y + 64 * j + 32 + l] = d2 * ((q >> 4) + h2) - m2;
                        }
                    }
                }
                case Q6_K -> {
                    int ql = p;
                    int qh = p + 128;
                    int sc = p + 192;
                    float d = halfToFloat(u16(src, p + 208));
                    for (int n128 = 0; n128 < 2; n128++) {
                        for (int l = 0; l < 32; l++) {
                            int is = l / 16;
                            int h = u8(src, qh + 32 * n128 + l);
                            int a = u8(src, ql + 64 * n128 + l);
                            int c = u8(src, ql + 64 * n128 + l + 32);
                            int q1 = ((a & 15) | ((h & 3) << 4)) - 32;
                            int q2 = ((c & 15) | (((h >> 2) & 3) << 4)) - 32;
                            int q3 = ((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
                            int q4 = ((c >> 4) | (((h >> 6) & 3) << 4)) - 32;
                            int s = sc + 8 * n128 + is;
                            int o = y + 128 * n128 + l;
                            dst[o] = d * src[s] * q1;
                            dst[o + 32] = d * src[s + 2] * q2;
                            dst[o + 64] = d * src[s + 4] * q3;
                            dst[o + 96] = d * src[s + 6] * q4;
                        }
                    }
                }
                default -> throw new IllegalArgumentException("cannot decode " + type);
            }
        }
    }

    /** ggml's get_scale_min_k4: the 6-bit scale (min = false) or min (min = true) of sub-block j. */
    static int scaleK4(byte[] q, int o, int j, boolean min) {
        if (j < 4) {
            return min ? u8(q, o + j + 4) & 63 : u8(q, o + j) & 63;
        }
        return min ? (u8(q, o + j + 4) >> 4) | ((u8(q, o + j) >> 6) << 4)
                : (u8(q, o + j + 4) & 15) | ((u8(q, o + j - 4) >> 6) << 4);
    }

    // ---- fast twin over memory-mapped weights ----

    /** Row {@code row} of {@code w} (any type, k-bit ones included), decoded into {@code dst[dstOff .. dstOff + cols)}. */
    public static void row(Weight w, int row, float[] dst, int dstOff) {
        if (!w.type().ggml) {
            Kbit.decode(w, (long) row * w.cols(), dst, dstOff, w.cols());
            return;
        }
        range(w.type(), w.data(), row * w.rowBytes(), dst, dstOff, w.cols(), w.name());
    }

    /** The whole matrix {@code w} as floats (rows, cols): for merging and requantizing, never in a forward pass. */
    public static float[] matrix(Weight w) {
        float[] m = new float[Math.multiplyExact(w.rows(), w.cols())];
        Threads.parallelFor(w.rows(), 2L * w.cols(), (from, to) -> {
            for (int r = from; r < to; r++) {
                row(w, r, m, r * w.cols());
            }
        });
        return m;
    }

    /** {@code n} fp16 values at byte {@code off} into {@code dst[dstOff..]}: a loop C2 vectorizes into the hardware conversion. */
    static void halves(MemorySegment seg, long off, float[] dst, int dstOff, int n) {
        for (int i = 0; i < n; i++) {
            dst[dstOff + i] = Float.float16ToFloat(seg.get(SHORT, off + 2L * i));
        }
    }

    /** {@code n} elements of {@code type} at byte {@code off} of {@code seg} into {@code dst[dstOff..]}. */
    public static void range(GgmlType type, MemorySegment seg, long off, float[] dst, int dstOff, int n, String name) {
        switch (type) {
            case F32 -> MemorySegment.copy(seg, FLOAT, off, dst, dstOff, n);
            case F16 -> halves(seg, off, dst, dstOff, n);
            case BF16 -> {
                for (int i = 0; i < n; i++) {
                    dst[dstOff + i] = Float.intBitsToFloat(seg.get(SHORT, off + 2L * i) << 16);
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    long p = off + 34L * b;
                    float d = Float.float16ToFloat(seg.get(SHORT, p));
                    for (int j = 0; j < 32; j++) {
                        dst[dstOff + 32 * b + j] = d * seg.get(ValueLayout.JAVA_BYTE, p + 2 + j);
                    }
                }
            }
            case Q4_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    long p = off + 18L * b;
                    float d = Float.float16ToFloat(seg.get(SHORT, p));
                    int y = dstOff + 32 * b;
                    for (int j = 0; j < 16; j++) {
                        int q = seg.get(ValueLayout.JAVA_BYTE, p + 2 + j) & 0xff;
                        dst[y + j] = d * ((q & 15) - 8);
                        dst[y + j + 16] = d * ((q >> 4) - 8);
                    }
                }
            }
            default -> {
                // the remaining types: copy the row's blocks out and run the bit-exact oracle
                if (!type.ggml) {
                    throw new IllegalArgumentException(name + ": " + type + " is blocked over the whole matrix; decode it with row()");
                }
                if (!(type == GgmlType.Q4_1 || type == GgmlType.Q5_0 || type == GgmlType.Q5_1 || type == GgmlType.Q4_K
                        || type == GgmlType.Q5_K || type == GgmlType.Q6_K)) {
                    throw new IllegalArgumentException(name + ": tensor type " + type + " is not supported");
                }
                byte[] bytes = BYTES.get();
                int len = (int) type.byteSize(n);
                if (bytes.length < len) {
                    bytes = new byte[len];
                    BYTES.set(bytes);
                }
                MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, off, bytes, 0, len);
                naive(type, bytes, 0, dst, dstOff, n);
            }
        }
    }

    private static final ThreadLocal<byte[]> BYTES = ThreadLocal.withInitial(() -> new byte[0]);
}

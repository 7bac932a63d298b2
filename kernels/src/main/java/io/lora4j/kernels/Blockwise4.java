package io.lora4j.kernels;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * bitsandbytes' 4-bit blockwise quantization (NF4 and FP4, {@code quantize_4bit} /
 * {@code dequantize_4bit}) of a flattened matrix, and the fused dequantize-and-multiply.
 * Glossary: n = rows·cols elements; i = r·cols + c the flat (row-major) index; block b = i / 64
 * with scale absmax[b]; packed[i / 2] holds element i in its high nibble when i is even, in its
 * low nibble when odd (a block can start inside a row and end in the next one); w[i] =
 * code[nibble]·absmax[b].
 * <p>
 * Quantization follows bitsandbytes' CUDA kernels: x is multiplied by 1/absmax and coded by
 * {@code dQuantizeNF4} / {@code dQuantizeFP4}, decision trees on the midpoints between codes
 * with strict comparisons, so a value exactly on a midpoint gets the lower code. A block of zeros
 * (absmax 0) is coded as torch-native bitsandbytes does it (1/max(absmax, 1e-38), i.e. the code of
 * 0.0); the last, unused low nibble of an odd-sized matrix is the code of 0.0 too. The naive
 * kernels use TornadoVM's subset (plain arrays, {@code @Parallel} outer loops, no allocation,
 * signed-byte arithmetic without {@code & 0xff}); the fast twins read the packed segment of a
 * {@link Weight} (layout in {@link Kbit}).
 */
public final class Blockwise4 {
    /** Elements per absmax block. */
    public static final int BLOCK = 64;

    /** bitsandbytes' NF4 code values ({@code nf4_dequantization_lut}), indexed by the 4-bit code. */
    public static final float[] NF4 = {
            -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
            -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
            0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
            0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f};

    /**
     * bitsandbytes' FP4 values ({@code fp4_dequantization_lut}, 1 sign bit 0b1000 then 2 exponent
     * and 1 mantissa bit, bias 2, normalised by 12): {0, 0.0625, 8, 12, 4, 6, 2, 3}/12 and negatives.
     */
    public static final float[] FP4 = {
            0.0f, 0.005208333333f, 0.66666667f, 1.0f, 0.33333333f, 0.5f, 0.16666667f, 0.25f,
            -0.0f, -0.005208333333f, -0.66666667f, -1.0f, -0.33333333f, -0.5f, -0.16666667f, -0.25f};

    private Blockwise4() {
    }

    /** bitsandbytes' {@code dQuantizeNF4}: the NF4 code of x ∈ [-1, 1] by its decision tree (midpoints as float literals). */
    public static int quantizeNf4(float x) {
        if (x > 0.03979014977812767f) {
            if (x > 0.3893125355243683f) {
                if (x > 0.6427869200706482f) {
                    return x > 0.8614784181118011f ? 15 : 14;
                }
                return x > 0.5016634166240692f ? 13 : 12;
            }
            if (x > 0.2035212516784668f) {
                return x > 0.2920137718319893f ? 11 : 10;
            }
            return x > 0.1202552504837513f ? 9 : 8;
        }
        if (x > -0.33967943489551544f) {
            if (x > -0.13791173323988914f) {
                return x > -0.045525018125772476f ? 7 : 6;
            }
            return x > -0.23460740596055984f ? 5 : 4;
        }
        if (x > -0.6106329262256622f) {
            return x > -0.4599952697753906f ? 3 : 2;
        }
        return x > -0.8480964004993439f ? 1 : 0;
    }

    /** bitsandbytes' {@code dQuantizeFP4}: sign bit for x &lt; 0, then a tree on |x| (pivots divided by 12). */
    public static int quantizeFp4(float x) {
        int sign = x < 0 ? 8 : 0;
        float a = Math.abs(x);
        if (a > 0.29166667f) {
            if (a > 0.583333f) {
                return (a > 0.8333333f ? 3 : 2) + sign;
            }
            return (a > 0.4166667f ? 5 : 4) + sign;
        }
        if (a > 0.0859375f) {
            return (a > 0.20833333f ? 7 : 6) + sign;
        }
        return (a > 0.00260417f ? 1 : 0) + sign;
    }

    static int code(float x, boolean nf4) {
        return nf4 ? quantizeNf4(x) : quantizeFp4(x);
    }

    /**
     * Naive quantizer, blocks [fromBlock, toBlock) of x (n elements): absmax[b] = max |x| of the
     * block, codes of x·(1/absmax) packed two per byte, the even element in the high nibble.
     *
     * @param packed (ceil(n/2)) out
     * @param absmax (ceil(n/64)) out
     * @param x      (n) the flattened matrix
     */
    public static void quantize(byte[] packed, float[] absmax, float[] x, int n, boolean nf4, int fromBlock, int toBlock) {
        for (@Parallel int b = fromBlock; b < toBlock; b++) {
            int start = b * BLOCK;
            int end = Math.min(start + BLOCK, n);
            float amax = Blockwise8.absmax(x, start, end);
            absmax[b] = amax;
            float inv = 1f / Math.max(amax, 1e-38f);
            for (int i = start; i < end; i += 2) {
                int hi = code(x[i] * inv, nf4);
                int lo = code(i + 1 < end ? x[i + 1] * inv : 0f, nf4);
                packed[i >> 1] = (byte) ((hi << 4) | lo);
            }
        }
    }

    /**
     * Naive dequantization: out[i] = code[nibble i]·absmax[i / 64].
     *
     * @param out    (n)
     * @param packed (ceil(n/2))
     * @param absmax (ceil(n/64)) per-block scales (already decoded when double-quantized)
     * @param code   (16) {@link #NF4} or {@link #FP4}
     */
    public static void dequantize(float[] out, byte[] packed, float[] absmax, float[] code, int n) {
        for (@Parallel int i = 0; i < n; i++) {
            out[i] = weight(packed, absmax, code, i);
        }
    }

    /** Element i of the flattened matrix (shared by the naive kernels; signed bytes, no {@code & 0xff}). */
    static float weight(byte[] packed, float[] absmax, float[] code, int i) {
        int b = packed[i >> 1];
        int q = (i & 1) == 0 ? (b >> 4) & 15 : b & 15;
        return code[q] * absmax[i / BLOCK];
    }

    // ---- fast twins over a Weight's segment (layout: Kbit) ----

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /**
     * The vector paths run at 16 float lanes (AVX-512: one L-byte load is 2L elements, the 16-entry table
     * one register) or 8 (AVX2: the table in two registers, entries 0–7 and 8–15).
     */
    static final boolean VECTOR = (L == 16 || L == 8) && !Boolean.getBoolean("lora4j.noFusedKernels");
    private static final VectorSpecies<Byte> QB = L == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;
    private static final VectorSpecies<Integer> QI = L == 16 ? IntVector.SPECIES_512 : IntVector.SPECIES_256;
    /** The code tables as int bits, for {@code selectFrom} on nibble indices (a lane permute, vpermd): entries 0..L and, at 8 lanes, 8..16. */
    private static final IntVector NF4_V = VECTOR ? FloatVector.fromArray(F, NF4, 0).reinterpretAsInts() : null;
    private static final IntVector FP4_V = VECTOR ? FloatVector.fromArray(F, FP4, 0).reinterpretAsInts() : null;
    private static final IntVector NF4_V8 = VECTOR && L == 8 ? FloatVector.fromArray(F, NF4, 8).reinterpretAsInts() : null;
    private static final IntVector FP4_V8 = VECTOR && L == 8 ? FloatVector.fromArray(F, FP4, 8).reinterpretAsInts() : null;
    private static final VectorShuffle<Float> ZIP0 = VECTOR ? VectorShuffle.makeZip(F, 0) : null;
    private static final VectorShuffle<Float> ZIP1 = VECTOR ? VectorShuffle.makeZip(F, 1) : null;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    static float[] table(GgmlType t) {
        return t == GgmlType.NF4 || t == GgmlType.NF4_DQ ? NF4 : FP4;
    }

    private static IntVector tableVector(GgmlType t) {
        return t == GgmlType.NF4 || t == GgmlType.NF4_DQ ? NF4_V : FP4_V;
    }

    /** The second half of the table (entries 8..16) at 8 lanes; null at 16. */
    private static IntVector tableVector8(GgmlType t) {
        return t == GgmlType.NF4 || t == GgmlType.NF4_DQ ? NF4_V8 : FP4_V8;
    }

    /**
     * Where a 4-bit matrix keeps its block scales: the fp32 absmax, or (double-quantized) the 8-bit
     * codes, the fp32 absmax2 per 256 blocks and the offset. Computed once per row product.
     */
    private record Scales(MemorySegment s, boolean dq, long stats, long absmax2, float offset) {
        static Scales of(Weight w) {
            long n = (long) w.rows() * w.cols();
            boolean dq = Kbit.doubleQuant(w.type());
            return new Scales(w.data(), dq, Kbit.statsOffset(w.type(), n), dq ? Kbit.absmax2Offset(n) : 0,
                    dq ? w.data().get(FLOAT, Kbit.offsetOffset(n)) : 0f);
        }

        /** Scale of block b: the stored absmax, or code8[q]·absmax2[b / 256] + offset when double-quantized. */
        float absmax(long b) {
            if (!dq) {
                return s.get(FLOAT, stats + 4 * b);
            }
            int q = s.get(ValueLayout.JAVA_BYTE, stats + b) & 0xff;
            return Blockwise8.DYNAMIC[q] * s.get(FLOAT, absmax2 + 4 * (b / Blockwise8.DQ_BLOCK)) + offset;
        }
    }

    /** Whether row r's decode and dot can run on whole blocks: every row starts a block. */
    static boolean vectorRows(Weight w) {
        return VECTOR && w.cols() % BLOCK == 0;
    }

    /**
     * x (cols, even) deinterleaved into xd: xd[k] = x[2k], xd[cols/2 + k] = x[2k+1], so the high
     * and low nibbles of a row's bytes meet their inputs without a shuffle.
     */
    static void deinterleave(float[] xd, float[] x, int cols) {
        int h = cols / 2;
        for (int k = 0; k < h; k++) {
            xd[k] = x[2 * k];
            xd[h + k] = x[2 * k + 1];
        }
    }

    /**
     * Fused decode-and-dot of row r with the deinterleaved input xd (cols a multiple of 64): per block,
     * the 32 bytes zero-extended to ints once, high and low nibbles looked up in the table in
     * registers and multiplied into two accumulators, then scaled by the block's absmax.
     */
    static float dot(Weight w, int r, float[] xd) {
        int cols = w.cols();
        int h = cols / 2;
        MemorySegment s = w.data();
        Scales sc = Scales.of(w);
        IntVector table = tableVector(w.type()), table8 = tableVector8(w.type());
        long base = (long) r * h;
        long b0 = (long) r * (cols / BLOCK);
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < cols / BLOCK; b++) {
            int k = 32 * b;
            IntVector q0 = bytes(s, base + k);
            FloatVector hi = hi(table, table8, q0).mul(FloatVector.fromArray(F, xd, k));
            FloatVector lo = lo(table, table8, q0).mul(FloatVector.fromArray(F, xd, h + k));
            for (int j = L; j < 32; j += L) {
                IntVector q = bytes(s, base + k + j);
                hi = hi(table, table8, q).fma(FloatVector.fromArray(F, xd, k + j), hi);
                lo = lo(table, table8, q).fma(FloatVector.fromArray(F, xd, h + k + j), lo);
            }
            acc = hi.add(lo).fma(FloatVector.broadcast(F, sc.absmax(b0 + b)), acc);
        }
        for (VectorShuffle<Float> fold : Matmul.FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /** L packed bytes at o, zero-extended to int lanes. */
    private static IntVector bytes(MemorySegment s, long o) {
        return (IntVector) ByteVector.fromMemorySegment(QB, s, o, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, QI, 0);
    }

    private static FloatVector hi(IntVector table, IntVector table8, IntVector q) {
        return look(table, table8, q.lanewise(VectorOperators.LSHR, 4));
    }

    private static FloatVector lo(IntVector table, IntVector table8, IntVector q) {
        return look(table, table8, q.and(15));
    }

    /** table[i] for the nibbles i: one permute at 16 lanes; at 8, a permute of each half and a blend on i ≥ 8. */
    private static FloatVector look(IntVector table, IntVector table8, IntVector i) {
        if (L == 16) {
            return i.selectFrom(table).reinterpretAsFloats();
        }
        IntVector i7 = i.and(7);
        return i7.selectFrom(table).blend(i7.selectFrom(table8), i.compare(VectorOperators.GE, 8)).reinterpretAsFloats();
    }

    /** Elements [first, first + n) of the flattened matrix into dst[off..], in order. */
    static void decode(Weight w, long first, float[] dst, int off, int n) {
        MemorySegment s = w.data();
        Scales sc = Scales.of(w);
        float[] code = table(w.type());
        long i = first;
        long end = first + n;
        int o = off;
        if (VECTOR && first % BLOCK == 0) {
            IntVector table = tableVector(w.type()), table8 = tableVector8(w.type());
            for (; i + BLOCK <= end; i += BLOCK, o += BLOCK) {
                FloatVector a = FloatVector.broadcast(F, sc.absmax(i / BLOCK));
                for (int k = 0; k < 32; k += L) {
                    IntVector q = bytes(s, i / 2 + k);
                    FloatVector h = hi(table, table8, q).mul(a);
                    FloatVector l = lo(table, table8, q).mul(a);
                    h.rearrange(ZIP0, l).intoArray(dst, o + 2 * k);
                    h.rearrange(ZIP1, l).intoArray(dst, o + 2 * k + L);
                }
            }
        }
        while (i < end) {
            long blockEnd = Math.min(end, (i / BLOCK + 1) * BLOCK);
            float a = sc.absmax(i / BLOCK);
            for (; i < blockEnd; i++, o++) {
                int b = s.get(ValueLayout.JAVA_BYTE, i >> 1);
                int q = (i & 1) == 0 ? (b >> 4) & 15 : b & 15;
                dst[o] = code[q] * a;
            }
        }
    }
}

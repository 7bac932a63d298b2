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
 * 8-bit weights, two variants from bitsandbytes:
 * <pre>
 * INT8     symmetric absmax per row (LLM.int8's {@code int8_vectorwise_quant} / {@code _dequant}):
 *          q = round(x·(127/rowmax)) (half to even, as torch.round), stored with rowmax (bitsandbytes' SCB),
 *          w = q·rowmax·(1/127 as float32, 7.874015718698502e-3)
 * INT8_ZP  asymmetric, zero point per block of 64 of the flattened matrix (bitsandbytes' former
 *          {@code vectorwise_quant(quant_type="zeropoint")}, per block instead of per row):
 *          qx = 255/(max − min) (1 when max = min), z = round(min·qx), q = round(qx·x − z) clamped to
 *          0..255 as uint8, w = (q + z)·d with d = 1/qx (the dequantization multiplies by 1/S)
 * </pre>
 * Glossary: n = rows·cols, i = r·cols + c, b = i / 64. The naive kernels are in TornadoVM's subset
 * (the uint8 of INT8_ZP is made unsigned by adding 256, not with {@code & 0xff}); the fast twins
 * read a {@link Weight}'s segment (layout in {@link Kbit}).
 */
public final class Int8 {
    /** Elements per zero-point block. */
    public static final int ZP_BLOCK = 64;
    /** bitsandbytes' 1/127 ({@code int8_vectorwise_dequant}). */
    static final float INV127 = 7.874015718698502e-3f;

    private Int8() {
    }

    /**
     * Naive row-absmax quantizer over rows [fromRow, toRow) (an all-zero row gets scale 0, q 0).
     *
     * @param q     (rows·cols) out
     * @param rowmax (rows) out, max |x| of each row
     * @param x      (rows·cols)
     */
    public static void quantizeRows(byte[] q, float[] rowmax, float[] x, int cols, int fromRow, int toRow) {
        for (@Parallel int r = fromRow; r < toRow; r++) {
            float amax = 0f;
            for (int c = 0; c < cols; c++) {
                amax = Math.max(amax, Math.abs(x[r * cols + c]));
            }
            rowmax[r] = amax;
            float f = amax > 0f ? 127f / amax : 0f;
            for (int c = 0; c < cols; c++) {
                q[r * cols + c] = (byte) Math.rint(x[r * cols + c] * f);
            }
        }
    }

    /**
     * Naive zero-point quantizer over blocks [fromBlock, toBlock) of the flattened matrix (a
     * constant block has max − min taken as 1, as bitsandbytes does).
     *
     * @param q     (n) out, uint8 values in signed bytes
     * @param stats (2·ceil(n/64)) out, (d, z) per block
     */
    public static void quantizeZeroPoint(byte[] q, float[] stats, float[] x, int n, int fromBlock, int toBlock) {
        for (@Parallel int b = fromBlock; b < toBlock; b++) {
            int start = b * ZP_BLOCK;
            int end = Math.min(start + ZP_BLOCK, n);
            float lo = x[start], hi = x[start];
            for (int i = start; i < end; i++) {
                lo = Math.min(lo, x[i]);
                hi = Math.max(hi, x[i]);
            }
            float dyna = hi - lo;
            if (dyna == 0f) {
                dyna = 1f;
            }
            float qx = 255f / dyna;
            float z = (float) Math.rint(lo * qx);
            stats[2 * b] = 1f / qx;
            stats[2 * b + 1] = z;
            for (int i = start; i < end; i++) {
                float v = (float) Math.rint(qx * x[i] - z);
                q[i] = (byte) (int) Math.max(0f, Math.min(255f, v));
            }
        }
    }

    /** Element i of an INT8 matrix: q·rowmax·(1/127). */
    static float rowWeight(byte[] q, float[] rowmax, int cols, int i) {
        return q[i] * rowmax[i / cols] * INV127;
    }

    /** Element i of an INT8_ZP matrix: (q + z)·d of its block. */
    static float zpWeight(byte[] q, float[] stats, int i) {
        int v = q[i];
        if (v < 0) {
            v += 256;
        }
        int b = i / ZP_BLOCK;
        return (v + stats[2 * b + 1]) * stats[2 * b];
    }

    // ---- fast twins over a Weight's segment (layout: Kbit) ----

    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** AVX-512 (16 float lanes: 16 bytes widened to 16 ints) or AVX2 (8 lanes: 8 bytes to 8 ints). */
    static final boolean VECTOR = (L == 16 || L == 8) && !Boolean.getBoolean("lora4j.noFusedKernels");
    private static final VectorSpecies<Byte> QB = L == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;
    private static final VectorSpecies<Integer> QI = L == 16 ? IntVector.SPECIES_512 : IntVector.SPECIES_256;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private static float rowMax(Weight w, int r) {
        return w.data().get(FLOAT, Kbit.statsOffset(w.type(), (long) w.rows() * w.cols()) + 4L * r);
    }

    private static float zpStat(Weight w, long b, int k) {
        return w.data().get(FLOAT, Kbit.statsOffset(w.type(), (long) w.rows() * w.cols()) + 8 * b + 4L * k);
    }

    /** Whether the fused dot applies: INT8 rows of whole vectors, INT8_ZP rows of whole blocks. */
    static boolean vectorRows(Weight w) {
        return VECTOR && w.cols() % (w.type() == GgmlType.INT8 ? L : ZP_BLOCK) == 0;
    }

    /** Fused decode-and-dot of row r with x. */
    static float dot(Weight w, int r, float[] x) {
        MemorySegment s = w.data();
        int cols = w.cols();
        long base = (long) r * cols;
        if (w.type() == GgmlType.INT8) {
            FloatVector acc = FloatVector.zero(F);
            for (int c = 0; c < cols; c += L) {
                FloatVector q = (FloatVector) ByteVector.fromMemorySegment(QB, s, base + c, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, F, 0);
                acc = q.fma(FloatVector.fromArray(F, x, c), acc);
            }
            for (VectorShuffle<Float> fold : Matmul.FOLDS) {
                acc = acc.add(acc.rearrange(fold));
            }
            return acc.lane(0) * rowMax(w, r) * INV127;
        }
        FloatVector acc = FloatVector.zero(F);
        long b0 = base / ZP_BLOCK;
        for (int b = 0; b < cols / ZP_BLOCK; b++) {
            FloatVector z = FloatVector.broadcast(F, zpStat(w, b0 + b, 1));
            FloatVector sum = FloatVector.zero(F);
            for (int k = 0; k < ZP_BLOCK; k += L) {
                int c = b * ZP_BLOCK + k;
                sum = unsigned(s, base + c).add(z).fma(FloatVector.fromArray(F, x, c), sum);
            }
            acc = sum.fma(FloatVector.broadcast(F, zpStat(w, b0 + b, 0)), acc);
        }
        for (VectorShuffle<Float> fold : Matmul.FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    private static FloatVector unsigned(MemorySegment s, long o) {
        IntVector i = (IntVector) ByteVector.fromMemorySegment(QB, s, o, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, QI, 0);
        return (FloatVector) i.convertShape(VectorOperators.I2F, F, 0);
    }

    /** Elements [first, first + n) of the flattened matrix into dst[off..], in order. */
    static void decode(Weight w, long first, float[] dst, int off, int n) {
        MemorySegment s = w.data();
        int cols = w.cols();
        long i = first;
        long end = first + n;
        int o = off;
        boolean zp = w.type() == GgmlType.INT8_ZP;
        int block = zp ? ZP_BLOCK : cols;
        while (i < end) {
            long blockEnd = Math.min(end, (i / block + 1) * block);
            float d = zp ? zpStat(w, i / block, 0) : rowMax(w, (int) (i / cols));
            float z = zp ? zpStat(w, i / block, 1) : 0f;
            if (VECTOR) {
                // the same two roundings as the scalar tail: (q + z)·d, or (q·rowmax)·(1/127)
                FloatVector vd = FloatVector.broadcast(F, d);
                for (; i + L <= blockEnd; i += L, o += L) {
                    FloatVector v = zp ? unsigned(s, i).add(z).mul(vd)
                            : ((FloatVector) ByteVector.fromMemorySegment(QB, s, i, ByteOrder.LITTLE_ENDIAN)
                            .convertShape(VectorOperators.B2F, F, 0)).mul(vd).mul(INV127);
                    v.intoArray(dst, o);
                }
            }
            for (; i < blockEnd; i++, o++) {
                byte q = s.get(ValueLayout.JAVA_BYTE, i);
                dst[o] = zp ? ((q & 0xff) + z) * d : q * d * INV127;
            }
        }
    }
}

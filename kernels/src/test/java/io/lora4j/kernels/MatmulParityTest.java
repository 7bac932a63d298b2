package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;


import static io.lora4j.kernels.OpsParityTest.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static io.lora4j.kernels.OpsParityTest.random;

/** The fast matrix kernels against the naive oracles, for every weight type, on odd sizes. */
class MatmulParityTest {

    /** Random valid bytes of {@code type}: random quants, sane fp16 scales at the right offsets. */
    static byte[] randomWeights(GgmlType type, int rows, int cols, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        byte[] b = new byte[(int) (rows * type.byteSize(cols))];
        switch (type) {
            case F32 -> {
                for (int i = 0; i < b.length; i += 4) {
                    int bits = Float.floatToIntBits((float) (r.nextDouble() * 2 - 1));
                    for (int k = 0; k < 4; k++) {
                        b[i + k] = (byte) (bits >> (8 * k));
                    }
                }
            }
            case F16, BF16 -> {
                for (int i = 0; i < b.length; i += 2) {
                    float v = (float) (r.nextDouble() * 2 - 1);
                    int bits = type == GgmlType.F16 ? Float.floatToFloat16(v) : Float.floatToIntBits(v) >>> 16;
                    b[i] = (byte) bits;
                    b[i + 1] = (byte) (bits >> 8);
                }
            }
            default -> {
                r.nextBytes(b);
                int[] halfAt = switch (type) {
                    case Q8_0, Q4_0, Q5_0 -> new int[]{0};
                    case Q4_1, Q5_1, Q4_K, Q5_K -> new int[]{0, 2};
                    case Q6_K -> new int[]{208};
                    default -> throw new IllegalArgumentException(type.name());
                };
                for (int blk = 0; blk < b.length / type.typeSize; blk++) {
                    for (int o : halfAt) {
                        DequantTest.putHalf(b, blk * type.typeSize + o, (float) (0.01 + 0.05 * r.nextDouble()));
                    }
                }
            }
        }
        return b;
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"})
    void forwardMatchesTheOracleForEveryType(GgmlType type) {
        int cols = type.blockSize == 256 ? 512 : type.blockSize == 32 ? 96 : 77;
        int rows = 37;
        byte[] wb = randomWeights(type, rows, cols, 3);
        Weight w = new Weight("w", type, MemorySegment.ofArray(wb), rows, cols);
        for (int T : new int[]{1, 3, 17, 64}) {
            float[] x = random(new SplittableRandom(T), T * cols);
            float[] want = new float[T * rows], got = new float[T * rows];
            Matmul.forwardNaive(want, x, wb, type, new float[cols], T, rows, cols);
            Matmul.forward(got, x, w, T);
            assertSums(type + " T=" + T, want, got, wb, type, x, T, rows, cols);
        }
    }

    /**
     * Sums in another order differ by rounding relative to Σ|w·x|, not to the (possibly cancelled)
     * result: |want − got| ≤ 1e-6 · Σ_c |w[r][c]·x[t][c]| for every output.
     */
    static void assertSums(String what, float[] want, float[] got, byte[] wb, GgmlType type, float[] x, int T, int rows, int cols) {
        float[] row = new float[cols];
        for (int r = 0; r < rows; r++) {
            Dequant.naive(type, wb, (int) (r * type.byteSize(cols)), row, 0, cols);
            for (int t = 0; t < T; t++) {
                double mag = 0;
                for (int c = 0; c < cols; c++) {
                    mag += Math.abs((double) row[c] * x[t * cols + c]);
                }
                double diff = Math.abs(want[t * rows + r] - got[t * rows + r]);
                if (diff > 1e-6 * mag + 1e-30) {
                    org.junit.jupiter.api.Assertions.fail(what + ": row " + r + " token " + t + " expected " + want[t * rows + r]
                            + ", got " + got[t * rows + r] + " (difference " + diff + ", Σ|w·x| " + mag + ")");
                }
            }
        }
    }

    /**
     * The one-pass F16 decode gives Float.float16ToFloat's bits for every half: normal, subnormal, ±0, ±∞;
     * a NaN keeps its sign and payload, quieted or not (the FMA that consumes it quiets it).
     */
    @Test
    void halvesDecodeEveryBitPatternExactly() {
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        MemorySegment seg = everyHalf();
        float[] got = new float[lanes];
        for (int h0 = 0; h0 < 65536; h0 += lanes) {
            Matmul.halves(seg, 2L * h0).intoArray(got, 0);
            for (int i = 0; i < lanes; i++) {
                float want = Float.float16ToFloat((short) (h0 + i));
                int quiet = Float.isNaN(want) ? 0x400000 : 0;
                if ((Float.floatToRawIntBits(want) | quiet) != (Float.floatToRawIntBits(got[i]) | quiet)) {
                    org.junit.jupiter.api.Assertions.fail(String.format("half 0x%04x: expected %s (0x%08x), got %s (0x%08x)", h0 + i,
                            want, Float.floatToRawIntBits(want), got[i], Float.floatToRawIntBits(got[i])));
                }
            }
        }
    }

    /** F16 decode: the same bits as the two-pass form it replaced (halves to floats, then the same two accumulators). */
    @Test
    void f16DecodeGivesTheTwoPassBits() {
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        for (int cols : new int[]{3 * lanes, 256}) {
            int rows = 9;
            byte[] wb = randomWeights(GgmlType.F16, rows, cols, 41);
            for (int i = 0; i < wb.length; i += 14) {
                wb[i + 1] &= (byte) 0x83; // some subnormal halves
            }
            Weight w = new Weight("w", GgmlType.F16, MemorySegment.ofArray(wb), rows, cols);
            assertTrue(w.finiteHalves());
            float[] x = random(new SplittableRandom(42), cols);
            float[] got = new float[rows];
            Matmul.forward(got, x, w, 1);
            assertArrayEquals(twoPassF16(wb, rows, cols, x), got, 0f, "cols " + cols);
        }
    }

    /**
     * A matrix with infinities and NaNs (its scan says so) takes the decode that handles them: ±∞ and NaN
     * come out of the rows that hold them as in the two-pass form, the other rows' bits unchanged.
     */
    @Test
    void f16WithInfinitiesOrNaNsTakesTheFullDecode() {
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        int rows = 9, cols = 4 * lanes;
        byte[] wb = randomWeights(GgmlType.F16, rows, cols, 43);
        int[][] specials = {{3, 5, 0x7c00}, {5, 1, 0x7e01}, {7, cols - 1, 0xfc00}, {8, 2, 0x7c00}, {8, 9, 0xfc00}};
        for (int[] sp : specials) {
            int at = 2 * (sp[0] * cols + sp[1]);
            wb[at] = (byte) sp[2];
            wb[at + 1] = (byte) (sp[2] >> 8);
        }
        Weight w = new Weight("w", GgmlType.F16, MemorySegment.ofArray(wb), rows, cols);
        assertFalse(w.finiteHalves());
        float[] x = random(new SplittableRandom(44), cols);
        float[] got = new float[rows];
        Matmul.forward(got, x, w, 1);
        float[] want = twoPassF16(wb, rows, cols, x);
        assertArrayEquals(want, got, 0f);
        assertTrue(Float.isInfinite(got[3]) && Float.isInfinite(got[7]) && Float.isNaN(got[5]) && !Float.isFinite(got[8]) && Float.isFinite(got[0]));
        float[] q = new float[rows], k = new float[3]; // the many-matrix form checks each matrix's own scan
        Weight finite = new Weight("f", GgmlType.F16, MemorySegment.ofArray(randomWeights(GgmlType.F16, 3, cols, 45)), 3, cols);
        Matmul.forward(new float[][]{q, k}, x, new Weight[]{w, finite}, 1);
        assertArrayEquals(want, q, 0f);
        assertTrue(finite.finiteHalves());
    }

    /** The two-pass F16 product: each row's halves to floats, then two accumulators over vector steps and the fold. */
    private static float[] twoPassF16(byte[] wb, int rows, int cols, float[] x) {
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        float[] out = new float[rows];
        float[] h = new float[cols];
        for (int r = 0; r < rows; r++) {
            Dequant.naive(GgmlType.F16, wb, r * 2 * cols, h, 0, cols);
            jdk.incubator.vector.FloatVector a0 = jdk.incubator.vector.FloatVector.zero(jdk.incubator.vector.FloatVector.SPECIES_PREFERRED), a1 = a0;
            int c = 0;
            for (; c + 2 * lanes <= cols; c += 2 * lanes) {
                a0 = jdk.incubator.vector.FloatVector.fromArray(a0.species(), h, c).fma(jdk.incubator.vector.FloatVector.fromArray(a0.species(), x, c), a0);
                a1 = jdk.incubator.vector.FloatVector.fromArray(a0.species(), h, c + lanes).fma(jdk.incubator.vector.FloatVector.fromArray(a0.species(), x, c + lanes), a1);
            }
            for (; c < cols; c += lanes) {
                a0 = jdk.incubator.vector.FloatVector.fromArray(a0.species(), h, c).fma(jdk.incubator.vector.FloatVector.fromArray(a0.species(), x, c), a0);
            }
            jdk.incubator.vector.FloatVector acc = a0.add(a1);
            for (var fold : Matmul.FOLDS) {
                acc = acc.add(acc.rearrange(fold));
            }
            out[r] = acc.lane(0);
        }
        return out;
    }

    /** The 65,536 fp16 bit patterns in order, little-endian. */
    private static MemorySegment everyHalf() {
        byte[] b = new byte[2 * 65536];
        for (int h = 0; h < 65536; h++) {
            b[2 * h] = (byte) h;
            b[2 * h + 1] = (byte) (h >> 8);
        }
        return MemorySegment.ofArray(b);
    }

    /** The decode for finite matrices gives Float.float16ToFloat's bits for every half that is not ±∞ or NaN. */
    @Test
    void finiteHalvesDecodeEveryFiniteBitPatternExactly() {
        int lanes = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
        MemorySegment seg = everyHalf();
        float[] got = new float[lanes];
        for (int h0 = 0; h0 < 65536; h0 += lanes) {
            Matmul.finiteHalves(seg, 2L * h0).intoArray(got, 0);
            for (int i = 0; i < lanes; i++) {
                float want = Float.float16ToFloat((short) (h0 + i));
                if (Float.isFinite(want)) {
                    assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got[i]), String.format("half 0x%04x", h0 + i));
                }
            }
        }
    }

    @Test
    void fusedGemvPathsOnVectorWidthColumnsAndTheManyMatrixForm() {
        for (GgmlType type : new GgmlType[]{GgmlType.F32, GgmlType.F16, GgmlType.Q8_0, GgmlType.Q4_0}) {
            int cols = 256, rows = 45;
            byte[] wb = randomWeights(type, rows, cols, 5);
            Weight w = new Weight("w", type, MemorySegment.ofArray(wb), rows, cols);
            byte[] wb2 = randomWeights(type, 19, cols, 6);
            Weight w2 = new Weight("w2", type, MemorySegment.ofArray(wb2), 19, cols);
            float[] x = random(new SplittableRandom(9), cols);
            float[] want = new float[rows], got = new float[rows], want2 = new float[19], got2 = new float[19];
            Matmul.forwardNaive(want, x, wb, type, new float[cols], 1, rows, cols);
            Matmul.forwardNaive(want2, x, wb2, type, new float[cols], 1, 19, cols);
            Matmul.forward(new float[][]{got, got2}, x, new Weight[]{w, w2}, 1);
            assertSums(type + " fused", want, got, wb, type, x, 1, rows, cols);
            assertSums(type + " fused second matrix", want2, got2, wb2, type, x, 1, 19, cols);
        }
    }

    /**
     * Every one of the 65,536 fp16 bit patterns through the fused F16 decode (T = 1) and through the
     * prefill decode (T = 2): row r holds the halves [256 r, 256 r + 256) and x is one-hot, so each
     * output is one decoded half, equal to {@link Float#float16ToFloat} (subnormals included; a sum
     * that starts at +0 turns -0 into +0; the rows holding infinities and NaNs must come out NaN, as IEEE says).
     */
    @Test
    void everyHalfDecodesExactlyInTheFusedAndThePrefillPaths() {
        int rows = 256, cols = 256;
        MemorySegment seg = MemorySegment.ofArray(new short[rows * cols]);
        for (int i = 0; i < rows * cols; i++) {
            seg.setAtIndex(ValueLayout.JAVA_SHORT, i, (short) i);
        }
        Weight w = new Weight("all-halves", GgmlType.F16, seg, rows, cols);
        float[] out1 = new float[rows], out2 = new float[2 * rows];
        for (int c = 0; c < cols; c += 37) {
            float[] x = new float[2 * cols];
            x[c] = 1f;
            x[cols + c] = 1f;
            Matmul.forward(out1, x, w, 1);
            Matmul.forward(out2, x, w, 2);
            for (int r = 0; r < rows; r++) {
                // rows 0x7c-0x7f and 0xfc-0xff hold the infinities and NaNs: Inf · 0 makes the whole row NaN
                boolean nonFinite = (r & 0x7c) == 0x7c;
                float want = nonFinite ? Float.NaN : Float.float16ToFloat((short) (r * cols + c));
                float got1 = out1[r], got2 = out2[rows + r];
                if (!(Float.isNaN(want) ? Float.isNaN(got1) && Float.isNaN(got2)
                        : want == got1 && want == got2)) {
                    throw new AssertionError("half 0x" + Integer.toHexString(r * cols + c) + ": want " + want + ", fused " + got1 + ", prefill " + got2);
                }
            }
        }
    }

    @Test
    void floatOracleAgreesWithTheByteOracle() {
        int rows = 5, cols = 64, T = 3;
        float[] w = random(new SplittableRandom(1), rows * cols);
        byte[] wb = new byte[4 * w.length];
        MemorySegment.copy(MemorySegment.ofArray(w), ValueLayout.JAVA_BYTE, 0, wb, 0, wb.length);
        float[] x = random(new SplittableRandom(2), T * cols);
        float[] a = new float[T * rows], b = new float[T * rows];
        Matmul.forwardNaive(a, x, w, T, rows, cols);
        Matmul.forwardNaive(b, x, wb, GgmlType.F32, new float[cols], T, rows, cols);
        assertClose("oracles", a, b, 0);
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "Q8_0", "Q4_K", "Q6_K"})
    void inputGradientMatchesTheOracle(GgmlType type) {
        int cols = type.blockSize == 256 ? 256 : 96, rows = 23, T = 7;
        byte[] wb = randomWeights(type, rows, cols, 4);
        Weight w = new Weight("w", type, MemorySegment.ofArray(wb), rows, cols);
        float[] wf = new float[rows * cols];
        for (int r = 0; r < rows; r++) {
            Dequant.naive(type, wb, (int) (r * type.byteSize(cols)), wf, r * cols, cols);
        }
        float[] dy = random(new SplittableRandom(8), T * rows);
        float[] want = random(new SplittableRandom(7), T * cols), got = want.clone();
        Matmul.backwardNaive(want, dy, wf, T, rows, cols, 1);
        Matmul.backward(got, dy, w, T, true);
        assertClose(type + " dx accumulate", want, got, 2e-5);
        Matmul.backwardNaive(want, dy, wf, T, rows, cols, 0);
        Matmul.backward(got, dy, w, T, false);
        assertClose(type + " dx assign", want, got, 2e-5);
    }

    @Test
    void gradientsOfTheProductMatchCentralDifferences() {
        int rows = 6, cols = 9, T = 3;
        SplittableRandom r = new SplittableRandom(11);
        float[] w = random(r, rows * cols), x = random(r, T * cols), g = random(r, T * rows);
        float[] out = new float[T * rows], dx = new float[T * cols], dw = new float[rows * cols];
        Matmul.backwardNaive(dx, g, w, T, rows, cols, 0);
        Matmul.backwardWeightNaive(dw, g, x, T, rows, cols);
        Runnable fwd = () -> Matmul.forwardNaive(out, x, w, T, rows, cols);
        GradCheck.check("x", x, dx, () -> GradCheck.loss(fwd, out, g), 1e-2);
        GradCheck.check("w", w, dw, () -> GradCheck.loss(fwd, out, g), 1e-2);
        float[] dw2 = new float[rows * cols];
        Matmul.backwardWeight(dw2, g, x, T, rows, cols);
        assertClose("dw fast", dw, dw2, 1e-5);
    }

    /** The device forms over F16 bits and over Q8_0 split into quants + scales, forward and input gradient. */
    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F16", "Q8_0"})
    void deviceFormsMatchTheFastKernels(GgmlType type) {
        int rows = 29, cols = 96;
        byte[] wb = randomWeights(type, rows, cols, 12);
        Weight w = new Weight("w", type, MemorySegment.ofArray(wb), rows, cols);
        int off = 64; // the matrix sits inside a larger buffer, as device plans pack a layer's matrices
        short[] h = new short[off + rows * cols];
        byte[] q = new byte[off + rows * cols];
        float[] d = new float[(off + rows * cols) / 32];
        if (type == GgmlType.F16) {
            MemorySegment.copy(MemorySegment.ofArray(wb), ValueLayout.JAVA_SHORT_UNALIGNED, 0, h, off, rows * cols);
        } else {
            for (int b = 0; b < rows * cols / 32; b++) {
                d[off / 32 + b] = Dequant.halfToFloat(Dequant.u16(wb, 34 * b));
                System.arraycopy(wb, 34 * b + 2, q, off + 32 * b, 32);
            }
        }
        for (int T : new int[]{1, 5}) {
            float[] x = random(new SplittableRandom(T + 40), T * cols);
            float[] want = new float[T * rows], got = new float[T * rows];
            Matmul.forward(want, x, w, T);
            if (type == GgmlType.F16) {
                Matmul.forwardNaive(got, x, h, off, new int[]{T}, T, rows, cols);
            } else {
                Matmul.forwardNaive(got, x, q, d, off, new int[]{T}, T, rows, cols);
            }
            assertSums(type + " device forward T=" + T, want, got, wb, type, x, T, rows, cols);
            float[] dy = random(new SplittableRandom(T + 50), T * rows);
            float[] dx = random(new SplittableRandom(T + 60), T * cols), dx2 = dx.clone();
            Matmul.backward(dx, dy, w, T, true);
            if (type == GgmlType.F16) {
                Matmul.backwardNaive(dx2, dy, h, off, T, rows, cols, 1);
            } else {
                Matmul.backwardNaive(dx2, dy, q, d, off, T, rows, cols, 1);
            }
            assertClose(type + " device input gradient T=" + T, dx, dx2, 2e-5);
        }
    }
}

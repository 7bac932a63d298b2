package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static io.lora4j.kernels.MatmulParityTest.assertSums;
import static io.lora4j.kernels.MatmulParityTest.randomWeights;
import static io.lora4j.kernels.OpsParityTest.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * The blocked products of {@link Gemm} against the naive oracles on shapes that reach every edge of
 * their blocking: rows past a forward panel and past a backward strip chunk, columns past a strip and
 * not a multiple of the vector length, token counts that leave a partial block; and the invariance
 * the blocking promises (a token's outputs do not depend on the other tokens of the call).
 */
class GemmTest {

    private static Weight weight(GgmlType type, int rows, int cols, long seed) {
        return new Weight("w", type, MemorySegment.ofArray(randomWeights(type, rows, cols, seed)), rows, cols);
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K"})
    void forwardOverSeveralPanelsAndAPartialTokenBlock(GgmlType type) {
        int rows = Gemm.RP + 13; // a second, partial panel whose last kernel has padding rows
        int cols = type.blockSize == 256 ? 256 : type.blockSize == 32 ? 96 : 77;
        byte[] wb = randomWeights(type, rows, cols, 21);
        Weight w = new Weight("w", type, MemorySegment.ofArray(wb), rows, cols);
        int T = 3 * FloatVectorLength.L + 5;
        float[] x = random(new SplittableRandom(22), T * cols);
        float[] want = new float[T * rows], got = new float[T * rows];
        Matmul.forwardNaive(want, x, wb, type, new float[cols], T, rows, cols);
        Matmul.forward(got, x, w, T);
        assertSums(type + " T=" + T, want, got, wb, type, x, T, rows, cols);
    }

    /** A token's outputs are the same bits whatever else is in the call (one FMA chain per output, in index order). */
    @Test
    void forwardResultsDoNotDependOnTheOtherTokens() {
        int rows = 70, cols = 83;
        Weight w = weight(GgmlType.F16, rows, cols, 23);
        int most = 5 * FloatVectorLength.L + 3;
        float[] x = random(new SplittableRandom(24), most * cols);
        float[] all = new float[most * rows];
        Matmul.forward(all, x, w, most);
        for (int T : new int[]{FloatVectorLength.L, 2 * FloatVectorLength.L + 1}) {
            float[] some = new float[T * rows];
            Matmul.forward(some, java.util.Arrays.copyOf(x, T * cols), w, T);
            assertArrayEquals(java.util.Arrays.copyOf(all, T * rows), some, "first " + T + " tokens");
        }
        // the same tokens as the second matrix of a shared-input call
        Weight v = weight(GgmlType.Q8_0, 40, 96, 25);
        float[] xv = random(new SplittableRandom(26), most * 96), alone = new float[most * 40], shared = new float[most * 40];
        Matmul.forward(alone, xv, v, most);
        Matmul.forward(new float[][]{new float[most * 40], shared}, xv, new Weight[]{weight(GgmlType.Q8_0, 33, 96, 27), v}, most);
        assertArrayEquals(alone, shared, "shared-input form");
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "Q8_0", "Q4_K", "NF4"})
    void inputGradientOverStripsChunksAndPartialBlocks(GgmlType type) {
        int rows = Gemm.RB + 77; // two strip chunks: the second continues the sums the first left in dx
        int cols = type == GgmlType.NF4 ? 3 * 64 : type.blockSize == 256 ? 512 : type.blockSize == 32 ? Gemm.SW + 64 : Gemm.SW + 45;
        Weight w;
        float[] wf = new float[rows * cols];
        if (type.ggml) {
            byte[] wb = randomWeights(type, rows, cols, 31);
            w = new Weight("w", type, MemorySegment.ofArray(wb), rows, cols);
            for (int r = 0; r < rows; r++) {
                Dequant.naive(type, wb, (int) (r * type.byteSize(cols)), wf, r * cols, cols);
            }
        } else {
            w = Kbit.quantize(type, "w", random(new SplittableRandom(31), rows * cols), rows, cols);
            Kbit.decode(w, 0, wf, 0, rows * cols);
        }
        for (int T : new int[]{1, 6, 13}) {
            float[] dy = random(new SplittableRandom(32 + T), T * rows);
            float[] dx0 = random(new SplittableRandom(33 + T), T * cols);
            float[] want = dx0.clone(), got = dx0.clone();
            Matmul.backwardNaive(want, dy, wf, T, rows, cols, 1);
            Matmul.backward(got, dy, w, T, true);
            assertDxSums(type + " T=" + T + " accumulate", want, got, dx0, dy, wf, T, rows, cols);
            Matmul.backwardNaive(want, dy, wf, T, rows, cols, 0);
            Matmul.backward(got, dy, w, T, false);
            assertDxSums(type + " T=" + T + " assign", want, got, new float[T * cols], dy, wf, T, rows, cols);
        }
    }

    /**
     * Each dx element within float reassociation of the oracle's: a millionth of Σ_r |dy·w| (plus the
     * value it accumulated onto). The k-quant weights reach tens, so a bound relative to the result
     * itself would flag rounding of sums far larger than the result.
     */
    private static void assertDxSums(String what, float[] want, float[] got, float[] dx0, float[] dy, float[] wf, int T,
                                     int rows, int cols) {
        for (int t = 0; t < T; t++) {
            for (int c = 0; c < cols; c++) {
                double mag = Math.abs(dx0[t * cols + c]);
                for (int r = 0; r < rows; r++) {
                    mag += Math.abs((double) dy[t * rows + r] * wf[r * cols + c]);
                }
                int i = t * cols + c;
                double diff = Math.abs(want[i] - got[i]);
                if (!(diff <= 1e-6 * mag + 1e-30)) {
                    org.junit.jupiter.api.Assertions.fail(what + ": token " + t + " column " + c + " expected " + want[i]
                            + ", got " + got[i] + " (difference " + diff + ", Σ|dy·w| " + mag + ")");
                }
            }
        }
    }

    /** The vector length the kernels run with (test-side copy of the species choice). */
    private static final class FloatVectorLength {
        static final int L = jdk.incubator.vector.FloatVector.SPECIES_PREFERRED.length();
    }
}

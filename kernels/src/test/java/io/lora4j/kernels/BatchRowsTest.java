package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

import static io.lora4j.kernels.OpsParityTest.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The kernels of a server's batched decode (rows from different sequences): each row's result is the
 * same bits whatever other rows share the batch, and equals what the single-sequence kernels give
 * (bitwise where they share code, within rounding for the matmul, which reads the weights once for
 * all rows).
 */
class BatchRowsTest {

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_K", "Q6_K", "NF4_DQ", "INT8"})
    void batchedMatmulRowsDoNotDependOnTheirNeighbours(GgmlType type) {
        int cols = 512, rows = 37, R = 6;
        Weight a = weight(type, rows, cols, 3), b = weight(type, 19, cols, 4);
        float[] x = random(new SplittableRandom(5), R * cols);
        float[] outA = new float[R * rows], outB = new float[R * 19];
        Matmul.forwardRows(new float[][]{outA, outB}, x, new Weight[]{a, b}, R);
        for (int t = 0; t < R; t++) {
            float[] xt = Arrays.copyOfRange(x, t * cols, (t + 1) * cols);
            float[] aloneA = new float[rows], aloneB = new float[19];
            Matmul.forwardRows(new float[][]{aloneA, aloneB}, xt, new Weight[]{a, b}, 1);
            assertArrayEquals(aloneA, Arrays.copyOfRange(outA, t * rows, (t + 1) * rows), type + " row " + t + " alone = in the batch");
            assertArrayEquals(aloneB, Arrays.copyOfRange(outB, t * 19, (t + 1) * 19), type + " second matrix, row " + t);
            float[] single = new float[rows];
            Matmul.forward(single, xt, a, 1);
            for (int r = 0; r < rows; r++) {
                assertEquals(single[r], aloneA[r], 2e-4f * Math.max(1f, Math.abs(single[r])), type + " against the decode kernel, " + r);
            }
        }
    }

    /**
     * F16 with 8 inputs or more runs {@code rows2x8} (AVX-512) on whole groups of 8 and the scratch path on
     * the rest and on a single input: the same bits either way, here with a scalar tail (cols not a multiple of
     * the vector), subnormal and signed-zero halves, and 2 to 19 inputs (no group; one or two groups with none,
     * 2 or 3 left: f16Row for one or two, the scratch path for more; 8 and 16 exactly, which once ran f16Row on
     * no input past the last).
     */
    @Test
    void f16GroupsOfEightAreTheScratchPathsBits() {
        int cols = 536, rows = 203; // rows: each thread's share holds whole blocks of 4
        SplittableRandom rnd = new SplittableRandom(8);
        short[] halves = new short[rows * cols];
        for (int i = 0; i < rows * cols; i++) {
            halves[i] = switch (i % 97) {
                case 0 -> (short) (1 + rnd.nextInt(0x3ff)); // subnormal
                case 1 -> (short) (0x8000 | (1 + rnd.nextInt(0x3ff)));
                case 2 -> (short) 0x8000; // -0
                default -> Float.floatToFloat16((float) rnd.nextGaussian() * 0.05f);
            };
        }
        Weight w = new Weight("w", GgmlType.F16, MemorySegment.ofArray(halves.clone()), rows, cols);
        for (int R : new int[]{2, 5, 6, 7, 8, 16, 18, 19}) {
            assertEachInputGetsItsOwnBits(w, R, 9, (want, x) -> Matmul.forwardNaive(want, x, halves, 0, new int[]{R}, R, rows, cols));
        }
    }

    /** Q8_0 runs {@code rows2x8} too (quants widened and scaled in registers), and its last one or two inputs {@code q8Row}. */
    @Test
    void q8GroupsOfEightAreTheScratchPathsBits() {
        int cols = 544, rows = 203;
        byte[] bytes = MatmulParityTest.randomWeights(GgmlType.Q8_0, rows, cols, 11);
        Weight w = new Weight("w", GgmlType.Q8_0, MemorySegment.ofArray(bytes), rows, cols);
        for (int R : new int[]{8, 18, 19}) {
            assertEachInputGetsItsOwnBits(w, R, 12, (want, x) -> Matmul.forwardNaive(want, x, bytes, GgmlType.Q8_0, new float[cols], R,
                    rows, cols));
        }
    }

    /** forwardRows of R random inputs: each input's outputs are the bits it gets alone, and near the naive kernel's (want, x). */
    private static void assertEachInputGetsItsOwnBits(Weight w, int R, long seed, java.util.function.BiConsumer<float[], float[]> naive) {
        int rows = w.rows(), cols = w.cols();
        float[] x = random(new SplittableRandom(seed), R * cols);
        float[] out = new float[R * rows];
        Matmul.forwardRows(new float[][]{out}, x, new Weight[]{w}, R);
        for (int t = 0; t < R; t++) {
            float[] alone = new float[rows];
            Matmul.forwardRows(new float[][]{alone}, Arrays.copyOfRange(x, t * cols, (t + 1) * cols), new Weight[]{w}, 1);
            assertArrayEquals(alone, Arrays.copyOfRange(out, t * rows, (t + 1) * rows), w.type() + ": input " + t + " of " + R
                    + " alone = in the batch");
        }
        float[] want = new float[R * rows];
        naive.accept(want, x);
        for (int i = 0; i < want.length; i++) {
            assertEquals(want[i], out[i], 1e-4f * Math.max(1f, Math.abs(want[i])), w.type() + ": against the naive kernel at " + i);
        }
    }

    private static Weight weight(GgmlType type, int rows, int cols, long seed) {
        if (!type.ggml) {
            return Kbit.quantize(type, "w", random(new SplittableRandom(seed), rows * cols), rows, cols);
        }
        return new Weight("w", type, MemorySegment.ofArray(MatmulParityTest.randomWeights(type, rows, cols, seed)), rows, cols);
    }

    @Test
    void batchedAttentionIsEachSequencesOwnAttention() {
        int NH = 4, NKV = 2, HS = 16, P = 20, R = 3;
        SplittableRandom rnd = new SplittableRandom(7);
        int[] pos = {5, 0, 13};
        float[][] kc = new float[R][], vc = new float[R][];
        for (int t = 0; t < R; t++) {
            kc[t] = random(rnd, P * NKV * HS);
            vc[t] = random(rnd, P * NKV * HS);
        }
        float[] q = random(rnd, R * NH * HS), out = new float[R * NH * HS];
        Attention.forwardRows(out, q, kc, vc, pos, R, NH, NKV, HS);
        for (int t = 0; t < R; t++) {
            float[] one = new float[NH * HS];
            Attention.forward(one, null, Arrays.copyOfRange(q, t * NH * HS, (t + 1) * NH * HS), kc[t], vc[t], 1, pos[t], NH, NKV, HS, 0);
            assertArrayEquals(one, Arrays.copyOfRange(out, t * NH * HS, (t + 1) * NH * HS), "row " + t);
        }
    }

    @Test
    void ropeAtPerRowPositionsIsRopeAtThatPosition() {
        int NH = 3, HS = 8, R = 4;
        float[] freqs = Rope.frequencies(HS, 10000f);
        int[] pos = {9, 2, 0, 31};
        float[] x = random(new SplittableRandom(8), R * NH * HS), rows = x.clone();
        Rope.forwardRows(rows, freqs, pos, R, NH, HS, true);
        for (int t = 0; t < R; t++) {
            float[] one = Arrays.copyOfRange(x, t * NH * HS, (t + 1) * NH * HS);
            Rope.forward(one, freqs, 1, NH, HS, pos[t], true);
            assertArrayEquals(one, Arrays.copyOfRange(rows, t * NH * HS, (t + 1) * NH * HS), "row " + t);
        }
    }

    /**
     * A branch on listed rows leaves the others and gives the listed ones {@link Lora#forward}'s bits: ranks
     * under and over a vector, outputs with a scalar tail, LoRA (e = 1) and AdaLoRA (e stored).
     */
    @Test
    void aBranchOnListedRowsLeavesTheOthersAndComputesTheListedOnesAsAlone() {
        int T = 5;
        for (int[] shape : new int[][]{{23, 11, 3}, {64, 48, 8}, {40, 37, 20}}) {
            int IN = shape[0], OUT = shape[1], r = shape[2];
            for (boolean svd : new boolean[]{false, true}) {
                SplittableRandom rnd = new SplittableRandom(9 + IN + (svd ? 1 : 0));
                float[] x = random(rnd, T * IN), p = random(rnd, 2 + r * IN + r + OUT * r), y = random(rnd, T * OUT);
                int aOff = 2, eOff = svd ? aOff + r * IN : -1, bOff = aOff + r * IN + r;
                float[] want = y.clone(), got = y.clone();
                Lora.forward(want, new float[T * r], x, p, aOff, eOff, bOff, 0.5f, T, IN, OUT, r);
                int[] rows = {3, 0};
                Lora.forwardRows(got, new float[T * r], x, rows, 2, Lora.rowsLayout(p, aOff, bOff, IN, OUT, r), p, eOff, 0.5f, IN,
                        OUT, r);
                for (int t = 0; t < T; t++) {
                    float[] expect = t == 3 || t == 0 ? want : y;
                    assertArrayEquals(Arrays.copyOfRange(expect, t * OUT, (t + 1) * OUT), Arrays.copyOfRange(got, t * OUT, (t + 1) * OUT),
                            IN + "x" + OUT + " r " + r + (svd ? " AdaLoRA" : "") + ", row " + t);
                }
            }
        }
    }
}

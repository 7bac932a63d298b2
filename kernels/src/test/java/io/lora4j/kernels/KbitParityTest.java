package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.SplittableRandom;

import static io.lora4j.kernels.MatmulParityTest.assertSums;
import static io.lora4j.kernels.OpsParityTest.assertClose;
import static io.lora4j.kernels.OpsParityTest.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * The fast k-bit kernels (fused decode-and-dot, row/strip decode, input gradient) against their
 * naive oracles in TornadoVM's subset ({@link Blockwise4}, {@link Int8}, {@link Blockwise8}), on
 * shapes whose blocks straddle rows (172 and 77 columns), shapes that take the fused path (64 and
 * 256 columns) and an odd element count; and the naive input gradient against central differences.
 */
class KbitParityTest {
    static final int[][] SHAPES = {{37, 172}, {45, 64}, {13, 77}, {9, 256}, {3, 5}};

    /** Weights like a trained matrix: gaussian, a few outliers. */
    static float[] weights(SplittableRandom r, int n) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * 0.05 * (r.nextInt(100) == 0 ? 10 : 1));
        }
        return x;
    }

    /** The naive oracle's product for any k-bit weight, from the weight's pieces as plain arrays. */
    static void forwardNaive(float[] out, float[] x, Weight w, int T) {
        Kbit.forwardNaive(out, x, Kbit.kind(w.type()), Kbit.values(w), Kbit.stats(w), Kbit.code(w.type()), T, w.rows(), w.cols());
    }

    static void backwardNaive(float[] dx, float[] dy, Weight w, int T, boolean accumulate) {
        Kbit.backwardNaive(dx, dy, Kbit.kind(w.type()), Kbit.values(w), Kbit.stats(w), Kbit.code(w.type()), T, w.rows(), w.cols(), accumulate);
    }

    /** The naive dequantization of the whole matrix. */
    static float[] dequantizeNaive(Weight w) {
        int n = w.rows() * w.cols();
        float[] out = new float[n];
        byte[] q = Kbit.values(w);
        float[] st = Kbit.stats(w);
        float[] code = Kbit.code(w.type());
        for (int i = 0; i < n; i++) {
            out[i] = Kbit.weight(Kbit.kind(w.type()), q, st, code, w.cols(), i);
        }
        if (Kbit.fourBit(w.type())) {
            float[] bulk = new float[n];
            Blockwise4.dequantize(bulk, q, st, code, n);
            assertArrayEquals(out, bulk, "Blockwise4.dequantize is the same decode");
        }
        return out;
    }

    /** The dequantized matrix as F32 bytes, for {@link MatmulParityTest#assertSums}. */
    static byte[] f32Bytes(float[] m) {
        byte[] b = new byte[4 * m.length];
        java.lang.foreign.MemorySegment.copy(java.lang.foreign.MemorySegment.ofArray(m), java.lang.foreign.ValueLayout.JAVA_BYTE, 0, b, 0, b.length);
        return b;
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"INT8", "INT8_ZP", "NF4", "NF4_DQ", "FP4", "FP4_DQ"})
    void decodeIsBitExactWithTheOracle(GgmlType type) {
        for (int[] s : SHAPES) {
            float[] x = weights(new SplittableRandom(s[0] * 1000L + s[1]), s[0] * s[1]);
            Weight w = Kbit.quantize(type, "w", x, s[0], s[1]);
            float[] want = dequantizeNaive(w);
            assertArrayEquals(want, Dequant.matrix(w), type + " " + s[0] + "x" + s[1] + " rows");
            // ranges that start and end inside blocks, as the input gradient's strips read them
            int n = s[0] * s[1];
            for (int first : new int[]{0, 1, 63, 64, 65, n / 3}) {
                if (first >= n) {
                    continue;
                }
                int len = Math.min(n - first, 131);
                float[] got = new float[len];
                Kbit.decode(w, first, got, 0, len);
                for (int i = 0; i < len; i++) {
                    assertEquals(want[first + i], got[i], type + " element " + (first + i) + " of a range from " + first);
                }
            }
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"INT8", "INT8_ZP", "NF4", "NF4_DQ", "FP4", "FP4_DQ"})
    void forwardMatchesTheOracle(GgmlType type) {
        for (int[] s : SHAPES) {
            int rows = s[0], cols = s[1];
            Weight w = Kbit.quantize(type, "w", weights(new SplittableRandom(rows + cols), rows * cols), rows, cols);
            byte[] f32 = f32Bytes(dequantizeNaive(w));
            for (int T : new int[]{1, 3, 17}) {
                float[] x = random(new SplittableRandom(T), T * cols);
                float[] want = new float[T * rows], got = new float[T * rows];
                forwardNaive(want, x, w, T);
                Matmul.forward(got, x, w, T);
                assertSums(type + " " + rows + "x" + cols + " T=" + T, want, got, f32, GgmlType.F32, x, T, rows, cols);
            }
        }
    }

    /**
     * The device layout (every type's pieces as they are, several matrices in shared buffers at offsets,
     * *_DQ scales decoded in the kernel) gives the naive kernels' products bit for bit, forward over the
     * live rows only and input gradient, for a matrix placed after another one.
     */
    @Test
    void theDeviceLayoutGivesTheOraclesProductsExactly() {
        GgmlType[] types = {GgmlType.INT8, GgmlType.INT8_ZP, GgmlType.NF4, GgmlType.NF4_DQ, GgmlType.FP4, GgmlType.FP4_DQ};
        float[] tables = Kbit.deviceTables();
        for (GgmlType type : types) {
            for (int[] s : SHAPES) {
                int rows = s[0], cols = s[1], T = 3;
                Weight first = Kbit.quantize(type, "a", weights(new SplittableRandom(3), 5 * cols), 5, cols);
                Weight w = Kbit.quantize(type, "w", weights(new SplittableRandom(rows * 31L + cols), rows * cols), rows, cols);
                int qOff = (int) Kbit.deviceBytes(type, 5, cols), sOff = (int) Kbit.deviceFloats(type, 5, cols);
                byte[] q = new byte[qOff + (int) Kbit.deviceBytes(type, rows, cols)];
                float[] stats = new float[sOff + (int) Kbit.deviceFloats(type, rows, cols)];
                Kbit.toDevice(first, q, 0, stats, 0);
                Kbit.toDevice(w, q, qOff, stats, sOff);
                int qabsOff = qOff + (int) Kbit.valueBytes(type, (long) rows * cols);
                float[] x = random(new SplittableRandom(T), T * cols);
                float[] want = new float[T * rows], got = new float[T * rows];
                forwardNaive(want, x, w, T);
                java.util.Arrays.fill(want, rows, T * rows, -1f); // only the first live row is computed
                java.util.Arrays.fill(got, -1f);
                float[] one = new float[T * rows];
                forwardNaive(one, x, w, 1);
                System.arraycopy(one, 0, want, 0, rows);
                Kbit.forwardNaive(got, x, q, stats, tables, Kbit.deviceKind(type), qOff, qabsOff, sOff, new int[]{1}, T, rows, cols);
                assertArrayEquals(want, got, type + " " + rows + "x" + cols + " forward, one live row");
                float[] dy = random(new SplittableRandom(8), T * rows);
                float[] dxWant = random(new SplittableRandom(7), T * cols), dxGot = dxWant.clone();
                backwardNaive(dxWant, dy, w, T, true);
                Kbit.backwardNaive(dxGot, dy, q, stats, tables, Kbit.deviceKind(type), qOff, qabsOff, sOff, T, rows, cols, 1);
                assertArrayEquals(dxWant, dxGot, type + " " + rows + "x" + cols + " input gradient");
            }
        }
    }

    @Test
    void theManyMatrixFormMixesTypesAndTakesTheFusedPath() {
        int cols = 128;
        GgmlType[] types = {GgmlType.NF4_DQ, GgmlType.INT8, GgmlType.FP4, GgmlType.INT8_ZP};
        Weight[] ws = new Weight[types.length];
        float[][] got = new float[types.length][];
        for (int i = 0; i < types.length; i++) {
            int rows = 11 + 7 * i;
            ws[i] = Kbit.quantize(types[i], "w" + i, weights(new SplittableRandom(i), rows * cols), rows, cols);
            got[i] = new float[rows];
            boolean int8 = types[i] == GgmlType.INT8 || types[i] == GgmlType.INT8_ZP;
            assertEquals(int8 ? Int8.VECTOR : Blockwise4.VECTOR, Kbit.fusedRows(ws[i]), types[i] + " takes the fused path where the vector width allows");
        }
        float[] x = random(new SplittableRandom(5), cols);
        Matmul.forward(got, x, ws, 1);
        for (int i = 0; i < types.length; i++) {
            float[] want = new float[ws[i].rows()];
            forwardNaive(want, x, ws[i], 1);
            assertSums(types[i] + " in a fused group", want, got[i], f32Bytes(dequantizeNaive(ws[i])), GgmlType.F32, x, 1, ws[i].rows(), cols);
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"INT8", "INT8_ZP", "NF4", "NF4_DQ", "FP4", "FP4_DQ"})
    void inputGradientMatchesTheOracle(GgmlType type) {
        for (int[] s : SHAPES) {
            int rows = s[0], cols = s[1], T = 7;
            Weight w = Kbit.quantize(type, "w", weights(new SplittableRandom(rows * cols), rows * cols), rows, cols);
            float[] dy = random(new SplittableRandom(8), T * rows);
            float[] want = random(new SplittableRandom(7), T * cols), got = want.clone();
            backwardNaive(want, dy, w, T, true);
            Matmul.backward(got, dy, w, T, true);
            assertClose(type + " " + rows + "x" + cols + " dx accumulate", want, got, 2e-5);
            backwardNaive(want, dy, w, T, false);
            Matmul.backward(got, dy, w, T, false);
            assertClose(type + " " + rows + "x" + cols + " dx assign", want, got, 2e-5);
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"INT8", "INT8_ZP", "NF4_DQ", "FP4"})
    void naiveInputGradientMatchesCentralDifferences(GgmlType type) {
        int rows = 6, cols = 70, T = 3; // blocks of 64 cross the first row boundary
        SplittableRandom r = new SplittableRandom(11);
        Weight w = Kbit.quantize(type, "w", weights(r, rows * cols), rows, cols);
        float[] x = random(r, T * cols), g = random(r, T * rows);
        float[] out = new float[T * rows], dx = new float[T * cols];
        backwardNaive(dx, g, w, T, false);
        GradCheck.check(type + " x", x, dx, () -> GradCheck.loss(() -> forwardNaive(out, x, w, T), out, g), 1e-2);
    }

    @Test
    void quantizingAnUnknownTypeOrTooFewValuesIsAnError() {
        assertThrows(IllegalArgumentException.class, () -> Kbit.quantize(GgmlType.Q8_0, "w", new float[64], 1, 64));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Kbit.quantize(GgmlType.NF4, "blk.0.w", new float[10], 2, 6));
        assertEquals("blk.0.w: 10 values for 2x6", e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> Kbit.values(new Weight("f", GgmlType.F32,
                java.lang.foreign.MemorySegment.ofArray(new float[4]), 1, 4)));
    }
}

package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.Arrays;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** NF4 / FP4 against bitsandbytes: code tables, packing, tie rule, error bounds and error statistics. */
class Blockwise4Test {

    /** The NF4 values as ../shared/REFERENCE.md lists them (bitsandbytes' get_4bit_type("nf4")). */
    static final double[] NF4_REFERENCE = {-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
            -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534,
            0.16093020141124725, 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
            0.7229568362236023, 1.0};

    @Test
    void nf4TableIsTheReferenceExactly() {
        for (int i = 0; i < 16; i++) {
            assertEquals(Float.floatToIntBits((float) NF4_REFERENCE[i]), Float.floatToIntBits(Blockwise4.NF4[i]), "NF4 code " + i);
        }
    }

    @Test
    void fp4TableIsSignThenTwoExponentBitsThenOneMantissaBitOverTwelve() {
        double[] magnitude = {0, 0.0625, 8, 12, 4, 6, 2, 3}; // bitsandbytes' get_4bit_type("fp4") before /12
        for (int i = 0; i < 16; i++) {
            // get_4bit_type divides the float32 table by its absmax 12; the CUDA LUT literals round to the same floats
            float want = (float) ((i < 8 ? 1 : -1) * magnitude[i & 7]) / 12f;
            assertEquals(Float.floatToIntBits(want), Float.floatToIntBits(Blockwise4.FP4[i]), "FP4 code " + i);
            assertEquals(i >= 8, (Float.floatToRawIntBits(Blockwise4.FP4[i]) & 0x80000000) != 0, "sign of FP4 code " + i);
        }
    }

    /** Hand-coded: absmax 1, codes 15 0 | 7 12 | 9 5 | 14 and the pad code 7, high nibble first. */
    @Test
    void packingIsHighNibbleFirstOverTheFlattenedMatrix() {
        float[] x = {1.0f, -1.0f, 0.0f, 0.5f, 0.16f, -0.2f, 0.7f};
        byte[] packed = new byte[4];
        float[] absmax = new float[1];
        Blockwise4.quantize(packed, absmax, x, x.length, true, 0, 1);
        assertArrayEquals(new byte[]{(byte) 0xF0, (byte) 0x7C, (byte) 0x95, (byte) 0xE7}, packed);
        assertEquals(1.0f, absmax[0]);
        // FP4 of the same values: 1.0 → 0b0011, -1.0 → 0b1011, 0 → 0, 0.5 → 0b0101, 0.16 → 0b0110, -0.2 → 0b1110, 0.7 → 0b0010
        Blockwise4.quantize(packed, absmax, x, x.length, false, 0, 1);
        assertArrayEquals(new byte[]{(byte) 0x3B, (byte) 0x05, (byte) 0x6E, (byte) 0x20}, packed);
        // as a 1x7 Weight, elements decode back to code·absmax in order
        Weight w = Kbit.quantize(GgmlType.NF4, "w", x, 1, 7);
        float[] row = new float[7];
        Dequant.row(w, 0, row, 0);
        assertArrayEquals(new float[]{1f, -1f, 0f, Blockwise4.NF4[12], Blockwise4.NF4[9], Blockwise4.NF4[5], Blockwise4.NF4[14]}, row);
        assertArrayEquals(new byte[]{(byte) 0xF0, (byte) 0x7C, (byte) 0x95, (byte) 0xE7}, Kbit.values(w));
    }

    static final float[] NF4_TREE = {-0.8480964004993439f, -0.6106329262256622f, -0.4599952697753906f, -0.33967943489551544f,
            -0.23460740596055984f, -0.13791173323988914f, -0.045525018125772476f, 0.03979014977812767f, 0.1202552504837513f,
            0.2035212516784668f, 0.2920137718319893f, 0.3893125355243683f, 0.5016634166240692f, 0.6427869200706482f,
            0.8614784181118011f};

    @Test
    void aValueOnAMidpointGetsTheLowerCode() {
        for (int i = 0; i < 16; i++) {
            assertEquals(i, Blockwise4.quantizeNf4(Blockwise4.NF4[i]), "NF4 code value " + i);
        }
        for (int i = 0; i < 15; i++) {
            float t = NF4_TREE[i];
            assertEquals(i, Blockwise4.quantizeNf4(t), "on the midpoint between codes " + i + " and " + (i + 1));
            assertEquals(i + 1, Blockwise4.quantizeNf4(Math.nextUp(t)), "just above midpoint " + i);
            // the tree's float constants are the midpoints, to within one ulp of the float32 sum / 2
            float mid = (Blockwise4.NF4[i] + Blockwise4.NF4[i + 1]) / 2f;
            assertTrue(Math.abs(Float.floatToIntBits(mid) - Float.floatToIntBits(t)) <= 1, "midpoint " + i);
        }
        float[] fp4Tree = {0.00260417f, 0.0859375f, 0.20833333f, 0.29166667f, 0.4166667f, 0.583333f, 0.8333333f};
        int[] below = {0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010};
        int[] above = {0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011};
        for (int i = 0; i < fp4Tree.length; i++) {
            assertEquals(below[i], Blockwise4.quantizeFp4(fp4Tree[i]), "FP4 on pivot " + fp4Tree[i]);
            assertEquals(above[i], Blockwise4.quantizeFp4(Math.nextUp(fp4Tree[i])), "FP4 above pivot " + fp4Tree[i]);
            assertEquals(below[i] | 8, Blockwise4.quantizeFp4(-fp4Tree[i]), "FP4 on pivot, negative " + fp4Tree[i]);
        }
        for (int i = 0; i < 16; i++) {
            int want = i == 8 ? 0 : i; // -0.0 is not < 0: bitsandbytes codes it as +0
            assertEquals(want, Blockwise4.quantizeFp4(Blockwise4.FP4[i]), "FP4 code value " + i);
        }
    }

    /** Half the largest gap between neighbouring code values: the worst |x − x̂| / absmax of nearest rounding. */
    static double maxHalfGap(float[] code) {
        float[] s = code.clone();
        Arrays.sort(s);
        double g = 0;
        for (int i = 1; i < s.length; i++) {
            g = Math.max(g, (s[i] - (double) s[i - 1]) / 2);
        }
        return g;
    }

    static float[] matrix(SplittableRandom r, int n, String kind) {
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = switch (kind) {
                case "gaussian" -> (float) r.nextGaussian();
                case "uniform" -> (float) (r.nextDouble() * 2 - 1);
                default -> (float) (r.nextGaussian() * (r.nextInt(50) == 0 ? 30 : 0.02)); // rare outliers
            };
        }
        return x;
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"NF4", "FP4"})
    void quantizeDequantizeErrorIsWithinHalfAGapTimesAbsmaxPerBlock(GgmlType type) {
        double half = maxHalfGap(Blockwise4.table(type));
        SplittableRandom r = new SplittableRandom(7);
        int[][] shapes = {{64, 172}, {37, 172}, {5, 77}, {3, 64}};
        for (int[] s : shapes) {
            for (String kind : new String[]{"gaussian", "uniform", "outliers"}) {
                int n = s[0] * s[1];
                float[] x = matrix(r, n, kind);
                Weight w = Kbit.quantize(type, "w", x, s[0], s[1]);
                float[] absmax = Kbit.stats(w);
                float[] y = new float[n];
                Blockwise4.dequantize(y, Kbit.values(w), absmax, Blockwise4.table(type), n);
                for (int b = 0; b < absmax.length; b++) {
                    float amax = 0;
                    for (int i = 64 * b; i < Math.min(n, 64 * b + 64); i++) {
                        amax = Math.max(amax, Math.abs(x[i]));
                    }
                    assertEquals(amax, absmax[b], "absmax of block " + b);
                    for (int i = 64 * b; i < Math.min(n, 64 * b + 64); i++) {
                        double err = Math.abs(x[i] - (double) y[i]);
                        if (err > amax * half * (1 + 1e-6) + 1e-30) {
                            fail(type + " " + kind + " " + Arrays.toString(s) + " element " + i + ": |" + x[i] + " - " + y[i]
                                    + "| = " + err + " > absmax " + amax + " · " + half);
                        }
                    }
                }
            }
        }
    }

    /**
     * bitsandbytes' test_4bit_quant records the mean absolute and relative error of blocksize 64 on
     * randn(1024, 1024): NF4 0.072798 / 0.203339, FP4 0.096543 / 0.260125 (σ 0.000074 / 0.00034,
     * 0.000111 / 0.000379); ours must agree within 7σ, as theirs does.
     */
    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"NF4", "FP4"})
    void errorStatisticsOnGaussianWeightsMatchBitsandbytes(GgmlType type) {
        int n = 1024 * 1024;
        float[] x = matrix(new SplittableRandom(42), n, "gaussian");
        Weight w = Kbit.quantize(type, "w", x, 1024, 1024);
        float[] y = Dequant.matrix(w);
        double err = 0, rel = 0;
        for (int i = 0; i < n; i++) {
            double e = Math.abs(x[i] - (double) y[i]);
            err += e;
            rel += e / (Math.abs(x[i]) + 1e-8);
        }
        err /= n;
        rel /= n;
        boolean nf4 = type == GgmlType.NF4;
        double[] want = nf4 ? new double[]{0.072798, 0.000074, 0.203339, 0.000340} : new double[]{0.096543, 0.000111, 0.260125, 0.000379};
        assertEquals(want[0], err, 7 * want[1], type + " mean absolute error");
        assertEquals(want[2], rel, 7 * want[3], type + " mean relative error");
    }

    @Test
    void aBlockOfZerosIsCodedAsZero() {
        float[] x = new float[130];
        x[129] = 0.25f; // blocks 0 and 1 all zero, block 2 = {0, 0.25}
        for (GgmlType t : new GgmlType[]{GgmlType.NF4, GgmlType.FP4}) {
            Weight w = Kbit.quantize(t, "w", x, 2, 65);
            float[] y = Dequant.matrix(w);
            assertArrayEquals(x, y, t + " zeros and the lone value (its own absmax) come back exactly");
            assertEquals(0f, Kbit.stats(w)[0]);
            byte zero = (byte) (t == GgmlType.NF4 ? 0x77 : 0x00);
            assertEquals(zero, Kbit.values(w)[0], t + " both nibbles code 0.0");
        }
    }
}

package io.lora4j.kernels;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** 8-bit bases: LLM.int8's row absmax and the zero-point variant, on hand-computed values and error bounds. */
class Int8Test {

    @Test
    void rowAbsmaxIsRoundHalfToEvenOf127TimesXOverRowmax() {
        // row 0: rowmax 2 → factor 63.5; 1 → 63.5 → 64 (even), -0.5 → -31.75 → -32, 0.03 → 1.905 → 2, -2 → -127
        // row 1: rowmax 1.27 → factor 100: 0.005 → 0.5 → 0 (even), 0.015 → 1.5 → 2, 0.635 → 63.5 → 64, 1.27 → 127
        float[] x = {1f, -0.5f, 0.03f, -2f, 0.005f, 0.015f, 0.635f, 1.27f};
        Weight w = Kbit.quantize(GgmlType.INT8, "w", x, 2, 4);
        byte[] q = Kbit.values(w);
        float f1 = 127f / 1.27f;
        byte[] want = {64, -32, 2, -127, (byte) Math.rint(0.005f * f1), (byte) Math.rint(0.015f * f1), (byte) Math.rint(0.635f * f1), 127};
        assertArrayEquals(want, q);
        assertArrayEquals(new byte[]{64, -32, 2, -127}, java.util.Arrays.copyOf(q, 4));
        assertArrayEquals(new float[]{2f, 1.27f}, Kbit.stats(w), "bitsandbytes' SCB: the row absmax");
        float[] y = Dequant.matrix(w);
        assertEquals(64 * 2f * Int8.INV127, y[0]);
        assertEquals(-2f, y[3], 1e-6f);
        assertEquals(0f, Kbit.quantize(GgmlType.INT8, "z", new float[8], 2, 4).data().get(java.lang.foreign.ValueLayout.JAVA_BYTE, 0));
    }

    @Test
    void zeroPointOfAHandComputedBlock() {
        // min -1, max 3: qx = 255/4 = 63.75, z = round(-63.75) = -64, q = round(63.75·x + 64)
        float[] x = {-1f, 3f, 0f, 0.5f, 1f};
        Weight w = Kbit.quantize(GgmlType.INT8_ZP, "w", x, 1, 5);
        byte[] q = Kbit.values(w);
        assertArrayEquals(new byte[]{0, (byte) 255, 64, (byte) Math.rint(63.75f * 0.5f + 64f), (byte) Math.rint(63.75f + 64f)}, q);
        assertArrayEquals(new float[]{1f / 63.75f, -64f}, Kbit.stats(w));
        float[] y = Dequant.matrix(w);
        assertEquals((0 - 64f) * (1f / 63.75f), y[0]);
        assertEquals((255 - 64f) * (1f / 63.75f), y[1]);
        // a constant block: max − min taken as 1, as bitsandbytes does, and it comes back exactly when integral
        Weight c = Kbit.quantize(GgmlType.INT8_ZP, "c", new float[]{2f, 2f, 2f}, 1, 3);
        assertArrayEquals(new float[]{2f, 2f, 2f}, Dequant.matrix(c));
    }

    /** |x − x̂| ≤ half a step: rowmax/254 per row (symmetric), (max − min)/510 per block of 64 (zero point). */
    @Test
    void errorsAreWithinHalfAStep() {
        SplittableRandom r = new SplittableRandom(5);
        int rows = 23, cols = 172, n = rows * cols;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() + (i % 7 == 0 ? 0.8 : 0)); // skewed, so min ≠ −max
        }
        float[] y = Dequant.matrix(Kbit.quantize(GgmlType.INT8, "w", x, rows, cols));
        for (int row = 0; row < rows; row++) {
            float amax = 0;
            for (int c = 0; c < cols; c++) {
                amax = Math.max(amax, Math.abs(x[row * cols + c]));
            }
            for (int c = 0; c < cols; c++) {
                int i = row * cols + c;
                if (Math.abs(x[i] - y[i]) > amax / 254 * (1 + 1e-5)) {
                    fail("INT8 element " + i + ": " + x[i] + " → " + y[i] + ", half step " + amax / 254);
                }
            }
        }
        float[] z = Dequant.matrix(Kbit.quantize(GgmlType.INT8_ZP, "w", x, rows, cols));
        for (int b = 0; b * 64 < n; b++) {
            float lo = Float.MAX_VALUE, hi = -Float.MAX_VALUE;
            for (int i = 64 * b; i < Math.min(n, 64 * b + 64); i++) {
                lo = Math.min(lo, x[i]);
                hi = Math.max(hi, x[i]);
            }
            for (int i = 64 * b; i < Math.min(n, 64 * b + 64); i++) {
                // rounding z and the clamp to 0..255 can cost up to one more half step at the range ends
                if (Math.abs(x[i] - z[i]) > (hi - lo) / 255 * (1 + 1e-5)) {
                    fail("INT8_ZP element " + i + ": " + x[i] + " → " + z[i] + ", step " + (hi - lo) / 255);
                }
            }
        }
    }
}

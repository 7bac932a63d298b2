package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** bitsandbytes' signed dynamic 8-bit map and QLoRA's double quantization of the 4-bit absmax constants. */
class DoubleQuantTest {

    @Test
    void theDynamicMapHasBitsandbytesShape() {
        float[] d = Blockwise8.DYNAMIC;
        assertEquals(256, d.length);
        for (int i = 1; i < 256; i++) {
            assertTrue(d[i - 1] < d[i], "sorted and distinct at " + i);
        }
        // 127 negatives, 0, 127 positives (7 exponents with 1, 2, 4, …, 64 fraction means each), then 1.0
        assertEquals(0f, d[127]);
        assertEquals(1f, d[255]);
        for (int i = 0; i < 127; i++) {
            assertEquals(-d[254 - i], d[i], "symmetric: " + i);
        }
        // the smallest: 1e-6 · mean(linspace(0.1, 1, 2)); the largest below 1: mean of the last two of linspace(0.1, 1, 65)
        assertEquals(1e-6f * 0.55f, d[128]);
        float step = 0.9f / 64;
        assertEquals(((1f - step) + 1f) / 2f, d[254]);
        assertEquals(-d[254], d[0]);
        // exponent 10^-1: the 32 means of linspace(0.1, 1, 33) scaled by 0.1 lie between 0.01 and 0.1
        int between = 0;
        for (float v : d) {
            between += v > 0.01f && v < 0.1f ? 1 : 0;
        }
        assertEquals(32, between);
    }

    @Test
    void theBinarySearchPicksTheNearestCode() {
        float[] d = Blockwise8.DYNAMIC;
        SplittableRandom r = new SplittableRandom(3);
        for (int k = 0; k < 200_000; k++) {
            float x = k % 3 == 0 ? (float) (r.nextDouble() * 2 - 1) : (float) ((r.nextBoolean() ? 1 : -1) * Math.pow(10, -7 * r.nextDouble()));
            int q = Blockwise8.index(d, x);
            double best = Double.MAX_VALUE;
            for (float c : d) {
                best = Math.min(best, Math.abs(x - (double) c));
            }
            if (Math.abs(x - (double) d[q]) > best * (1 + 1e-6) + 1e-12) {
                fail("x " + x + " got code " + q + " (" + d[q] + ") but a nearer one is " + best + " away");
            }
        }
        assertEquals(255, Blockwise8.index(d, 1f));
        assertEquals(0, Blockwise8.index(d, -1f));
        assertEquals(127, Blockwise8.index(d, 0f));
    }

    /** Half the largest gap between neighbouring values of a sorted code. */
    static double maxHalfGap(float[] sorted) {
        double g = 0;
        for (int i = 1; i < sorted.length; i++) {
            g = Math.max(g, (sorted[i] - (double) sorted[i - 1]) / 2);
        }
        return g;
    }

    /**
     * Double quantization changes only the statistics: the 4-bit codes are the same bytes; each
     * block's absmax moves by at most absmax2·(the dynamic map's max half-gap); and so each element's
     * error grows by at most that (|code| ≤ 1). Also bitsandbytes' test_4bit_compressed_stats bounds
     * (mean error &lt; 0.11, mean relative error &lt; 0.28 on randn(1024, 1024)) and the storage
     * (NF4 + double quantization ≤ 0.56 bytes per parameter, the target).
     */
    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"NF4_DQ", "FP4_DQ"})
    void doubleQuantizationsExtraErrorIsBounded(GgmlType dq) {
        GgmlType plain = dq == GgmlType.NF4_DQ ? GgmlType.NF4 : GgmlType.FP4;
        int rows = 1024, cols = 1024, n = rows * cols;
        SplittableRandom r = new SplittableRandom(17);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) r.nextGaussian();
        }
        Weight a = Kbit.quantize(plain, "w", x, rows, cols);
        Weight b = Kbit.quantize(dq, "w", x, rows, cols);
        assertArrayEquals(Kbit.values(a), Kbit.values(b), "the same 4-bit codes");
        float[] absmax = Kbit.stats(a), absmaxDq = Kbit.stats(b), absmax2 = Kbit.absmax2(b);
        double h8 = maxHalfGap(Blockwise8.DYNAMIC);
        double mean = 0;
        for (float v : absmax) {
            mean += v;
        }
        assertEquals(mean / absmax.length, Kbit.offset(b), 1e-6, "offset = mean absmax");
        double worstBlock = 0;
        for (int k = 0; k < absmax.length; k++) {
            double e = Math.abs(absmaxDq[k] - (double) absmax[k]);
            double bound = absmax2[k / Blockwise8.DQ_BLOCK] * h8 + 4 * Math.ulp(absmax[k]);
            worstBlock = Math.max(worstBlock, e / bound);
            if (e > bound) {
                fail(dq + " block " + k + ": absmax " + absmax[k] + " came back as " + absmaxDq[k] + ", more than " + bound);
            }
        }
        float[] ya = Dequant.matrix(a), yb = Dequant.matrix(b);
        double errA = 0, errB = 0, relB = 0, allowed = 0;
        for (int i = 0; i < n; i++) {
            double ea = Math.abs(x[i] - (double) ya[i]), eb = Math.abs(x[i] - (double) yb[i]);
            double dAbsmax = Math.abs(absmaxDq[i / 64] - (double) absmax[i / 64]);
            if (Math.abs(eb - ea) > dAbsmax * (1 + 1e-6) + 1e-7) {
                fail(dq + " element " + i + ": error " + ea + " became " + eb + ", absmax moved only " + dAbsmax);
            }
            errA += ea;
            errB += eb;
            relB += eb / (Math.abs(x[i]) + 1e-15);
            allowed += dAbsmax;
        }
        errA /= n;
        errB /= n;
        relB /= n;
        allowed /= n;
        String measured = String.format(java.util.Locale.ROOT, "%s mean |error| %.6f, with double quantization %.6f "
                + "(extra %.2e, bound %.2e; worst block at %.2f of its bound)", plain, errA, errB, errB - errA, allowed, worstBlock);
        assertTrue(Math.abs(errB - errA) <= allowed, measured);
        // measured here: +0.10% (NF4), of the same order for FP4; a regression bound at twice that
        assertTrue(errB - errA < 2e-3 * errA, "double quantization adds under 0.2% to the mean error: " + measured);
        assertTrue(errB < 0.11 && relB < 0.28, measured + ", relative " + relB);
        double bytesPerParam = (double) dq.tensorBytes(rows, cols) / n;
        assertTrue(bytesPerParam <= 0.56, dq + ": " + bytesPerParam + " bytes per parameter");
        assertEquals(0.5 + 4.0 / 64, (double) plain.tensorBytes(rows, cols) / n, 1e-12, "without double quantization: 4.5 bits");
    }
}

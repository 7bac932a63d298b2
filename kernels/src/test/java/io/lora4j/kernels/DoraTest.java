package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.SplittableRandom;

import static io.lora4j.kernels.OpsParityTest.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** DoRA's magnitude step: gradient checks of the backward (norm constant), the fast twins bitwise, the row norms by hand. */
class DoraTest {

    @Test
    void rowNormsOfAHandWorkedAdaptedWeight() {
        // W = [[3, 0], [0, 4]], A = [[1, 0]], B = [[0], [1]], s = 2: W + s·BA = [[3, 0], [2, 4]], norms 3 and √20
        float[] w = {3, 0, 0, 4};
        float[] p = {9, 1, 0, 0, 1}; // one unrelated value, then A (1, 2) at 1, B (2, 1) at 3
        float[] norm = new float[2];
        Dora.normsNaive(norm, w, p, 1, 3, 2f, 2, 2, 1);
        assertArrayEquals(new float[]{3f, (float) Math.sqrt(20)}, norm);
        float[] fast = new float[2];
        Dora.norms(fast, f32(w, 2, 2), p, 1, 3, 2f, 2, 2, 1);
        assertArrayEquals(norm, fast);
    }

    /** The magnitude gradient and the gradient of what was rescaled, against central differences; the norm is an input held constant. */
    @ParameterizedTest
    @CsvSource({"3,5", "4,17"})
    void backwardMatchesCentralDifferences(int T, int OUT) {
        SplittableRandom rnd = new SplittableRandom(OUT);
        int mOff = 2;
        float[] p = new float[mOff + OUT];
        float[] m = random(rnd, OUT);
        System.arraycopy(m, 0, p, mOff, OUT);
        float[] norm = new float[OUT];
        for (int o = 0; o < OUT; o++) {
            norm[o] = 0.5f + (float) rnd.nextDouble();
        }
        float[] pre = random(rnd, T * OUT), g = random(rnd, T * OUT), y = new float[T * OUT];
        int[] n = {T};
        Runnable fwd = () -> {
            System.arraycopy(pre, 0, y, 0, y.length);
            Dora.forwardNaive(y, p, mOff, norm, n, T, OUT);
        };
        float[] grads = new float[p.length], dPre = new float[T * OUT];
        Dora.backwardNaive(dPre, grads, g, pre, p, mOff, norm, T, OUT);
        GradCheck.check("pre", pre, dPre, () -> GradCheck.loss(fwd, y, g), 1e-2);
        GradCheck.check("m", p, grads, () -> GradCheck.loss(fwd, y, g), 1e-2);
        assertEquals(0f, grads[0], "outside the magnitude");
        // PEFT's form with dropout: y = base + (g − 1) ⊙ pre has the same magnitude gradient
        float[] base = random(rnd, T * OUT);
        Runnable dropped = () -> {
            System.arraycopy(base, 0, y, 0, y.length);
            Dora.forwardDropout(y, pre, p, mOff, norm, T, OUT);
        };
        GradCheck.check("m (dropout form)", p, grads, () -> GradCheck.loss(dropped, y, g), 1e-2);
    }

    @Test
    void fastTwinsAreBitwiseEqualToTheOracles() {
        int T = 5, IN = 37, OUT = 23, r = 3, mOff = 4;
        SplittableRandom rnd = new SplittableRandom(3);
        float[] w = random(rnd, OUT * IN), p = random(rnd, mOff + OUT + r * IN + OUT * r);
        int aOff = mOff + OUT, bOff = aOff + r * IN;
        float[] norm = new float[OUT], fast = new float[OUT];
        Dora.normsNaive(norm, w, p, aOff, bOff, 0.7f, IN, OUT, r);
        Dora.norms(fast, f32(w, OUT, IN), p, aOff, bOff, 0.7f, IN, OUT, r);
        assertArrayEquals(norm, fast, "norms");
        // an F16 base: the norm of the dequantized rows (QDoRA's rule)
        short[] half = new short[OUT * IN];
        float[] rounded = new float[OUT * IN];
        for (int i = 0; i < half.length; i++) {
            half[i] = Float.floatToFloat16(w[i]);
            rounded[i] = Float.float16ToFloat(half[i]);
        }
        Dora.normsNaive(norm, rounded, p, aOff, bOff, 0.7f, IN, OUT, r);
        Dora.norms(fast, new Weight("w", GgmlType.F16, MemorySegment.ofArray(half), OUT, IN), p, aOff, bOff, 0.7f, IN, OUT, r);
        assertArrayEquals(norm, fast, "norms of an F16 weight");

        float[] y0 = random(rnd, T * OUT), y1 = y0.clone(), y2 = y0.clone(), pre = new float[T * OUT];
        Dora.forwardNaive(y1, p, mOff, norm, new int[]{T}, T, OUT);
        Dora.forward(y2, pre, p, mOff, norm, T, OUT);
        assertArrayEquals(y1, y2, "forward");
        assertArrayEquals(y0, pre, "forward keeps the rows before the rescale");
        float[] y3 = y0.clone();
        Dora.forwardRows(y3, new int[]{3, 1}, 2, p, mOff, norm, OUT);
        for (int t = 0; t < T; t++) {
            float[] expect = t == 1 || t == 3 ? y1 : y0;
            assertArrayEquals(Arrays.copyOfRange(expect, t * OUT, (t + 1) * OUT), Arrays.copyOfRange(y3, t * OUT, (t + 1) * OUT),
                    "row " + t);
        }
        float[] live = y0.clone();
        Dora.forwardNaive(live, p, mOff, norm, new int[]{2}, T, OUT);
        assertArrayEquals(Arrays.copyOfRange(y0, 2 * OUT, T * OUT), Arrays.copyOfRange(live, 2 * OUT, T * OUT),
                "rows past n[0] untouched");

        float[] dy = random(rnd, T * OUT), g1 = new float[p.length], g2 = new float[p.length];
        float[] d1 = new float[T * OUT], d2 = new float[T * OUT];
        Dora.backwardNaive(d1, g1, dy, y0, p, mOff, norm, T, OUT);
        Dora.backward(d2, g2, dy, y0, p, mOff, norm, T, OUT);
        assertArrayEquals(d1, d2, "backward dy");
        assertArrayEquals(g1, g2, "backward dm");
        float[] inPlace = dy.clone(), g3 = new float[p.length];
        Dora.backward(inPlace, g3, inPlace, y0, p, mOff, norm, T, OUT);
        assertArrayEquals(d1, inPlace, "backward with dyOut = dy");
        assertArrayEquals(g1, g3, "backward dm with dyOut = dy");
    }

    @Test
    void mergedRowsGiveTheRescaledProjection() {
        int IN = 6, OUT = 4;
        SplittableRandom rnd = new SplittableRandom(8);
        float[] w = random(rnd, OUT * IN), x = random(rnd, IN), p = random(rnd, OUT), norm = new float[OUT];
        for (int o = 0; o < OUT; o++) {
            norm[o] = 1f + o;
        }
        float[] y = new float[OUT];
        for (int o = 0; o < OUT; o++) {
            for (int i = 0; i < IN; i++) {
                y[o] += w[o * IN + i] * x[i];
            }
        }
        Dora.forwardNaive(y, p, 0, norm, new int[]{1}, 1, OUT);
        Dora.mergeNaive(w, p, 0, norm, IN, OUT);
        for (int o = 0; o < OUT; o++) {
            double merged = 0;
            for (int i = 0; i < IN; i++) {
                merged += w[o * IN + i] * x[i];
            }
            assertEquals(y[o], merged, 1e-5, "row " + o);
        }
    }

    private static Weight f32(float[] w, int rows, int cols) {
        return new Weight("w", GgmlType.F32, MemorySegment.ofArray(w.clone()), rows, cols);
    }
}

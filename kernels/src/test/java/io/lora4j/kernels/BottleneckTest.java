package io.lora4j.kernels;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** The bottleneck adapter's hand-written backward against central differences; the fast twin against the naive oracle. */
class BottleneckTest {

    private static float[] random(SplittableRandom rnd, int n, double scale) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) ((rnd.nextDouble() * 2 - 1) * scale);
        }
        return a;
    }

    /** Sizes that are not multiples of a vector width; every nonlinearity. */
    @ParameterizedTest
    @CsvSource({"3,7,3,0", "3,7,3,1", "2,9,4,2", "4,5,2,3", "1,6,1,1"})
    void backwardMatchesCentralDifferences(int T, int C, int d, int act) {
        SplittableRandom rnd = new SplittableRandom(7 + act);
        float s = 0.8f;
        int dOff = 3, dbOff = dOff + d * C, uOff = dbOff + d, ubOff = uOff + C * d, n = ubOff + C;
        float[] p = random(rnd, n, 0.6);
        float[] h = random(rnd, T * C, 1.0);
        float[] g = random(rnd, T * C, 1.0);
        float[] y = new float[T * C], saved = new float[T * C], z = new float[T * d];
        Runnable fwd = () -> {
            System.arraycopy(h, 0, y, 0, y.length);
            Bottleneck.forwardNaive(y, saved, z, p, dOff, dbOff, uOff, ubOff, act, s, 1, T, C, d);
        };
        fwd.run();
        assertArrayEquals(h, saved, "the input is kept for the backward");
        float[] dh = new float[T * C], grads = new float[n], dz = new float[T * d];
        Bottleneck.backwardNaive(dh, grads, dz, g, saved, z.clone(), p, dOff, dbOff, uOff, ubOff, act, s, T, C, d);
        GradCheck.check("h", h, dh, () -> GradCheck.loss(fwd, y, g), 2e-2);
        float[] dp = new float[n - dOff];
        System.arraycopy(grads, dOff, dp, 0, dp.length);
        float[] params = new float[n - dOff];
        System.arraycopy(p, dOff, params, 0, params.length);
        GradCheck.check("params", params, dp, () -> {
            System.arraycopy(params, 0, p, dOff, params.length);
            return GradCheck.loss(fwd, y, g);
        }, 2e-2);
        System.arraycopy(params, 0, p, dOff, params.length);

        // the fast twin: same outputs, gradients accumulated onto what is there
        fwd.run();
        float[] y2 = h.clone(), h2 = new float[T * C], z2 = new float[T * d], a2 = new float[T * d];
        Bottleneck.forward(y2, h2, z2, a2, p, dOff, dbOff, uOff, ubOff, act, s, T, C, d);
        assertArrayEquals(y, y2, 1e-5f);
        assertArrayEquals(h, h2);
        float[] dh2 = new float[T * C], grads2 = new float[n];
        grads2[dOff] = 1f;
        Bottleneck.backward(dh2, grads2, new float[T * d], new float[T * d], g, h2, z2, p, dOff, dbOff, uOff, ubOff, act, s, T, C, d);
        assertArrayEquals(dh, dh2, 1e-5f);
        assertEquals(grads[dOff] + 1f, grads2[dOff], 1e-5f, "parameter gradients accumulate");
        for (int i = dOff + 1; i < n; i++) {
            assertEquals(grads[i], grads2[i], 1e-5f, "gradient " + i);
        }
    }
}

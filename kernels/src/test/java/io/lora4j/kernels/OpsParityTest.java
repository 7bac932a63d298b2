package io.lora4j.kernels;

import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

/** The Vector-API twins of RmsNorm, Rope, Attention and SwiGlu against their naive oracles, on odd sizes. */
class OpsParityTest {

    static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (r.nextDouble() * 2 - 1);
        }
        return a;
    }

    /** Fails with the index and the largest relative difference when |a-b| > tol·max(1,|a|). */
    static void assertClose(String what, float[] expected, float[] actual, double tol) {
        assertEquals(expected.length, actual.length, what + ": length");
        double worst = 0;
        int at = -1;
        for (int i = 0; i < expected.length; i++) {
            double d = Math.abs(expected[i] - actual[i]) / Math.max(1.0, Math.abs(expected[i]));
            if (!(d <= worst)) {
                worst = d;
                at = i;
            }
        }
        if (worst > tol) {
            fail(what + ": max relative difference " + worst + " at " + at + " (expected " + expected[at]
                    + ", got " + actual[at] + ")");
        }
    }

    @ParameterizedTest
    @CsvSource({"1,7", "3,64", "5,77", "17,768"})
    void rmsNorm(int T, int C) {
        SplittableRandom r = new SplittableRandom(T * 31L + C);
        float[] x = random(r, T * C);
        float[] w = random(r, C);
        float[] out1 = new float[T * C], out2 = new float[T * C], rs1 = new float[T], rs2 = new float[T];
        RmsNorm.forwardNaive(out1, rs1, x, w, T, C, 1e-5f);
        RmsNorm.forward(out2, rs2, x, w, T, C, 1e-5f);
        assertClose("rmsnorm out", out1, out2, 1e-5);
        assertClose("rmsnorm rstd", rs1, rs2, 1e-5);
        // and against the definition, in double
        for (int t = 0; t < T; t++) {
            double ss = 0;
            for (int c = 0; c < C; c++) {
                ss += (double) x[t * C + c] * x[t * C + c];
            }
            assertEquals(1 / Math.sqrt(ss / C + 1e-5), rs1[t], 1e-5 / Math.sqrt(ss / C + 1e-5));
        }
    }

    @ParameterizedTest
    @CsvSource({"1,1,8,0,false", "3,8,8,5,false", "4,4,64,17,true", "7,3,6,100,true"})
    void rope(int T, int NH, int HS, int pos0, boolean halves) {
        SplittableRandom r = new SplittableRandom(T + NH * 7L + HS);
        float[] x = random(r, T * NH * HS);
        float[] a = x.clone(), b = x.clone();
        float[] freqs = Rope.frequencies(HS, 10000f);
        Rope.forwardNaive(a, freqs, GradCheck.positions(pos0, T), T, NH, HS, halves ? 1 : 0);
        Rope.forward(b, freqs, T, NH, HS, pos0, halves);
        assertClose("rope", a, b, 1e-6);
        // a rotation keeps the norm of every pair
        int half = HS / 2;
        for (int t = 0; t < T; t++) {
            for (int h = 0; h < NH; h++) {
                for (int i = 0; i < half; i++) {
                    int j0 = (t * NH + h) * HS + (halves ? i : 2 * i);
                    int j1 = halves ? j0 + half : j0 + 1;
                    double before = Math.hypot(x[j0], x[j1]);
                    assertEquals(before, Math.hypot(a[j0], a[j1]), 1e-5);
                }
            }
        }
    }

    @Test
    void ropeAtPositionZeroIsIdentity() {
        float[] x = random(new SplittableRandom(1), 2 * 16);
        float[] y = x.clone();
        Rope.forward(y, Rope.frequencies(16, 10000f), 1, 2, 16, 0, false);
        assertClose("rope pos 0", x, y, 0);
    }

    @Test
    void llama3ScalingMatchesReferenceFormula() {
        float[] f = Rope.frequencies(128, 500000f);
        float[] g = f.clone();
        Rope.applyLlama3Scaling(g, 8f, 1f, 4f, 8192);
        for (int i = 0; i < f.length; i++) {
            double wavelen = 2 * Math.PI / f[i];
            double expected;
            if (wavelen < 8192 / 4.0) {
                expected = f[i];
            } else if (wavelen > 8192 / 1.0) {
                expected = f[i] / 8.0;
            } else {
                double smooth = (8192 / wavelen - 1) / (4 - 1);
                expected = (1 - smooth) * f[i] / 8 + smooth * f[i];
            }
            assertEquals(expected, g[i], 1e-6 * Math.abs(expected), "pair " + i);
        }
    }

    @ParameterizedTest
    @CsvSource({"1,0,8,4,8", "5,0,8,4,8", "3,9,4,4,16", "6,2,12,3,64", "2,40,2,1,5"})
    void attention(int T, int pos0, int NH, int NKV, int HS) {
        SplittableRandom r = new SplittableRandom(T * 13L + pos0 + NH + HS);
        int P = pos0 + T;
        float[] q = random(r, T * NH * HS);
        float[] k = random(r, P * NKV * HS);
        float[] v = random(r, P * NKV * HS);
        float[] out1 = new float[T * NH * HS], out2 = new float[T * NH * HS];
        float[] att = new float[T * NH * P];
        Attention.forwardNaive(out1, att, q, k, v, GradCheck.positions(pos0, T), T, NH, NKV, HS, P);
        float[] att2 = new float[T * NH * P], out3 = new float[T * NH * HS];
        Attention.forward(out2, att2, q, k, v, T, pos0, NH, NKV, HS, P);
        Attention.forward(out3, null, q, k, v, T, pos0, NH, NKV, HS, 0);
        assertClose("attention", out1, out2, 1e-5);
        assertClose("attention probabilities", att, att2, 1e-5);
        assertClose("attention without kept probabilities", out2, out3, 0);
        // causal: every probability row sums to one over the visible positions and is zero beyond
        for (int th = 0; th < T * NH; th++) {
            int n = pos0 + th / NH + 1;
            double sum = 0;
            for (int p = 0; p < n; p++) {
                sum += att[th * P + p];
            }
            assertEquals(1.0, sum, 1e-5);
            for (int p = n; p < P; p++) {
                assertEquals(0f, att[th * P + p]);
            }
        }
    }

    @Test
    void attentionOfOnePositionCopiesTheValue() {
        float[] q = {1, 2, 3, 4}, k = {5, 6, 7, 8}, v = {0.5f, -1, 2, 3};
        float[] out = new float[4];
        Attention.forward(out, null, q, k, v, 1, 0, 1, 1, 4, 0);
        assertClose("single position", v, out, 0);
    }

    @ParameterizedTest
    @CsvSource({"1", "33", "1000"})
    void swiglu(int N) {
        SplittableRandom r = new SplittableRandom(N);
        float[] g = random(r, N), u = random(r, N);
        float[] o1 = new float[N], o2 = new float[N];
        SwiGlu.forwardNaive(o1, g, u, N);
        SwiGlu.forward(o2, g, u, N);
        assertClose("swiglu", o1, o2, 0);
        for (int i = 0; i < N; i++) {
            double s = g[i] / (1 + Math.exp(-g[i])) * u[i];
            assertEquals(s, o1[i], 1e-6);
        }
    }

    @Test
    void vectorOpsAndCacheStores() {
        SplittableRandom r = new SplittableRandom(70);
        int N = 53;
        float[] x = random(r, N), y = random(r, N), y2 = y.clone();
        VectorOps.axpyNaive(y, x, 0.3f, N);
        VectorOps.axpy(y2, x, 0.3f, N);
        assertClose("axpy", y, y2, 0);
        for (int i = 0; i < N; i++) {
            org.junit.jupiter.api.Assertions.assertEquals(y2[i], y[i]);
        }
        VectorOps.scaleNaive(y, x, -2f, N);
        VectorOps.fillNaive(y2, 0f, N);
        for (int i = 0; i < N; i++) {
            org.junit.jupiter.api.Assertions.assertEquals(-2f * x[i], y[i]);
            org.junit.jupiter.api.Assertions.assertEquals(0f, y2[i]);
        }
        float[] partial = new float[4];
        VectorOps.sumSquaresNaive(partial, x, N, 16);
        double want = 0, got = 0;
        for (float v : x) {
            want += (double) v * v;
        }
        for (float v : partial) {
            got += v;
        }
        org.junit.jupiter.api.Assertions.assertEquals(want, got, 1e-5 * want);
        int T = 3, KV = 8, P = 10;
        float[] cache = new float[P * KV], kv = random(r, T * KV);
        int[] pos = {4, 5, 6};
        Attention.storeNaive(cache, kv, pos, T, KV);
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < KV; i++) {
                org.junit.jupiter.api.Assertions.assertEquals(kv[t * KV + i], cache[pos[t] * KV + i]);
            }
        }
        org.junit.jupiter.api.Assertions.assertEquals(0f, cache[3 * KV], "other positions untouched");
    }

    /** The shift-and-mask form of the mask hash equals plain splitmix64 with unsigned shifts. */
    @Test
    void dropoutHashIsSplitmix64() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(74);
        for (int i = 0; i < 10000; i++) {
            long seed = r.nextLong(), index = r.nextInt(1 << 30);
            long z = seed + (index + 1) * 0x9E3779B97F4A7C15L;
            z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
            z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
            z = z ^ (z >>> 31);
            org.junit.jupiter.api.Assertions.assertEquals((z >>> 40) / (float) (1 << 24), Dropout.uniform(seed, index));
        }
    }

    @Test
    void dropoutTwinsAreBitwiseEqualAndKeepTheRightFraction() {
        int N = 4001;
        float[] x = random(new SplittableRandom(71), N), a = new float[N], b = new float[N];
        Dropout.forwardNaive(a, x, new long[]{12345L}, new float[]{0.3f}, N);
        Dropout.forward(b, x, 12345L, 0.3f, N);
        int kept = 0;
        for (int j = 0; j < N; j++) {
            org.junit.jupiter.api.Assertions.assertEquals(b[j], a[j]);
            kept += a[j] != 0f ? 1 : 0;
        }
        org.junit.jupiter.api.Assertions.assertEquals(0.7, kept / (double) N, 0.03);
        float[] dx = random(new SplittableRandom(72), N), dx2 = dx.clone(), g = random(new SplittableRandom(73), N);
        Dropout.backwardNaive(dx, g, new long[]{12345L}, new float[]{0.3f}, N);
        Dropout.backward(dx2, g, 12345L, 0.3f, N);
        for (int j = 0; j < N; j++) {
            org.junit.jupiter.api.Assertions.assertEquals(dx2[j], dx[j]);
        }
        Dropout.forwardNaive(a, x, new long[]{9L}, new float[]{0f}, N);
        for (int j = 0; j < N; j++) {
            org.junit.jupiter.api.Assertions.assertEquals(x[j], a[j], "p = 0 keeps everything unscaled");
        }
    }
}

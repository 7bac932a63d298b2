package io.lora4j.kernels;

import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.fail;

/**
 * Central-difference gradient checks. The loss is {@code L = Σ out·g} for a fixed random upstream
 * gradient g, evaluated in double precision from the forward's float output; each input element is
 * nudged by ±eps (relative to its size) and {@code (L+ − L−) / 2eps} compared with the analytic one.
 */
final class GradCheck {
    private GradCheck() {
    }

    /** Positions pos0, pos0+1, …, pos0+T-1 of a chunk of T tokens (the naive kernels take them as an array). */
    static int[] positions(int pos0, int T) {
        int[] p = new int[T];
        for (int t = 0; t < T; t++) {
            p[t] = pos0 + t;
        }
        return p;
    }

    /** L = Σ out·g in double after running the forward. */
    static double loss(Runnable forward, float[] out, float[] g) {
        forward.run();
        double l = 0;
        for (int i = 0; i < out.length; i++) {
            l += (double) out[i] * g[i];
        }
        return l;
    }

    /**
     * Compares {@code analytic} (dL/dparam) with central differences of {@code loss} over every
     * element of {@code param}; fails with the worst element.
     */
    static void check(String what, float[] param, float[] analytic, Supplier<Double> loss, double tol) {
        double worst = 0;
        String detail = "";
        for (int i = 0; i < param.length; i++) {
            float orig = param[i];
            float eps = Math.max(1e-2f, Math.abs(orig) * 1e-2f);
            param[i] = orig + eps;
            double lp = loss.get();
            param[i] = orig - eps;
            double lm = loss.get();
            param[i] = orig;
            double numeric = (lp - lm) / (2.0 * eps);
            double err = Math.abs(numeric - analytic[i]) / Math.max(1e-2, Math.abs(numeric) + Math.abs(analytic[i]));
            if (err > worst) {
                worst = err;
                detail = what + "[" + i + "]: numeric " + numeric + ", analytic " + analytic[i];
            }
        }
        if (worst > tol) {
            fail("gradient check failed, relative error " + worst + " at " + detail);
        }
        boolean allZero = true;
        for (float a : analytic) {
            allZero &= a == 0f;
        }
        if (allZero && param.length > 0) {
            fail(what + ": analytic gradient is identically zero; the check would prove nothing");
        }
    }
}

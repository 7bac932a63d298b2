package io.lora4j.kernels;

/**
 * AdamW (Loshchilov &amp; Hutter) with bias correction and decoupled weight decay, one step over a
 * flat parameter buffer: {@code m = β1 m + (1−β1) g}, {@code v = β2 v + (1−β2) g²},
 * {@code p −= lr · (m̂ / (sqrt(v̂) + eps) + wd · p)} with {@code m̂ = m / (1 − β1^t)}, {@code v̂ = v / (1 − β2^t)}.
 * Glossary: N parameters, t the 1-based step.
 */
public final class AdamW {
    private AdamW() {
    }

    /** Positions in the hyper-parameter array of {@link #updateNaive} (it changes every step, so a device plan copies it in). */
    public static final int LR = 0, BETA1 = 1, BETA2 = 2, EPS = 3, WEIGHT_DECAY = 4, C1 = 5, C2 = 6, GRAD_SCALE = 7, HYPER = 8;

    /**
     * Fills {@code h} (length {@link #HYPER}) for step {@code t}; {@code gradScale} multiplies the
     * gradients first (global-norm clipping; 1 leaves them exactly as they are). The bias
     * corrections are computed as {@link #update} computes them.
     */
    public static void hyper(float[] h, float lr, float beta1, float beta2, float eps, float weightDecay, int t, float gradScale) {
        h[LR] = lr;
        h[BETA1] = beta1;
        h[BETA2] = beta2;
        h[EPS] = eps;
        h[WEIGHT_DECAY] = weightDecay;
        h[C1] = 1.0f - (float) Math.pow(beta1, t);
        h[C2] = 1.0f - (float) Math.pow(beta2, t);
        h[GRAD_SCALE] = gradScale;
    }

    /**
     * Naive oracle and device kernel, hyper-parameters from {@link #hyper}.
     *
     * @param p (N) parameters, updated
     * @param g (N) gradients (read only: the scale is applied on the fly)
     * @param m (N) first moments, updated
     * @param v (N) second moments, updated
     * @param h (HYPER) see {@link #hyper}
     */
    public static void updateNaive(float[] p, float[] g, float[] m, float[] v, float[] h, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            float gi = g[i] * h[GRAD_SCALE];
            float mi = h[BETA1] * m[i] + (1.0f - h[BETA1]) * gi;
            float vi = h[BETA2] * v[i] + (1.0f - h[BETA2]) * gi * gi;
            m[i] = mi;
            v[i] = vi;
            p[i] -= h[LR] * ((mi / h[C1]) / ((float) Math.sqrt(vi / h[C2]) + h[EPS]) + h[WEIGHT_DECAY] * p[i]);
        }
    }

    /** Fast twin of {@link #updateNaive} (gradients already scaled), split across threads; bitwise equal to it. */
    public static void update(float[] p, float[] g, float[] m, float[] v, float lr, float beta1, float beta2,
                              float eps, float weightDecay, int t, int N) {
        update(p, g, m, v, lr, beta1, beta2, eps, weightDecay, t, 0, N);
    }

    /**
     * {@link #update} of the elements {@code [off, off+N)} only (one parameter group of an optimizer with
     * several learning rates); every element is updated exactly as the whole-buffer update updates it.
     */
    public static void update(float[] p, float[] g, float[] m, float[] v, float lr, float beta1, float beta2,
                              float eps, float weightDecay, int t, int off, int N) {
        float c1 = 1.0f - (float) Math.pow(beta1, t);
        float c2 = 1.0f - (float) Math.pow(beta2, t);
        Threads.parallelFor(N, 12, (from0, to0) -> {
            for (int i = off + from0, to = off + to0; i < to; i++) {
                float mi = beta1 * m[i] + (1.0f - beta1) * g[i];
                float vi = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
                m[i] = mi;
                v[i] = vi;
                p[i] -= lr * ((mi / c1) / ((float) Math.sqrt(vi / c2) + eps) + weightDecay * p[i]);
            }
        });
    }
}

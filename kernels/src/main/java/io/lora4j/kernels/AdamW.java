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

    /**
     * Naive oracle.
     *
     * @param p (N) parameters, updated
     * @param g (N) gradients
     * @param m (N) first moments, updated
     * @param v (N) second moments, updated
     */
    public static void updateNaive(float[] p, float[] g, float[] m, float[] v, float lr, float beta1, float beta2,
                                   float eps, float weightDecay, int t, int N) {
        float c1 = 1.0f - (float) Math.pow(beta1, t);
        float c2 = 1.0f - (float) Math.pow(beta2, t);
        for (@Parallel int i = 0; i < N; i++) {
            float mi = beta1 * m[i] + (1.0f - beta1) * g[i];
            float vi = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
            m[i] = mi;
            v[i] = vi;
            p[i] -= lr * ((mi / c1) / ((float) Math.sqrt(vi / c2) + eps) + weightDecay * p[i]);
        }
    }

    /** Fast twin of {@link #updateNaive}, split across threads; bitwise equal to it. */
    public static void update(float[] p, float[] g, float[] m, float[] v, float lr, float beta1, float beta2,
                              float eps, float weightDecay, int t, int N) {
        float c1 = 1.0f - (float) Math.pow(beta1, t);
        float c2 = 1.0f - (float) Math.pow(beta2, t);
        Threads.parallelFor(N, 12, (from, to) -> {
            for (int i = from; i < to; i++) {
                float mi = beta1 * m[i] + (1.0f - beta1) * g[i];
                float vi = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
                m[i] = mi;
                v[i] = vi;
                p[i] -= lr * ((mi / c1) / ((float) Math.sqrt(vi / c2) + eps) + weightDecay * p[i]);
            }
        });
    }
}

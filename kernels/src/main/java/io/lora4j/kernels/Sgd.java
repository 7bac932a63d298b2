package io.lora4j.kernels;

/**
 * Plain SGD with optional momentum and decoupled weight decay:
 * {@code buf = μ·buf + g} (when μ &gt; 0), {@code p −= lr · (buf + wd·p)}. Glossary: N parameters.
 */
public final class Sgd {
    private Sgd() {
    }

    /** Positions in the hyper-parameter array of {@link #updateNaive}. */
    public static final int LR = 0, MOMENTUM = 1, WEIGHT_DECAY = 2, GRAD_SCALE = 3, HYPER = 4;

    /** Fills {@code h} (length {@link #HYPER}); {@code gradScale} multiplies the gradients first (1: unchanged). */
    public static void hyper(float[] h, float lr, float momentum, float weightDecay, float gradScale) {
        h[LR] = lr;
        h[MOMENTUM] = momentum;
        h[WEIGHT_DECAY] = weightDecay;
        h[GRAD_SCALE] = gradScale;
    }

    /**
     * Naive oracle and device kernel, hyper-parameters from {@link #hyper}.
     *
     * @param p   (N) parameters, updated
     * @param g   (N) gradients (read only)
     * @param buf (N) momentum buffer (unused when momentum is 0)
     * @param h   (HYPER)
     */
    public static void updateNaive(float[] p, float[] g, float[] buf, float[] h, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            float d = g[i] * h[GRAD_SCALE];
            if (h[MOMENTUM] > 0f) {
                d = h[MOMENTUM] * buf[i] + d;
                buf[i] = d;
            }
            p[i] -= h[LR] * (d + h[WEIGHT_DECAY] * p[i]);
        }
    }

    /** Fast twin of {@link #updateNaive}, split across threads; bitwise equal to it. */
    public static void update(float[] p, float[] g, float[] buf, float lr, float momentum, float weightDecay, int N) {
        update(p, g, buf, lr, momentum, weightDecay, 0, N);
    }

    /** {@link #update} of the elements {@code [off, off+N)} only (one parameter group). */
    public static void update(float[] p, float[] g, float[] buf, float lr, float momentum, float weightDecay, int off, int N) {
        Threads.parallelFor(N, 4, (from0, to0) -> {
            for (int i = off + from0, to = off + to0; i < to; i++) {
                float d = g[i];
                if (momentum > 0f) {
                    d = momentum * buf[i] + d;
                    buf[i] = d;
                }
                p[i] -= lr * (d + weightDecay * p[i]);
            }
        });
    }
}

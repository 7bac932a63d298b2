package io.lora4j.kernels;

/**
 * Plain SGD with optional momentum and decoupled weight decay:
 * {@code buf = μ·buf + g} (when μ &gt; 0), {@code p −= lr · (buf + wd·p)}. Glossary: N parameters.
 */
public final class Sgd {
    private Sgd() {
    }

    /**
     * Naive oracle.
     *
     * @param p   (N) parameters, updated
     * @param g   (N) gradients
     * @param buf (N) momentum buffer (unused when momentum is 0)
     */
    public static void updateNaive(float[] p, float[] g, float[] buf, float lr, float momentum, float weightDecay, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            float d = g[i];
            if (momentum > 0f) {
                d = momentum * buf[i] + d;
                buf[i] = d;
            }
            p[i] -= lr * (d + weightDecay * p[i]);
        }
    }

    /** Fast twin of {@link #updateNaive}, split across threads; bitwise equal to it. */
    public static void update(float[] p, float[] g, float[] buf, float lr, float momentum, float weightDecay, int N) {
        Threads.parallelFor(N, 4, (from, to) -> {
            for (int i = from; i < to; i++) {
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

package io.lora4j.kernels;

/**
 * Inverted dropout with counter-based masks: element j is kept when {@link #uniform}(seed, j) ≥ p,
 * and kept elements are scaled by 1/(1 − p). The mask is a pure function of (seed, j), so a
 * recomputation (gradient checkpointing) or a device gives the same mask without storing it.
 * Seed and p come in one-element arrays so a device plan can change them between executions
 * (p = 0 keeps everything: evaluation). Glossary: N elements.
 */
public final class Dropout {
    private Dropout() {
    }

    /**
     * A uniform float in [0, 1) from (seed, index): splitmix64 of their combination, top 24 bits. The
     * unsigned shifts are written as arithmetic shifts and masks ({@code z >>> k == (z >> k) & (2^(64-k) − 1)}):
     * the same bits, in a form TornadoVM's OpenCL code generator translates correctly.
     */
    public static float uniform(long seed, long index) {
        long z = seed + (index + 1) * 0x9E3779B97F4A7C15L;
        z = (z ^ ((z >> 30) & 0x3FFFFFFFFL)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ ((z >> 27) & 0x1FFFFFFFFFL)) * 0x94D049BB133111EBL;
        z = z ^ ((z >> 31) & 0x1FFFFFFFFL);
        return (int) ((z >> 40) & 0xFFFFFF) / (float) (1 << 24);
    }

    /**
     * {@code out = x ⊙ keep / (1 − p)}. Naive oracle and device kernel.
     *
     * @param out  (N)
     * @param x    (N)
     * @param seed (1)
     * @param p    (1) drop probability in [0, 1)
     */
    public static void forwardNaive(float[] out, float[] x, long[] seed, float[] p, int N) {
        for (@Parallel int j = 0; j < N; j++) {
            float keep = 1f / (1f - p[0]);
            out[j] = uniform(seed[0], j) >= p[0] ? x[j] * keep : 0f;
        }
    }

    /** Fast twin of {@link #forwardNaive} with scalar seed and p, split across threads; bitwise equal to it. */
    public static void forward(float[] out, float[] x, long seed, float p, int N) {
        float keep = 1f / (1f - p);
        Threads.parallelFor(N, 12, (from, to) -> {
            for (int j = from; j < to; j++) {
                out[j] = uniform(seed, j) >= p ? x[j] * keep : 0f;
            }
        });
    }

    /**
     * Backward, accumulated onto the input gradient: {@code dx += dout ⊙ keep / (1 − p)}. Naive
     * oracle and device kernel.
     */
    public static void backwardNaive(float[] dx, float[] dout, long[] seed, float[] p, int N) {
        for (@Parallel int j = 0; j < N; j++) {
            float keep = 1f / (1f - p[0]);
            if (uniform(seed[0], j) >= p[0]) {
                dx[j] += dout[j] * keep;
            }
        }
    }

    /** Fast twin of {@link #backwardNaive}; bitwise equal to it. */
    public static void backward(float[] dx, float[] dout, long seed, float p, int N) {
        float keep = 1f / (1f - p);
        Threads.parallelFor(N, 12, (from, to) -> {
            for (int j = from; j < to; j++) {
                if (uniform(seed, j) >= p) {
                    dx[j] += dout[j] * keep;
                }
            }
        });
    }
}

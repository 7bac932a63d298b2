package io.lora4j.kernels;

/**
 * {@code y += a · x} over N elements: residual connections (a = 1) and scaled low-rank branches.
 * Glossary: N elements.
 */
public final class Axpy {
    private Axpy() {
    }

    /**
     * Naive oracle and device kernel (TornadoVM kernel subset).
     *
     * @param y (N) accumulated
     * @param x (N)
     */
    public static void forwardNaive(float[] y, float[] x, float a, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            y[i] += a * x[i];
        }
    }

    /** Fast twin of {@link #forwardNaive}, split across threads (the JIT vectorises the loop); bitwise equal to it. */
    public static void forward(float[] y, float[] x, float a, int N) {
        Threads.parallelFor(N, 2, (from, to) -> {
            for (int i = from; i < to; i++) {
                y[i] += a * x[i];
            }
        });
    }
}

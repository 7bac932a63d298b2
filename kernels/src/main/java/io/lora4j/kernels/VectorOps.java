package io.lora4j.kernels;

/**
 * Level-1 vector kernels: {@code y += a·x} (residual connections, scaled low-rank branches),
 * {@code y = a·x}, {@code y = v}, and partial sums of squares (gradient norms; TornadoVM's
 * {@code @Reduce} has no project-owned substitute, so a reduction is a kernel over chunks whose
 * partial results the host adds). Glossary: N elements.
 */
public final class VectorOps {
    private VectorOps() {
    }

    /**
     * {@code y += a·x}. Naive oracle and device kernel (TornadoVM kernel subset).
     *
     * @param y (N) accumulated
     * @param x (N)
     */
    public static void axpyNaive(float[] y, float[] x, float a, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            y[i] += a * x[i];
        }
    }

    /** Fast twin of {@link #axpyNaive}, split across threads (the JIT vectorises the loop); bitwise equal to it. */
    public static void axpy(float[] y, float[] x, float a, int N) {
        Threads.parallelFor(N, 2, (from, to) -> {
            for (int i = from; i < to; i++) {
                y[i] += a * x[i];
            }
        });
    }

    /**
     * {@code y[t][i] += a·v[vOff + i]} for every row t: a bias broadcast over (T, N) rows (device kernel;
     * an adapter's lora_B bias from the flat parameter buffer).
     */
    public static void addRowsNaive(float[] y, float[] v, int vOff, float a, int T, int N) {
        for (@Parallel int i = 0; i < T * N; i++) {
            y[i] += a * v[vOff + i % N];
        }
    }

    /** {@code y = x[n[0] − 1]}: the last of the first n[0] rows of x (C wide), e.g. the last real token of a chunk (device kernel). */
    public static void lastRowNaive(float[] y, float[] x, int[] n, int C) {
        for (@Parallel int i = 0; i < C; i++) {
            y[i] = x[(n[0] - 1) * C + i];
        }
    }

    /** {@code y = a·x} (device kernel). */
    public static void scaleNaive(float[] y, float[] x, float a, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            y[i] = a * x[i];
        }
    }

    /**
     * {@code y[t][j] = x[t][j] · v[j]}: each row of an (N / M, M) matrix times a vector (device kernel;
     * AdaLoRA's singular values scaling {@code A x}).
     */
    public static void mulRowsNaive(float[] y, float[] x, float[] v, int N, int M) {
        for (@Parallel int i = 0; i < N; i++) {
            y[i] = x[i] * v[i % M];
        }
    }

    /** {@code y = v} (device kernel: zeroing gradients). */
    public static void fillNaive(float[] y, float v, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            y[i] = v;
        }
    }

    /**
     * Partial sums of squares (device kernel): {@code partial[b] = Σ x[i]²} over the chunk
     * {@code [b·chunk, min((b+1)·chunk, N))}, in index order; the host adds the {@code ceil(N / chunk)}
     * partials.
     */
    public static void sumSquaresNaive(float[] partial, float[] x, int N, int chunk) {
        int nb = (N + chunk - 1) / chunk;
        for (@Parallel int b = 0; b < nb; b++) {
            float s = 0f;
            int end = Math.min(N, (b + 1) * chunk);
            for (int i = b * chunk; i < end; i++) {
                s += x[i] * x[i];
            }
            partial[b] = s;
        }
    }
}

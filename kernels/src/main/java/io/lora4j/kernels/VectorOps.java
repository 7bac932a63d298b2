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
     * {@code y[t][j] = x[t][j] · v[vOff + j]}: each row of an (N / M, M) matrix times a vector (device kernel;
     * AdaLoRA's singular values E, from the flat parameter buffer, scaling {@code A x} and its gradient).
     */
    public static void mulRowsNaive(float[] y, float[] x, float[] v, int vOff, int N, int M) {
        for (@Parallel int i = 0; i < N; i++) {
            y[i] = x[i] * v[vOff + i % M];
        }
    }

    /** {@code y[i] *= m[i]} (device kernel: AdaLoRA's rank allocator's mask over the flat parameters). */
    public static void mulNaive(float[] y, float[] m, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            y[i] *= m[i];
        }
    }

    /**
     * {@code y[t] = table[off + idx[t]·C ..]}, zeros where {@code idx[t] < 0}: rows of a (·, C) table, e.g. token
     * embeddings from a trainable copy in the flat parameter buffer (device kernel).
     *
     * @param y   (T, C)
     * @param idx (T)
     */
    public static void gatherRowsNaive(float[] y, float[] table, int off, int[] idx, int T, int C) {
        for (@Parallel int i = 0; i < T * C; i++) {
            int t = i / C;
            y[i] = idx[t] >= 0 ? table[off + idx[t] * C + i % C] : 0f;
        }
    }

    /**
     * {@code table[off + idx[t]·C ..] += x[t]} for every t with {@code idx[t] ≥ 0}, in order of t: the gradient of
     * {@link #gatherRowsNaive}. Parallel over columns, so that repeated indices do not race (device kernel).
     *
     * @param x   (T, C)
     * @param idx (T)
     */
    public static void scatterAddRowsNaive(float[] table, int off, float[] x, int[] idx, int T, int C) {
        for (@Parallel int c = 0; c < C; c++) {
            for (int t = 0; t < T; t++) {
                if (idx[t] >= 0) {
                    table[off + idx[t] * C + c] += x[t * C + c];
                }
            }
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

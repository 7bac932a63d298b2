package io.lora4j.kernels;

/**
 * AdaLoRA's orthogonal regulariser of one factor, {@code R = ‖G − I‖_F} with G the Gram matrix of
 * its K rank vectors: {@code G = A Aᵀ} for lora_A (K, N) whose rows are the vectors, {@code G = BᵀB}
 * for lora_B (N, K) whose columns are. {@code dR/dM = (2/R) · D M} (rows) or {@code (2/R) · M D}
 * (columns), with {@code D = G − I} symmetric.
 * Glossary: K rank, N the other width, rows whether the K vectors are M's rows (A) or columns (B).
 * Element (k, n) of M is {@code m[k·N + n]} for rows, {@code m[n·K + k]} for columns.
 */
public final class Orthogonality {
    private Orthogonality() {
    }

    /**
     * Naive oracle: {@code d = G − I}.
     *
     * @param d (K, K) out
     * @param m (K, N) or (N, K)
     */
    public static void forwardNaive(float[] d, float[] m, int K, int N, boolean rows) {
        for (@Parallel int i = 0; i < K; i++) {
            for (int j = 0; j < K; j++) {
                float acc = 0f;
                for (int n = 0; n < N; n++) {
                    acc += (rows ? m[i * N + n] : m[n * K + i]) * (rows ? m[j * N + n] : m[n * K + j]);
                }
                d[i * K + j] = i == j ? acc - 1f : acc;
            }
        }
    }

    /** Fast twin of {@link #forwardNaive}, parallel over the rows of D; bitwise equal to it. */
    public static void forward(float[] d, float[] m, int K, int N, boolean rows) {
        Threads.parallelFor(K, (long) K * N * 2, (from, to) -> {
            for (int i = from; i < to; i++) {
                for (int j = 0; j < K; j++) {
                    float acc = 0f;
                    if (rows) {
                        int io = i * N, jo = j * N;
                        for (int n = 0; n < N; n++) {
                            acc += m[io + n] * m[jo + n];
                        }
                    } else {
                        for (int n = 0; n < N; n++) {
                            acc += m[n * K + i] * m[n * K + j];
                        }
                    }
                    d[i * K + j] = i == j ? acc - 1f : acc;
                }
            }
        });
    }

    /** {@code ‖D‖_F}, summed in double. */
    public static double norm(float[] d, int K) {
        double s = 0;
        for (int i = 0; i < K * K; i++) {
            s += (double) d[i] * d[i];
        }
        return Math.sqrt(s);
    }

    /**
     * Naive oracle of the backward: {@code dm(k, n) += coef · Σ_j D[k, j] · m(j, n)}; pass
     * {@code coef = (2 / R) · dL/dR}.
     *
     * @param dm (K, N) or (N, K) accumulated
     * @param d  (K, K) from the forward
     */
    public static void backwardNaive(float[] dm, float[] d, float[] m, float coef, int K, int N, boolean rows) {
        for (@Parallel int k = 0; k < K; k++) {
            for (int n = 0; n < N; n++) {
                float acc = 0f;
                for (int j = 0; j < K; j++) {
                    acc += d[k * K + j] * (rows ? m[j * N + n] : m[n * K + j]);
                }
                if (rows) {
                    dm[k * N + n] += coef * acc;
                } else {
                    dm[n * K + k] += coef * acc;
                }
            }
        }
    }

    /** Fast twin of {@link #backwardNaive}, parallel over the K vectors; bitwise equal to it. */
    public static void backward(float[] dm, float[] d, float[] m, float coef, int K, int N, boolean rows) {
        Threads.parallelFor(K, (long) K * N * 2, (from, to) -> {
            for (int k = from; k < to; k++) {
                int dko = k * K;
                for (int n = 0; n < N; n++) {
                    float acc = 0f;
                    if (rows) {
                        for (int j = 0; j < K; j++) {
                            acc += d[dko + j] * m[j * N + n];
                        }
                        dm[k * N + n] += coef * acc;
                    } else {
                        int mo = n * K;
                        for (int j = 0; j < K; j++) {
                            acc += d[dko + j] * m[mo + j];
                        }
                        dm[mo + k] += coef * acc;
                    }
                }
            }
        });
    }
}

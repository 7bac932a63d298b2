package io.lora4j.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * RMSNorm: {@code out[t][c] = x[t][c] · rstd[t] · w[c]}, {@code rstd[t] = 1 / sqrt(mean_c(x[t][c]²) + eps)}.
 * Glossary: T tokens, C channels. rstd is kept for the backward pass.
 */
public final class RmsNorm {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;

    private RmsNorm() {
    }

    /**
     * Naive oracle (TornadoVM kernel subset).
     *
     * @param out  (T, C)
     * @param rstd (T)
     * @param x    (T, C)
     * @param w    (C)
     */
    public static void forwardNaive(float[] out, float[] rstd, float[] x, float[] w, int T, int C, float eps) {
        for (@Parallel int t = 0; t < T; t++) {
            float ss = 0f;
            for (int c = 0; c < C; c++) {
                ss += x[t * C + c] * x[t * C + c];
            }
            float r = 1.0f / (float) Math.sqrt(ss / C + eps);
            rstd[t] = r;
            for (int c = 0; c < C; c++) {
                out[t * C + c] = w[c] * (r * x[t * C + c]);
            }
        }
    }

    /** Fast twin of {@link #forwardNaive}: Vector API, parallel over tokens. Same argument layout. */
    public static void forward(float[] out, float[] rstd, float[] x, float[] w, int T, int C, float eps) {
        Threads.parallelFor(T, (long) C * 4, (from, to) -> {
            for (int t = from; t < to; t++) {
                forwardRow(out, rstd, x, w, t, C, eps);
            }
        });
    }

    private static void forwardRow(float[] out, float[] rstd, float[] x, float[] w, int t, int C, float eps) {
        int base = t * C;
        int upper = S.loopBound(C);
        FloatVector acc = FloatVector.zero(S);
        int c = 0;
        for (; c < upper; c += S.length()) {
            FloatVector v = FloatVector.fromArray(S, x, base + c);
            acc = v.fma(v, acc);
        }
        for (VectorShuffle<Float> fold : Matmul.FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        float ss = acc.lane(0);
        for (; c < C; c++) {
            ss += x[base + c] * x[base + c];
        }
        float r = 1.0f / (float) Math.sqrt(ss / C + eps);
        rstd[t] = r;
        c = 0;
        for (; c < upper; c += S.length()) {
            FloatVector v = FloatVector.fromArray(S, x, base + c).mul(r);
            v.mul(FloatVector.fromArray(S, w, c)).intoArray(out, base + c);
        }
        for (; c < C; c++) {
            out[base + c] = w[c] * (r * x[base + c]);
        }
    }

    /**
     * Backward of {@link #forwardNaive} with respect to x (naive oracle and device kernel). With
     * x̂ = x·rstd and g = w ⊙ dout: {@code dx = rstd · (g − x̂ · mean(g ⊙ x̂))} (assigned).
     *
     * @param dx   (T, C) out, may not alias dout
     * @param dout (T, C)
     * @param x    (T, C) the forward input
     * @param rstd (T) saved by the forward
     */
    public static void backwardNaive(float[] dx, float[] dout, float[] x, float[] w, float[] rstd, int T, int C) {
        for (@Parallel int t = 0; t < T; t++) {
            float r = rstd[t];
            float dot = 0f;
            for (int c = 0; c < C; c++) {
                dot += w[c] * dout[t * C + c] * x[t * C + c] * r;
            }
            float mean = dot / C;
            for (int c = 0; c < C; c++) {
                float xhat = x[t * C + c] * r;
                dx[t * C + c] = r * (w[c] * dout[t * C + c] - xhat * mean);
            }
        }
    }

    /** Backward with respect to the gain (naive oracle): {@code dw += Σ_t dout ⊙ x̂} (accumulated). */
    public static void backwardWeightNaive(float[] dw, float[] dout, float[] x, float[] rstd, int T, int C) {
        for (@Parallel int c = 0; c < C; c++) {
            float acc = 0f;
            for (int t = 0; t < T; t++) {
                acc += dout[t * C + c] * x[t * C + c] * rstd[t];
            }
            dw[c] += acc;
        }
    }

    /**
     * Fast twin of {@link #backwardNaive} and, when {@code dw} is not null, {@link #backwardWeightNaive}:
     * the same loops, parallel over tokens, then over channels.
     */
    public static void backward(float[] dx, float[] dw, float[] dout, float[] x, float[] w, float[] rstd, int T, int C) {
        Threads.parallelFor(T, (long) C * 6, (from, to) -> {
            for (int t = from; t < to; t++) {
                int base = t * C;
                float r = rstd[t];
                float dot = 0f;
                for (int c = 0; c < C; c++) {
                    dot += w[c] * dout[base + c] * x[base + c];
                }
                float mean = dot * r / C;
                for (int c = 0; c < C; c++) {
                    dx[base + c] = r * (w[c] * dout[base + c] - x[base + c] * r * mean);
                }
            }
        });
        if (dw != null) {
            Threads.parallelFor(C, (long) T * 3, (from, to) -> {
                for (int c = from; c < to; c++) {
                    float acc = 0f;
                    for (int t = 0; t < T; t++) {
                        acc += dout[t * C + c] * x[t * C + c] * rstd[t];
                    }
                    dw[c] += acc;
                }
            });
        }
    }
}

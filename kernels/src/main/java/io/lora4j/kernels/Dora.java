package io.lora4j.kernels;

/**
 * DoRA's magnitude step (Liu et al. 2024, "DoRA: Weight-Decomposed Low-Rank Adaptation", as PEFT's
 * {@code peft/tuners/lora/dora.py} computes it): after a branch's low-rank product, output row o of the
 * projection is rescaled by {@code g_o = m_o / ‖W_o + s·(B A)_o‖}, the trainable magnitude over the
 * L2 norm of row o of the adapted weight. The norm is a constant in backward (the paper's §4.3, PEFT's
 * {@code weight_norm.detach()}), so {@code ∂y/∂m_o = pre_o / ‖·‖_o} and the gradient flowing on is
 * {@code g ⊙ dy}. The magnitude sits at {@code p[mOff..mOff+OUT)} of an adapter's flat parameters.
 * Glossary: T rows, IN, OUT the projection's widths, r rank, s scaling.
 */
public final class Dora {
    private Dora() {
    }

    /**
     * Row norms of the adapted weight, naive oracle: {@code norm[o] = ‖W[o] + s·B[o]·A‖₂}, the sum of
     * squares in double.
     *
     * @param norm (OUT) out
     * @param w    (OUT, IN) the base weight, dense
     * @param p    the flat parameters: A (r, IN) at aOff, B (OUT, r) at bOff
     */
    public static void normsNaive(float[] norm, float[] w, float[] p, int aOff, int bOff, float s, int IN, int OUT, int r) {
        for (int o = 0; o < OUT; o++) {
            double sum = 0;
            for (int i = 0; i < IN; i++) {
                float ba = 0f;
                for (int j = 0; j < r; j++) {
                    ba += p[bOff + o * r + j] * p[aOff + j * IN + i];
                }
                float v = w[o * IN + i] + s * ba;
                sum += (double) v * v;
            }
            norm[o] = (float) Math.sqrt(sum);
        }
    }

    /**
     * Fast twin of {@link #normsNaive} over a weight of any type (each row dequantized: QDoRA's norm is
     * that of the dequantized base), parallel over rows; bitwise equal to the naive form on the
     * dequantized matrix.
     */
    public static void norms(float[] norm, Weight w, float[] p, int aOff, int bOff, float s, int IN, int OUT, int r) {
        Threads.parallelFor(OUT, (long) IN * (r + 2), (from, to) -> {
            float[] row = new float[IN];
            float[] ba = new float[IN];
            for (int o = from; o < to; o++) {
                Dequant.row(w, o, row, 0);
                java.util.Arrays.fill(ba, 0f);
                for (int j = 0; j < r; j++) {
                    float b = p[bOff + o * r + j];
                    int ao = aOff + j * IN;
                    for (int i = 0; i < IN; i++) {
                        ba[i] += b * p[ao + i];
                    }
                }
                double sum = 0;
                for (int i = 0; i < IN; i++) {
                    float v = row[i] + s * ba[i];
                    sum += (double) v * v;
                }
                norm[o] = (float) Math.sqrt(sum);
            }
        });
    }

    /**
     * {@code y[t][o] *= m[o] / norm[o]} for the first {@code n[0]} of T rows. Naive oracle and device kernel.
     *
     * @param y    (T, OUT) in place
     * @param norm (OUT)
     */
    public static void forwardNaive(float[] y, float[] p, int mOff, float[] norm, int[] n, int T, int OUT) {
        for (@Parallel int i = 0; i < T * OUT; i++) {
            if (i < n[0] * OUT) {
                int o = i % OUT;
                y[i] = y[i] * (p[mOff + o] / norm[o]);
            }
        }
    }

    /**
     * Fast twin of {@link #forwardNaive} on all T rows; with {@code pre} non-null the rows before the
     * rescale are kept there for the backward. Bitwise equal to the naive form.
     *
     * @param pre (T, OUT) out, or null
     */
    public static void forward(float[] y, float[] pre, float[] p, int mOff, float[] norm, int T, int OUT) {
        if (pre != null) {
            System.arraycopy(y, 0, pre, 0, T * OUT);
        }
        Threads.parallelFor(T, OUT, (from, to) -> {
            for (int t = from; t < to; t++) {
                for (int o = 0; o < OUT; o++) {
                    y[t * OUT + o] = y[t * OUT + o] * (p[mOff + o] / norm[o]);
                }
            }
        });
    }

    /** {@link #forward} (without pre) on the listed rows only ({@code rows[0..n)} of y); each computed as forward computes it. */
    public static void forwardRows(float[] y, int[] rows, int n, float[] p, int mOff, float[] norm, int OUT) {
        for (int k = 0; k < n; k++) {
            int t = rows[k];
            for (int o = 0; o < OUT; o++) {
                y[t * OUT + o] = y[t * OUT + o] * (p[mOff + o] / norm[o]);
            }
        }
    }

    /**
     * PEFT's DoRA while training with lora_dropout: {@code y += (g − 1) ⊙ pre}, where
     * {@code pre = W·dropout(x) + s·B A dropout(x)} (PEFT recomputes the base result from the dropped-out
     * input) and y already holds {@code W x + s·B A dropout(x)}. The backward is {@link #backward} with
     * this pre, plus the base's share {@code Wᵀ((g − 1) ⊙ dy)} through the dropout mask (the executor's).
     */
    public static void forwardDropout(float[] y, float[] pre, float[] p, int mOff, float[] norm, int T, int OUT) {
        Threads.parallelFor(T, OUT, (from, to) -> {
            for (int t = from; t < to; t++) {
                for (int o = 0; o < OUT; o++) {
                    y[t * OUT + o] += (p[mOff + o] / norm[o] - 1f) * pre[t * OUT + o];
                }
            }
        });
    }

    /**
     * Backward (naive oracle): {@code dm[o] += (Σ_t dy[t][o]·pre[t][o]) / norm[o]} into the gradients
     * {@code g} at mOff, and {@code dyOut = (m / norm) ⊙ dy} (assigned; may be dy itself).
     *
     * @param dyOut (T, OUT) out
     * @param dy    (T, OUT)
     * @param pre   (T, OUT) the rows before the rescale (the forward's {@code pre})
     */
    public static void backwardNaive(float[] dyOut, float[] g, float[] dy, float[] pre, float[] p, int mOff, float[] norm,
                                     int T, int OUT) {
        for (int o = 0; o < OUT; o++) {
            float acc = 0f;
            for (int t = 0; t < T; t++) {
                acc += dy[t * OUT + o] * pre[t * OUT + o];
            }
            g[mOff + o] += acc / norm[o];
        }
        for (int i = 0; i < T * OUT; i++) {
            int o = i % OUT;
            dyOut[i] = dy[i] * (p[mOff + o] / norm[o]);
        }
    }

    /** Fast twin of {@link #backwardNaive}, each pass parallel; bitwise equal to it. */
    public static void backward(float[] dyOut, float[] g, float[] dy, float[] pre, float[] p, int mOff, float[] norm,
                                int T, int OUT) {
        Threads.parallelFor(OUT, 2L * T, (from, to) -> {
            for (int o = from; o < to; o++) {
                float acc = 0f;
                for (int t = 0; t < T; t++) {
                    acc += dy[t * OUT + o] * pre[t * OUT + o];
                }
                g[mOff + o] += acc / norm[o];
            }
        });
        Threads.parallelFor(T, OUT, (from, to) -> {
            for (int t = from; t < to; t++) {
                for (int o = 0; o < OUT; o++) {
                    dyOut[t * OUT + o] = dy[t * OUT + o] * (p[mOff + o] / norm[o]);
                }
            }
        });
    }

    /**
     * A DoRA branch merged: {@code w[o] *= m[o] / norm[o]} for every row of w, which holds
     * {@code W + s·B A} (PEFT: {@code (m / ‖W + s·BA‖) ⊙ (W + s·BA)}, the norm taken on the unmerged base).
     *
     * @param w (OUT, IN) in place
     */
    public static void mergeNaive(float[] w, float[] p, int mOff, float[] norm, int IN, int OUT) {
        for (@Parallel int o = 0; o < OUT; o++) {
            float g = p[mOff + o] / norm[o];
            for (int i = 0; i < IN; i++) {
                w[o * IN + i] = w[o * IN + i] * g;
            }
        }
    }
}

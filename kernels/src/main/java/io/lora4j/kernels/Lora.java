package io.lora4j.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The low-rank branch of a LoRA linear: {@code y += s · B diag(e) (A x)}, never forming W + s·BA.
 * For plain LoRA {@code e = 1} (multiplying by 1 changes no bit, so the results are those of
 * {@code s·B(Ax)} exactly); for AdaLoRA's SVD-parametrised branch {@code e} holds the singular
 * values {@code lora_E}, i.e. {@code y += s · B ((A ⊙ E) x)}.
 * Glossary: T tokens, IN input width, OUT output width, r rank, s scaling (alpha / r, alpha / sqrt r,
 * or AdaLoRA's alpha / (init_r + 1e-5)), e the per-rank scale.
 * {@code ax = A x} (T, r), without e, is kept for the backward pass.
 */
public final class Lora {
    private Lora() {
    }

    /**
     * Naive oracle: {@code ax[t] = A x[t]}, then {@code y[t] += s · B (e ⊙ ax[t])} (accumulated onto the base output).
     *
     * @param y  (T, OUT) accumulated
     * @param ax (T, r) out
     * @param x  (T, IN) the (dropped-out) input
     * @param a  (r, IN)
     * @param e  (r)
     * @param b  (OUT, r)
     */
    public static void forwardNaive(float[] y, float[] ax, float[] x, float[] a, float[] e, float[] b, float s,
                                    int T, int IN, int OUT, int r) {
        for (@Parallel int t = 0; t < T; t++) {
            for (int j = 0; j < r; j++) {
                float acc = 0f;
                for (int c = 0; c < IN; c++) {
                    acc += a[j * IN + c] * x[t * IN + c];
                }
                ax[t * r + j] = acc;
            }
            for (int o = 0; o < OUT; o++) {
                float acc = 0f;
                for (int j = 0; j < r; j++) {
                    acc += b[o * r + j] * (e[j] * ax[t * r + j]);
                }
                y[t * OUT + o] += s * acc;
            }
        }
    }

    /**
     * Device form of {@link #forwardNaive} over one flat parameter buffer (device plans keep every
     * adapter tensor in one array, llm.c style): A at {@code p[aOff]}, B at {@code p[bOff]}, e at
     * {@code p[eOff]} or, with {@code eOff < 0}, e = 1 (plain LoRA). Only the first {@code n[0]} of the
     * T rows are computed, as in the device matmuls.
     */
    public static void forwardNaive(float[] y, float[] ax, float[] x, float[] p, int aOff, int eOff, int bOff, int[] n,
                                    float s, int T, int IN, int OUT, int r) {
        for (@Parallel int t = 0; t < T; t++) {
            if (t < n[0]) {
                for (int j = 0; j < r; j++) {
                    float acc = 0f;
                    for (int c = 0; c < IN; c++) {
                        acc += p[aOff + j * IN + c] * x[t * IN + c];
                    }
                    ax[t * r + j] = acc;
                }
                for (int o = 0; o < OUT; o++) {
                    float acc = 0f;
                    for (int j = 0; j < r; j++) {
                        float e = 1f;
                        if (eOff >= 0) {
                            e = p[eOff + j];
                        }
                        acc += p[bOff + o * r + j] * (e * ax[t * r + j]);
                    }
                    y[t * OUT + o] += s * acc;
                }
            }
        }
    }

    /**
     * The branch folded into its base weight: {@code w += s · B diag(e) A}, with A, e and B at their
     * offsets of the flat parameters {@code p} as in the device form (eOff &lt; 0: e = 1). Unmerging
     * restores the original instead of subtracting. Naive: merging is rare and memory-bound.
     *
     * @param w (OUT, IN) accumulated
     */
    public static void mergeNaive(float[] w, float[] p, int aOff, int eOff, int bOff, float s, int IN, int OUT, int r) {
        for (@Parallel int o = 0; o < OUT; o++) {
            for (int j = 0; j < r; j++) {
                float e = 1f;
                if (eOff >= 0) {
                    e = p[eOff + j];
                }
                float sb = s * p[bOff + o * r + j] * e;
                for (int i = 0; i < IN; i++) {
                    w[o * IN + i] += sb * p[aOff + j * IN + i];
                }
            }
        }
    }

    /**
     * Fast twin of {@link #forwardNaive}, parallel over tokens (the JIT vectorises the inner dots), over
     * the adapter's flat parameters: A at {@code p[aOff]}, e at {@code p[eOff]} (eOff &lt; 0: e = 1),
     * B at {@code p[bOff]}.
     */
    public static void forward(float[] y, float[] ax, float[] x, float[] p, int aOff, int eOff, int bOff, float s,
                               int T, int IN, int OUT, int r) {
        Threads.parallelFor(T, (long) r * (IN + OUT) * 2, (from, to) -> {
            for (int t = from; t < to; t++) {
                row(y, ax, x, t, p, aOff, eOff, bOff, s, IN, OUT, r);
            }
        });
    }

    /**
     * Row t of {@link #forward}: {@code ax[t] = A x[t]}, {@code y[t] += s · B (e ⊙ ax[t])}. A's rows are
     * dotted four at a time: four independent chains instead of one (a float sum is one chain of dependent
     * adds, which the JIT may not reorder), each still summed over c in order, so the bits are unchanged.
     */
    private static void row(float[] y, float[] ax, float[] x, int t, float[] p, int aOff, int eOff, int bOff, float s,
                            int IN, int OUT, int r) {
        int xo = t * IN;
        int j = 0;
        for (; j + 4 <= r; j += 4) {
            int a0 = aOff + j * IN, a1 = a0 + IN, a2 = a1 + IN, a3 = a2 + IN;
            float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
            for (int c = 0; c < IN; c++) {
                float xc = x[xo + c];
                s0 += p[a0 + c] * xc;
                s1 += p[a1 + c] * xc;
                s2 += p[a2 + c] * xc;
                s3 += p[a3 + c] * xc;
            }
            ax[t * r + j] = s0;
            ax[t * r + j + 1] = s1;
            ax[t * r + j + 2] = s2;
            ax[t * r + j + 3] = s3;
        }
        for (; j < r; j++) {
            float acc = 0f;
            int ao = aOff + j * IN;
            for (int c = 0; c < IN; c++) {
                acc += p[ao + c] * x[xo + c];
            }
            ax[t * r + j] = acc;
        }
        int yo = t * OUT;
        for (int o = 0; o < OUT; o++) {
            float acc = 0f;
            int bo = bOff + o * r;
            for (int k = 0; k < r; k++) {
                float e = eOff < 0 ? 1f : p[eOff + k];
                acc += p[bo + k] * (e * ax[t * r + k]);
            }
            y[yo + o] += s * acc;
        }
    }

    /**
     * An adapter's A and B laid out for {@link #forwardRows}: {@code at} = Aᵀ (IN, rp), its rank padded with
     * zeros to whole vectors, and {@code bt} = Bᵀ (r, OUT), so that one vector holds a row's partial sums for
     * L ranks (A x) or L outputs (B (e ⊙ ax)). Made once per adapter that is served (its values frozen).
     */
    public record RowsLayout(float[] at, float[] bt, int rp) {
    }

    /** {@link RowsLayout} of the adapter at p (A at aOff, B at bOff). */
    public static RowsLayout rowsLayout(float[] p, int aOff, int bOff, int IN, int OUT, int r) {
        int L = FloatVector.SPECIES_PREFERRED.length();
        int rp = (r + L - 1) / L * L;
        float[] at = new float[IN * rp], bt = new float[r * OUT];
        for (int j = 0; j < r; j++) {
            for (int c = 0; c < IN; c++) {
                at[c * rp + j] = p[aOff + j * IN + c];
            }
        }
        for (int o = 0; o < OUT; o++) {
            for (int k = 0; k < r; k++) {
                bt[k * OUT + o] = p[bOff + o * r + k];
            }
        }
        return new RowsLayout(at, bt, rp);
    }

    /**
     * {@link #forward} on the listed rows only ({@code rows[0..n)} of x and y): one adapter's branch in a
     * batch whose rows use different adapters. Each listed row gets {@link #forward}'s bits: every sum is
     * {@link #row}'s, term by term in the same order (products rounded, then added; no FMA), only the
     * independent sums run side by side in vector lanes (ranks for A x, outputs for B (e ⊙ ax)) over the
     * adapter's {@link #rowsLayout}. {@link #row}'s dependent chains took 5 µs per row and projection of
     * 768 (r 8), a tenth of a server's step with 8 adapters.
     */
    public static void forwardRows(float[] y, float[] ax, float[] x, int[] rows, int n, RowsLayout lay, float[] p, int eOff,
                                   float s, int IN, int OUT, int r) {
        Threads.parallelFor(n, (long) r * (IN + OUT) * 2, (from, to) -> {
            for (int k = from; k < to; k++) {
                rowInLanes(y, ax, x, rows[k], lay, p, eOff, s, IN, OUT, r);
            }
        });
    }

    private static void rowInLanes(float[] y, float[] ax, float[] x, int t, RowsLayout lay, float[] p, int eOff, float s,
                                   int IN, int OUT, int r) {
        VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
        int L = F.length(), rp = lay.rp();
        float[] at = lay.at(), bt = lay.bt();
        int xo = t * IN;
        for (int j0 = 0; j0 < rp; j0 += L) {
            FloatVector acc = FloatVector.zero(F);
            for (int c = 0; c < IN; c++) {
                acc = acc.add(FloatVector.fromArray(F, at, c * rp + j0).mul(x[xo + c]));
            }
            acc.intoArray(ax, t * r + j0, F.indexInRange(j0, r)); // the padding lanes (ranks r..rp) are not stored
        }
        float[] v = new float[r];
        for (int k = 0; k < r; k++) {
            float e = eOff < 0 ? 1f : p[eOff + k];
            v[k] = e * ax[t * r + k];
        }
        int yo = t * OUT;
        int o = 0;
        for (; o + L <= OUT; o += L) {
            FloatVector acc = FloatVector.zero(F);
            for (int k = 0; k < r; k++) {
                acc = acc.add(FloatVector.fromArray(F, bt, k * OUT + o).mul(v[k]));
            }
            FloatVector.fromArray(F, y, yo + o).add(acc.mul(s)).intoArray(y, yo + o);
        }
        for (; o < OUT; o++) {
            float acc = 0f;
            for (int k = 0; k < r; k++) {
                acc += bt[k * OUT + o] * v[k];
            }
            y[yo + o] += s * acc;
        }
    }

    /**
     * Backward (naive oracle), race-free passes: {@code g = s · Bᵀ dy} into dax, {@code dE += Σ_t g ⊙ ax},
     * then {@code dax = e ⊙ g} (assigned), {@code dx += Aᵀ dax} (accumulated onto the base path's input gradient),
     * {@code dB += s · dyᵀ (e ⊙ ax)}, {@code dA += daxᵀ x}.
     *
     * @param dx  (T, IN) accumulated
     * @param dA  (r, IN) accumulated
     * @param dE  (r) accumulated
     * @param dB  (OUT, r) accumulated
     * @param dax (T, r) scratch out
     * @param dy  (T, OUT)
     */
    public static void backwardNaive(float[] dx, float[] dA, float[] dE, float[] dB, float[] dax, float[] dy, float[] ax,
                                     float[] x, float[] a, float[] e, float[] b, float s, int T, int IN, int OUT, int r) {
        for (@Parallel int t = 0; t < T; t++) {
            for (int j = 0; j < r; j++) {
                float acc = 0f;
                for (int o = 0; o < OUT; o++) {
                    acc += b[o * r + j] * dy[t * OUT + o];
                }
                dax[t * r + j] = s * acc;
            }
        }
        for (@Parallel int j = 0; j < r; j++) {
            float acc = 0f;
            for (int t = 0; t < T; t++) {
                acc += dax[t * r + j] * ax[t * r + j];
            }
            dE[j] += acc;
        }
        for (@Parallel int t = 0; t < T; t++) {
            for (int j = 0; j < r; j++) {
                dax[t * r + j] = e[j] * dax[t * r + j];
            }
            for (int c = 0; c < IN; c++) {
                float acc = 0f;
                for (int j = 0; j < r; j++) {
                    acc += a[j * IN + c] * dax[t * r + j];
                }
                dx[t * IN + c] += acc;
            }
        }
        for (@Parallel int o = 0; o < OUT; o++) {
            for (int j = 0; j < r; j++) {
                float acc = 0f;
                for (int t = 0; t < T; t++) {
                    acc += dy[t * OUT + o] * (e[j] * ax[t * r + j]);
                }
                dB[o * r + j] += s * acc;
            }
        }
        for (@Parallel int j = 0; j < r; j++) {
            for (int c = 0; c < IN; c++) {
                float acc = 0f;
                for (int t = 0; t < T; t++) {
                    acc += dax[t * r + j] * x[t * IN + c];
                }
                dA[j * IN + c] += acc;
            }
        }
    }

    /**
     * AdaLoRA's singular-value gradient (device kernel): {@code g[eOff + j] += Σ_t gax[t][j] · ax[t][j]}, where
     * {@code gax = s · dy · B} (the gradient reaching E ⊙ A x) and {@code ax = A x}, over T rows of r.
     */
    public static void backwardSingularValuesNaive(float[] g, int eOff, float[] gax, float[] ax, int T, int r) {
        for (@Parallel int j = 0; j < r; j++) {
            float acc = 0f;
            for (int t = 0; t < T; t++) {
                acc += gax[t * r + j] * ax[t * r + j];
            }
            g[eOff + j] += acc;
        }
    }

    /**
     * Fast twin of {@link #backwardNaive} over the flat parameters {@code p} and their gradients {@code g}
     * (the same offsets): the same passes, each parallel; dx, dA, dE (when eOff ≥ 0) and dB accumulate.
     */
    public static void backward(float[] dx, float[] g, float[] dax, float[] dy, float[] ax, float[] x, float[] p,
                                int aOff, int eOff, int bOff, float s, int T, int IN, int OUT, int r) {
        Threads.parallelFor(T, (long) r * OUT * 2, (from, to) -> {
            for (int t = from; t < to; t++) {
                int yo = t * OUT;
                int j = 0;
                for (; j + 4 <= r; j += 4) { // four chains at once, each over o in order (as in row)
                    float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f;
                    for (int o = 0; o < OUT; o++) {
                        float d = dy[yo + o];
                        int bo = bOff + o * r + j;
                        s0 += p[bo] * d;
                        s1 += p[bo + 1] * d;
                        s2 += p[bo + 2] * d;
                        s3 += p[bo + 3] * d;
                    }
                    dax[t * r + j] = s * s0;
                    dax[t * r + j + 1] = s * s1;
                    dax[t * r + j + 2] = s * s2;
                    dax[t * r + j + 3] = s * s3;
                }
                for (; j < r; j++) {
                    float acc = 0f;
                    for (int o = 0; o < OUT; o++) {
                        acc += p[bOff + o * r + j] * dy[yo + o];
                    }
                    dax[t * r + j] = s * acc;
                }
            }
        });
        if (eOff >= 0) {
            for (int j = 0; j < r; j++) {
                float acc = 0f;
                for (int t = 0; t < T; t++) {
                    acc += dax[t * r + j] * ax[t * r + j];
                }
                g[eOff + j] += acc;
            }
        }
        Threads.parallelFor(T, (long) r * IN * 2, (from, to) -> {
            for (int t = from; t < to; t++) {
                int xo = t * IN;
                for (int j = 0; j < r; j++) {
                    float d = (eOff < 0 ? 1f : p[eOff + j]) * dax[t * r + j];
                    dax[t * r + j] = d;
                    int ao = aOff + j * IN;
                    for (int c = 0; c < IN; c++) {
                        dx[xo + c] += p[ao + c] * d;
                    }
                }
            }
        });
        Threads.parallelFor(OUT, (long) T * r * 2, (from, to) -> {
            for (int o = from; o < to; o++) {
                for (int t = 0; t < T; t++) {
                    float d = s * dy[t * OUT + o];
                    for (int j = 0; j < r; j++) {
                        g[bOff + o * r + j] += d * ((eOff < 0 ? 1f : p[eOff + j]) * ax[t * r + j]);
                    }
                }
            }
        });
        Threads.parallelFor(r, (long) T * IN * 2, (from, to) -> {
            for (int j = from; j < to; j++) {
                int ao = aOff + j * IN;
                for (int t = 0; t < T; t++) {
                    float d = dax[t * r + j];
                    int xo = t * IN;
                    for (int c = 0; c < IN; c++) {
                        g[ao + c] += d * x[xo + c];
                    }
                }
            }
        });
    }
}

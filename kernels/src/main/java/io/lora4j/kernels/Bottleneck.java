package io.lora4j.kernels;

/**
 * A bottleneck adapter (Houlsby et al. 2019; AdapterHub's {@code Adapter} module) applied in place to a
 * sublayer's output h: {@code y = h + s · (W_up f(W_down h + b_down) + b_up)} — down-projection,
 * nonlinearity, up-projection, residual. It cannot be folded into a weight (f is nonlinear), so it
 * always costs its two small matmuls.
 * Glossary: T tokens, C channels (the residual stream's width), d the bottleneck width (C / reduction
 * factor), s AdapterHub's {@code scaling}, f the nonlinearity ({@link #RELU}, {@link #SILU}, {@link #TANH},
 * {@link #GELU_TANH}). The parameters are at offsets of one flat array p: W_down (d, C) at dOff, b_down (d)
 * at dbOff, W_up (C, d) at uOff, b_up (C) at ubOff. The pre-activation {@code z = W_down h + b_down} (T, d)
 * and the input h (T, C) are kept for the backward pass.
 */
public final class Bottleneck {
    private Bottleneck() {
    }

    /** {@code f(z) = max(z, 0)} (torch's relu; its gradient at 0 is 0, as torch's). */
    public static final int RELU = 0;
    /** {@code f(z) = z · sigmoid(z)} (AdapterHub's "swish", transformers' SiLU). */
    public static final int SILU = 1;
    /** {@code f(z) = tanh(z)}. */
    public static final int TANH = 2;
    /** transformers' "gelu_new": {@code 0.5 z (1 + tanh(√(2/π) (z + 0.044715 z³)))}. */
    public static final int GELU_TANH = 3;

    private static final float SQRT_2_OVER_PI = 0.7978845608028654f;

    /** The nonlinearity {@code act} at z. */
    public static float activation(int act, float z) {
        if (act == RELU) {
            return z > 0f ? z : 0f;
        } else if (act == SILU) {
            return z / (1.0f + (float) Math.exp(-z));
        } else if (act == TANH) {
            return (float) Math.tanh(z);
        }
        float u = SQRT_2_OVER_PI * (z + 0.044715f * z * z * z);
        return 0.5f * z * (1.0f + (float) Math.tanh(u));
    }

    /** Its derivative at z. */
    public static float activationGrad(int act, float z) {
        if (act == RELU) {
            return z > 0f ? 1f : 0f;
        } else if (act == SILU) {
            float sig = 1.0f / (1.0f + (float) Math.exp(-z));
            return sig * (1.0f + z * (1.0f - sig));
        } else if (act == TANH) {
            float th = (float) Math.tanh(z);
            return 1.0f - th * th;
        }
        float u = SQRT_2_OVER_PI * (z + 0.044715f * z * z * z);
        float th = (float) Math.tanh(u);
        return 0.5f * (1.0f + th) + 0.5f * z * (1.0f - th * th) * SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * z * z);
    }

    /**
     * Naive oracle (TornadoVM kernel subset): per token, {@code h = y} (kept when saving), {@code z = W_down h + b_down},
     * {@code y = h + s · (W_up f(z) + b_up)}.
     *
     * @param y (T, C) the sublayer output, replaced by the adapter's output
     * @param h (T, C) out: the input, kept for the backward (ignored when {@code save} is 0)
     * @param z (T, d) out: the pre-activation
     */
    public static void forwardNaive(float[] y, float[] h, float[] z, float[] p, int dOff, int dbOff, int uOff, int ubOff, int act,
                                    float s, int save, int T, int C, int d) {
        for (@Parallel int t = 0; t < T; t++) {
            for (int j = 0; j < d; j++) {
                float acc = p[dbOff + j];
                for (int c = 0; c < C; c++) {
                    acc += p[dOff + j * C + c] * y[t * C + c];
                }
                z[t * d + j] = acc;
            }
            for (int o = 0; o < C; o++) {
                float acc = p[ubOff + o];
                for (int j = 0; j < d; j++) {
                    acc += p[uOff + o * d + j] * activation(act, z[t * d + j]);
                }
                if (save == 1) {
                    h[t * C + o] = y[t * C + o];
                }
                y[t * C + o] += s * acc;
            }
        }
    }

    /**
     * Fast twin of {@link #forwardNaive}, parallel over tokens (the JIT vectorises the inner dots); {@code h}
     * null keeps no input (inference). {@code a} (T, d) is scratch for f(z); it may be z itself when nothing is
     * kept for a backward.
     */
    public static void forward(float[] y, float[] h, float[] z, float[] a, float[] p, int dOff, int dbOff, int uOff, int ubOff,
                               int act, float s, int T, int C, int d) {
        Threads.parallelFor(T, 4L * C * d, (from, to) -> {
            for (int t = from; t < to; t++) {
                int yo = t * C;
                for (int j = 0; j < d; j++) {
                    float acc = 0f;
                    int wo = dOff + j * C;
                    for (int c = 0; c < C; c++) {
                        acc += p[wo + c] * y[yo + c];
                    }
                    float zz = acc + p[dbOff + j];
                    z[t * d + j] = zz;
                    a[t * d + j] = activation(act, zz);
                }
                if (h != null) {
                    System.arraycopy(y, yo, h, yo, C);
                }
                for (int o = 0; o < C; o++) {
                    float acc = 0f;
                    int wo = uOff + o * d;
                    for (int j = 0; j < d; j++) {
                        acc += p[wo + j] * a[t * d + j];
                    }
                    y[yo + o] += s * (acc + p[ubOff + o]);
                }
            }
        });
    }

    /**
     * Backward (naive oracle), race-free passes: {@code dz = f'(z) ⊙ s·W_upᵀ dy}; {@code dh = dy + W_downᵀ dz}
     * (assigned: the residual's dy plus the adapter's share); {@code dW_up += s·dy f(z)ᵀ}, {@code db_up += s·Σ_t dy},
     * {@code dW_down += dz hᵀ}, {@code db_down += Σ_t dz}. g holds the gradients at the parameters' offsets.
     *
     * @param dh (T, C) out (may not alias dy)
     * @param dz (T, d) scratch out
     * @param dy (T, C) the gradient of the adapter's output
     */
    public static void backwardNaive(float[] dh, float[] g, float[] dz, float[] dy, float[] h, float[] z, float[] p, int dOff,
                                     int dbOff, int uOff, int ubOff, int act, float s, int T, int C, int d) {
        for (@Parallel int t = 0; t < T; t++) {
            for (int j = 0; j < d; j++) {
                float acc = 0f;
                for (int o = 0; o < C; o++) {
                    acc += p[uOff + o * d + j] * dy[t * C + o];
                }
                dz[t * d + j] = s * acc * activationGrad(act, z[t * d + j]);
            }
            for (int c = 0; c < C; c++) {
                float acc = dy[t * C + c];
                for (int j = 0; j < d; j++) {
                    acc += p[dOff + j * C + c] * dz[t * d + j];
                }
                dh[t * C + c] = acc;
            }
        }
        for (@Parallel int o = 0; o < C; o++) {
            float bias = 0f;
            for (int t = 0; t < T; t++) {
                float dd = s * dy[t * C + o];
                bias += dd;
                for (int j = 0; j < d; j++) {
                    g[uOff + o * d + j] += dd * activation(act, z[t * d + j]);
                }
            }
            g[ubOff + o] += bias;
        }
        for (@Parallel int j = 0; j < d; j++) {
            float bias = 0f;
            for (int t = 0; t < T; t++) {
                float dd = dz[t * d + j];
                bias += dd;
                for (int c = 0; c < C; c++) {
                    g[dOff + j * C + c] += dd * h[t * C + c];
                }
            }
            g[dbOff + j] += bias;
        }
    }

    /** Fast twin of {@link #backwardNaive}: the same passes, each parallel; {@code a} (T, d) is scratch for f(z). */
    public static void backward(float[] dh, float[] g, float[] dz, float[] a, float[] dy, float[] h, float[] z, float[] p, int dOff,
                                int dbOff, int uOff, int ubOff, int act, float s, int T, int C, int d) {
        Threads.parallelFor(T, 4L * C * d, (from, to) -> {
            for (int t = from; t < to; t++) {
                int yo = t * C;
                for (int j = 0; j < d; j++) {
                    a[t * d + j] = activation(act, z[t * d + j]);
                    float acc = 0f;
                    for (int o = 0; o < C; o++) {
                        acc += p[uOff + o * d + j] * dy[yo + o];
                    }
                    dz[t * d + j] = s * acc * activationGrad(act, z[t * d + j]);
                }
                System.arraycopy(dy, yo, dh, yo, C);
                for (int j = 0; j < d; j++) {
                    float dd = dz[t * d + j];
                    int wo = dOff + j * C;
                    for (int c = 0; c < C; c++) {
                        dh[yo + c] += p[wo + c] * dd;
                    }
                }
            }
        });
        Threads.parallelFor(C, 2L * T * d, (from, to) -> {
            for (int o = from; o < to; o++) {
                float bias = 0f;
                int wo = uOff + o * d;
                for (int t = 0; t < T; t++) {
                    float dd = s * dy[t * C + o];
                    bias += dd;
                    for (int j = 0; j < d; j++) {
                        g[wo + j] += dd * a[t * d + j];
                    }
                }
                g[ubOff + o] += bias;
            }
        });
        Threads.parallelFor(d, 2L * T * C, (from, to) -> {
            for (int j = from; j < to; j++) {
                float bias = 0f;
                int wo = dOff + j * C;
                for (int t = 0; t < T; t++) {
                    float dd = dz[t * d + j];
                    bias += dd;
                    int ho = t * C;
                    for (int c = 0; c < C; c++) {
                        g[wo + c] += dd * h[ho + c];
                    }
                }
                g[dbOff + j] += bias;
            }
        });
    }
}

package io.lora4j.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Causal grouped-query attention over a KV cache. Query token t (position {@code pos0 + t}) of head h
 * attends to cached positions {@code 0..pos0+t} of KV head {@code h / (NH/NKV)}:
 * {@code att[p] = softmax_p(q·k_p / sqrt(HS))}, {@code out = Σ_p att[p]·v_p}.
 * Glossary: T query tokens, NH query heads, NKV key/value heads, HS head size, P positions.
 */
public final class Attention {
    private static final VectorSpecies<Float> S = FloatVector.SPECIES_PREFERRED;
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);

    private Attention() {
    }

    /**
     * Naive oracle and device kernel (TornadoVM kernel subset), one work-item per (token, head).
     * Query token t sits at position {@code pos[t]} and attends to cached positions {@code 0..pos[t]}; a
     * padding row ({@code pos[t] < 0}, a device chunk shorter than its plan) attends to nothing and gets zeros.
     *
     * @param out       (T, NH·HS)
     * @param att       (T·NH, attStride) probabilities, kept for the backward pass; attStride &gt; max pos
     * @param q         (T, NH·HS)
     * @param kCache    (P, NKV·HS)
     * @param vCache    (P, NKV·HS)
     * @param pos       (T) positions
     */
    public static void forwardNaive(float[] out, float[] att, float[] q, float[] kCache, float[] vCache, int[] pos,
                                    int T, int NH, int NKV, int HS, int attStride) {
        int qDim = NH * HS;
        int kvDim = NKV * HS;
        int group = NH / NKV;
        float sqrtHS = (float) Math.sqrt(HS);
        for (@Parallel int th = 0; th < T * NH; th++) {
            int t = th / NH;
            int h = th % NH;
            int kvOff = (h / group) * HS;
            int n = pos[t] + 1;
            int a = th * attStride;
            float max = Float.NEGATIVE_INFINITY;
            for (int p = 0; p < n; p++) {
                float s = 0f;
                for (int i = 0; i < HS; i++) {
                    s += q[t * qDim + h * HS + i] * kCache[p * kvDim + kvOff + i];
                }
                s = s / sqrtHS;
                att[a + p] = s;
                max = Math.max(max, s);
            }
            float sum = 0f;
            for (int p = 0; p < n; p++) {
                float e = (float) Math.exp(att[a + p] - max);
                att[a + p] = e;
                sum += e;
            }
            for (int p = 0; p < n; p++) {
                att[a + p] = att[a + p] / sum;
            }
            for (int i = 0; i < HS; i++) {
                float o = 0f;
                for (int p = 0; p < n; p++) {
                    o += att[a + p] * vCache[p * kvDim + kvOff + i];
                }
                out[t * qDim + h * HS + i] = o;
            }
        }
    }

    /**
     * Writes the chunk's keys or values into the cache at their positions:
     * {@code cache[pos[t]][i] = kv[t][i]}; a padding row ({@code pos[t] < 0}) is not stored. Device kernel
     * (the JVM backend uses System.arraycopy).
     *
     * @param cache (P, KV)
     * @param kv    (T, KV)
     * @param pos   (T)
     */
    public static void storeNaive(float[] cache, float[] kv, int[] pos, int T, int KV) {
        for (@Parallel int ti = 0; ti < T * KV; ti++) {
            int t = ti / KV;
            if (pos[t] >= 0) {
                cache[pos[t] * KV + ti % KV] = kv[ti];
            }
        }
    }

    /**
     * Fast twin of {@link #forwardNaive}: Vector-API dot products over HS, parallel over
     * (token, head). With {@code att == null} (inference) the probabilities go to a per-thread
     * scratch row instead of being kept.
     */
    public static void forward(float[] out, float[] att, float[] q, float[] kCache, float[] vCache,
                               int T, int pos0, int NH, int NKV, int HS, int attStride) {
        long work = (long) (pos0 + T) * HS * 2;
        Threads.parallelFor(T * NH, work, (from, to) -> {
            float[] row = att;
            if (row == null) {
                row = SCRATCH.get();
                if (row.length < pos0 + T) {
                    row = new float[pos0 + T];
                    SCRATCH.set(row);
                }
            }
            for (int th = from; th < to; th++) {
                head(out, row, att == null ? 0 : th * attStride, q, kCache, vCache, th / NH, th % NH, pos0, NH, NKV, HS);
            }
        });
    }

    /**
     * Decode attention for a batch of rows from different sequences: row t's query attends to its own
     * cache ({@code kCaches[t]}, {@code vCaches[t]}) up to its own position {@code pos[t]}, computed
     * exactly as {@link #forward} computes a row at that position, parallel over (row, head).
     *
     * @param out (R, NH·HS)
     * @param q   (R, NH·HS)
     */
    public static void forwardRows(float[] out, float[] q, float[][] kCaches, float[][] vCaches, int[] pos, int R,
                                   int NH, int NKV, int HS) {
        int most = 0;
        for (int t = 0; t < R; t++) {
            most = Math.max(most, pos[t] + 1);
        }
        int longest = most;
        Threads.parallelFor(R * NH, (long) longest * HS * 2, (from, to) -> {
            float[] row = SCRATCH.get();
            if (row.length < longest) {
                row = new float[longest];
                SCRATCH.set(row);
            }
            for (int th = from; th < to; th++) {
                int t = th / NH;
                head(out, row, 0, q, kCaches[t], vCaches[t], t, th % NH, pos[t] - t, NH, NKV, HS);
            }
        });
    }

    private static void head(float[] out, float[] att, int a, float[] q, float[] kCache, float[] vCache,
                             int t, int h, int pos0, int NH, int NKV, int HS) {
        int qDim = NH * HS;
        int kvDim = NKV * HS;
        int kvOff = (h / (NH / NKV)) * HS;
        int qOff = t * qDim + h * HS;
        int n = pos0 + t + 1;
        int upper = S.loopBound(HS);
        float sqrtHS = (float) Math.sqrt(HS);
        float max = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < n; p++) {
            int kOff = p * kvDim + kvOff;
            float s;
            int i = 0;
            if (upper > 0) {
                FloatVector acc = FloatVector.zero(S);
                for (; i < upper; i += S.length()) {
                    acc = FloatVector.fromArray(S, q, qOff + i).fma(FloatVector.fromArray(S, kCache, kOff + i), acc);
                }
                for (VectorShuffle<Float> fold : Matmul.FOLDS) {
                    acc = acc.add(acc.rearrange(fold));
                }
                s = acc.lane(0);
            } else {
                s = 0f;
            }
            for (; i < HS; i++) {
                s += q[qOff + i] * kCache[kOff + i];
            }
            s = s / sqrtHS;
            att[a + p] = s;
            max = Math.max(max, s);
        }
        float sum = 0f;
        for (int p = 0; p < n; p++) {
            float e = (float) Math.exp(att[a + p] - max);
            att[a + p] = e;
            sum += e;
        }
        float inv = 1.0f / sum;
        for (int p = 0; p < n; p++) {
            att[a + p] *= inv;
        }
        int oOff = qOff;
        for (int i = 0; i < HS; i++) {
            out[oOff + i] = 0f;
        }
        for (int p = 0; p < n; p++) {
            float w = att[a + p];
            int vOff = p * kvDim + kvOff;
            int i = 0;
            for (; i < upper; i += S.length()) {
                FloatVector.fromArray(S, vCache, vOff + i).fma(FloatVector.broadcast(S, w), FloatVector.fromArray(S, out, oOff + i))
                        .intoArray(out, oOff + i);
            }
            for (; i < HS; i++) {
                out[oOff + i] += w * vCache[vOff + i];
            }
        }
    }

    /**
     * Backward of {@link #forwardNaive} for a whole sequence (positions 0..T-1, the keys and values
     * are the T tokens' own), as two race-free passes: {@link #backwardQueryNaive} then
     * {@link #backwardKeyValueNaive}. Naive oracle.
     *
     * @param dq   (T, NH·HS) out
     * @param dk   (T, NKV·HS) out
     * @param dv   (T, NKV·HS) out
     * @param dAtt (T·NH, T) scratch
     * @param dout (T, NH·HS)
     * @param att  (T·NH, T) probabilities saved by the forward
     */
    public static void backwardNaive(float[] dq, float[] dk, float[] dv, float[] dAtt, float[] dout, float[] att,
                                     float[] q, float[] k, float[] v, int T, int NH, int NKV, int HS) {
        backwardQueryNaive(dq, dAtt, dout, att, k, v, T, NH, NKV, HS);
        backwardKeyValueNaive(dk, dv, dAtt, dout, att, q, T, NH, NKV, HS);
    }

    /**
     * Pass 1 (device kernel), per (t, h): dP = dout·v_p, dS = P ⊙ (dP − Σ P·dP) into {@code dAtt},
     * {@code dq = Σ_p dS·k_p / sqrt(HS)} (assigned).
     */
    public static void backwardQueryNaive(float[] dq, float[] dAtt, float[] dout, float[] att, float[] k, float[] v,
                                          int T, int NH, int NKV, int HS) {
        int qDim = NH * HS;
        int kvDim = NKV * HS;
        int group = NH / NKV;
        float sqrtHS = (float) Math.sqrt(HS);
        for (@Parallel int th = 0; th < T * NH; th++) {
            int t = th / NH;
            int h = th % NH;
            int kvOff = (h / group) * HS;
            int a = th * T;
            float dot = 0f;
            for (int p = 0; p <= t; p++) {
                float dp = 0f;
                for (int i = 0; i < HS; i++) {
                    dp += dout[t * qDim + h * HS + i] * v[p * kvDim + kvOff + i];
                }
                dAtt[a + p] = dp;
                dot += att[a + p] * dp;
            }
            for (int p = 0; p <= t; p++) {
                dAtt[a + p] = att[a + p] * (dAtt[a + p] - dot);
            }
            for (int i = 0; i < HS; i++) {
                float g = 0f;
                for (int p = 0; p <= t; p++) {
                    g += dAtt[a + p] * k[p * kvDim + kvOff + i];
                }
                dq[t * qDim + h * HS + i] = g / sqrtHS;
            }
        }
    }

    /**
     * Pass 2 (device kernel), per (p, kv head): {@code dk = Σ dS·q / sqrt(HS)}, {@code dv = Σ P·dout}
     * over the query heads of the group and t ≥ p (assigned).
     */
    public static void backwardKeyValueNaive(float[] dk, float[] dv, float[] dAtt, float[] dout, float[] att, float[] q,
                                             int T, int NH, int NKV, int HS) {
        int qDim = NH * HS;
        int kvDim = NKV * HS;
        int group = NH / NKV;
        float sqrtHS = (float) Math.sqrt(HS);
        for (@Parallel int pk = 0; pk < T * NKV; pk++) {
            int p = pk / NKV;
            int kvh = pk % NKV;
            for (int i = 0; i < HS; i++) {
                float gk = 0f;
                float gv = 0f;
                for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                    for (int t = p; t < T; t++) {
                        int a = (t * NH + h) * T + p;
                        gk += dAtt[a] * q[t * qDim + h * HS + i];
                        gv += att[a] * dout[t * qDim + h * HS + i];
                    }
                }
                dk[p * kvDim + kvh * HS + i] = gk / sqrtHS;
                dv[p * kvDim + kvh * HS + i] = gv;
            }
        }
    }

    /** Fast twin of {@link #backwardNaive}: the same two passes, each parallel, Vector-API dots and axpys over HS. */
    public static void backward(float[] dq, float[] dk, float[] dv, float[] dAtt, float[] dout, float[] att,
                                float[] q, float[] k, float[] v, int T, int NH, int NKV, int HS) {
        int qDim = NH * HS;
        int kvDim = NKV * HS;
        int group = NH / NKV;
        float sqrtHS = (float) Math.sqrt(HS);
        Threads.parallelFor(T * NH, (long) T * HS * 2, (from, to) -> {
            for (int th = from; th < to; th++) {
                int t = th / NH;
                int h = th % NH;
                int kvOff = (h / group) * HS;
                int a = th * T;
                int o = t * qDim + h * HS;
                float dot = 0f;
                for (int p = 0; p <= t; p++) {
                    float dp = dot(dout, o, v, p * kvDim + kvOff, HS);
                    dAtt[a + p] = dp;
                    dot += att[a + p] * dp;
                }
                java.util.Arrays.fill(dq, o, o + HS, 0f);
                for (int p = 0; p <= t; p++) {
                    float ds = att[a + p] * (dAtt[a + p] - dot);
                    dAtt[a + p] = ds;
                    axpy(dq, o, ds / sqrtHS, k, p * kvDim + kvOff, HS);
                }
            }
        });
        Threads.parallelFor(T * NKV, (long) T * group * HS * 2, (from, to) -> {
            for (int pk = from; pk < to; pk++) {
                int p = pk / NKV;
                int kvh = pk % NKV;
                int ko = p * kvDim + kvh * HS;
                java.util.Arrays.fill(dk, ko, ko + HS, 0f);
                java.util.Arrays.fill(dv, ko, ko + HS, 0f);
                for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                    for (int t = p; t < T; t++) {
                        int a = (t * NH + h) * T + p;
                        int o = t * qDim + h * HS;
                        axpy(dk, ko, dAtt[a] / sqrtHS, q, o, HS);
                        axpy(dv, ko, att[a], dout, o, HS);
                    }
                }
            }
        });
    }

    /** Σ_i a[ao+i]·b[bo+i] over n, lanes summed in a fixed order. */
    static float dot(float[] a, int ao, float[] b, int bo, int n) {
        int upper = S.loopBound(n);
        float s = 0f;
        int i = 0;
        if (upper > 0) {
            FloatVector acc = FloatVector.zero(S);
            for (; i < upper; i += S.length()) {
                acc = FloatVector.fromArray(S, a, ao + i).fma(FloatVector.fromArray(S, b, bo + i), acc);
            }
            for (VectorShuffle<Float> fold : Matmul.FOLDS) {
                acc = acc.add(acc.rearrange(fold));
            }
            s = acc.lane(0);
        }
        for (; i < n; i++) {
            s += a[ao + i] * b[bo + i];
        }
        return s;
    }

    /** y[yo..yo+n) += alpha · x[xo..xo+n). */
    static void axpy(float[] y, int yo, float alpha, float[] x, int xo, int n) {
        int upper = S.loopBound(n);
        int i = 0;
        if (upper > 0) {
            FloatVector va = FloatVector.broadcast(S, alpha);
            for (; i < upper; i += S.length()) {
                FloatVector.fromArray(S, x, xo + i).fma(va, FloatVector.fromArray(S, y, yo + i)).intoArray(y, yo + i);
            }
        }
        for (; i < n; i++) {
            y[yo + i] += alpha * x[xo + i];
        }
    }
}

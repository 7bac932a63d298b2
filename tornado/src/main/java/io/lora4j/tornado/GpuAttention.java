package io.lora4j.tornado;

import io.lora4j.kernels.Attention;
import io.lora4j.tornado.DevicePlan.Grid;
import uk.ac.manchester.tornado.api.KernelContext;

/**
 * Causal attention shaped for GPUs: a work-group per (token, head) whose {@link #THREADS} threads share
 * out the cached positions (a score each: q·k / √HS), reduce their maximum and the sum of the
 * exponentials in local memory (a work-group softmax), and then share out the head's outputs
 * ({@code Σ_p att[p] · v_p[i]}, consecutive i together: coalesced reads of V). Same arguments and
 * semantics as {@link Attention#forwardNaive}, its oracle (the method without the context): a padding
 * row ({@code pos[t] < 0}) attends to nothing and gets zeros.
 */
final class GpuAttention {
    static final int THREADS = 64;

    private GpuAttention() {
    }

    /** A work-group per (token, head) of the first {@code rows} tokens. */
    static void grid(Grid g, int rows, int NH) {
        g.set((long) rows * NH, THREADS);
    }

    public static void forward(KernelContext ctx, float[] out, float[] att, float[] q, float[] kCache, float[] vCache, int[] pos,
                               int T, int NH, int NKV, int HS, int attStride) {
        float[] sh = ctx.allocateFloatLocalArray(THREADS);
        int th = ctx.groupIdx;
        int i = ctx.localIdx;
        int t = th / NH;
        int h = th % NH;
        int qDim = NH * HS;
        int kvDim = NKV * HS;
        int kvOff = (h / (NH / NKV)) * HS;
        int n = pos[t] + 1; // 0 for a padding row: every loop below is empty, every barrier still reached
        int a = th * attStride;
        float sqrtHS = (float) Math.sqrt(HS);
        float max = Float.NEGATIVE_INFINITY;
        for (int p = i; p < n; p += THREADS) {
            float s = 0f;
            for (int j = 0; j < HS; j++) {
                s += q[t * qDim + h * HS + j] * kCache[p * kvDim + kvOff + j];
            }
            s = s / sqrtHS;
            att[a + p] = s;
            max = Math.max(max, s);
        }
        sh[i] = max;
        ctx.localBarrier();
        for (int s = THREADS / 2; s > 0; s >>= 1) {
            if (i < s) {
                sh[i] = Math.max(sh[i], sh[i + s]);
            }
            ctx.localBarrier();
        }
        max = sh[0];
        ctx.localBarrier();
        float sum = 0f;
        for (int p = i; p < n; p += THREADS) {
            float e = (float) Math.exp(att[a + p] - max);
            att[a + p] = e;
            sum += e;
        }
        sh[i] = sum;
        ctx.localBarrier();
        for (int s = THREADS / 2; s > 0; s >>= 1) {
            if (i < s) {
                sh[i] += sh[i + s];
            }
            ctx.localBarrier();
        }
        sum = sh[0];
        for (int p = i; p < n; p += THREADS) {
            att[a + p] = att[a + p] / sum;
        }
        ctx.globalBarrier(); // the probabilities (global memory) are read by every thread below
        for (int j = i; j < HS; j += THREADS) {
            float o = 0f;
            for (int p = 0; p < n; p++) {
                o += att[a + p] * vCache[p * kvDim + kvOff + j];
            }
            out[t * qDim + h * HS + j] = o;
        }
    }

    public static void forward(float[] out, float[] att, float[] q, float[] kCache, float[] vCache, int[] pos, int T, int NH, int NKV,
                               int HS, int attStride) {
        Attention.forwardNaive(out, att, q, kCache, vCache, pos, T, NH, NKV, HS, attStride);
    }
}

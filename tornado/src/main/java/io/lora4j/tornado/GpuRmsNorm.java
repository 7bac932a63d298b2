package io.lora4j.tornado;

import io.lora4j.kernels.RmsNorm;
import io.lora4j.tornado.DevicePlan.Grid;
import uk.ac.manchester.tornado.api.KernelContext;

/**
 * RMSNorm shaped for GPUs, fused into one kernel: a work-group per token row, whose {@link #THREADS}
 * threads read the row together (coalesced), reduce the sum of squares in local memory, and write the
 * normalised row, so the row is read twice and no partial sums cross work-groups. The oracle (the method
 * without the context) is {@link RmsNorm#forwardNaive}.
 */
final class GpuRmsNorm {
    static final int THREADS = 128;

    private GpuRmsNorm() {
    }

    /** A work-group per row, for the first {@code rows} rows. */
    static void grid(Grid g, int rows) {
        g.set(rows, THREADS);
    }

    public static void forward(KernelContext ctx, float[] out, float[] rstd, float[] x, float[] w, int T, int C, float eps) {
        float[] sh = ctx.allocateFloatLocalArray(THREADS);
        int t = ctx.groupIdx;
        int i = ctx.localIdx;
        float ss = 0f;
        for (int c = i; c < C; c += THREADS) {
            ss += x[t * C + c] * x[t * C + c];
        }
        sh[i] = ss;
        ctx.localBarrier();
        for (int s = THREADS / 2; s > 0; s >>= 1) {
            if (i < s) {
                sh[i] += sh[i + s];
            }
            ctx.localBarrier();
        }
        float r = 1.0f / (float) Math.sqrt(sh[0] / C + eps);
        if (i == 0) {
            rstd[t] = r;
        }
        for (int c = i; c < C; c += THREADS) {
            out[t * C + c] = w[c] * (r * x[t * C + c]);
        }
    }

    public static void forward(float[] out, float[] rstd, float[] x, float[] w, int T, int C, float eps) {
        RmsNorm.forwardNaive(out, rstd, x, w, T, C, eps);
    }
}

package io.lora4j.tornado;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Matmul;
import io.lora4j.tornado.DevicePlan.Grid;
import uk.ac.manchester.tornado.api.KernelContext;

/**
 * Matrix products shaped for GPUs (TornadoVM {@code KernelContext} kernels: work-groups, local memory,
 * barriers), one per device weight layout (F32, F16 as fp16 bits, Q8_0 as int8 quants with float block
 * scales, and the k-bit types as they are in {@link Kbit}'s device layout: INT8, INT8_ZP, NF4/FP4 with or
 * without double quantization, each weight decoded where it is read), each with its oracle: the method of the same name without the context, which is
 * {@link Matmul}'s (or {@link Kbit}'s) naive kernel of the same arguments (what the JVM runner runs, and what the tornado
 * tests compare the device with).
 * <ul>
 * <li>{@code forward}: {@code out (T, rows) = x (T, cols) · Wᵀ} over the first {@code n[0]} rows. With one
 *     live row (decoding) it is a GEMV: a work-group per block of {@link #GEMV_ROWS} rows, {@link #LANES}
 *     threads per row reading the row's consecutive elements together (coalesced), their partial sums
 *     reduced in local memory. With more (a prefill chunk) it is a tiled GEMM: a work-group computes a
 *     {@link #TILE}×{@link #TILE} tile of tokens × rows, staging {@link #TILE}-wide slices of x and of the
 *     (decoded) weights in local memory, so each weight is read once per tile of tokens. The grid depends
 *     on the live rows ({@link #forwardGrid}); the plan sets it for every chunk.</li>
 * <li>{@code backward}: the input gradient {@code dx (T, cols) (= or +=) dy (T, rows) · W}, a tiled GEMM
 *     over tokens × columns ({@link #backwardGrid}).</li>
 * </ul>
 * The reductions add in another order than the oracles (tree over lanes, tiles), so results agree to
 * rounding. Barriers are reached by every thread of a work-group (bounds are checked around loads and
 * stores, never around a barrier).
 */
final class GpuMatmul {
    /** Threads that share a row in the GEMV (a warp on NVIDIA GPUs). */
    static final int LANES = 32;
    /** Rows per work-group in the GEMV. */
    static final int GEMV_ROWS = 4;
    /** Tile edge of the GEMMs: TILE tokens × TILE rows (or columns) per work-group, TILE-wide slices of the inner dimension. */
    static final int TILE = 16;

    private GpuMatmul() {
    }

    /** The grid of {@code forward} for {@code n} live rows of a {@code rows}-row product. */
    static void forwardGrid(Grid g, int n, int rows) {
        if (n == 1) {
            g.set((rows + GEMV_ROWS - 1) / GEMV_ROWS, 1, LANES, GEMV_ROWS);
        } else {
            g.set((rows + TILE - 1) / TILE, (n + TILE - 1) / TILE, TILE, TILE);
        }
    }

    /** The grid of {@code backward} for T tokens and {@code cols} input columns. */
    static void backwardGrid(Grid g, int T, int cols) {
        g.set((cols + TILE - 1) / TILE, (T + TILE - 1) / TILE, TILE, TILE);
    }

    // ---- forward: F32 ----

    public static void forward(KernelContext ctx, float[] out, float[] x, float[] w, int wOff, int[] n, int T, int rows, int cols) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        if (n[0] == 1) {
            int r = ctx.groupIdx * GEMV_ROWS + ty;
            float acc = 0f;
            if (r < rows) {
                for (int c = tx; c < cols; c += LANES) {
                    acc += w[wOff + r * cols + c] * x[c];
                }
            }
            // the row's LANES partial sums, a tree in local memory (every thread at every barrier)
            sh[ty * LANES + tx] = acc;
            ctx.localBarrier();
            for (int s = LANES / 2; s > 0; s >>= 1) {
                if (tx < s) {
                    sh[ty * LANES + tx] += sh[ty * LANES + tx + s];
                }
                ctx.localBarrier();
            }
            if (tx == 0 && r < rows) {
                out[r] = sh[ty * LANES];
            }
        } else {
            int r0 = ctx.groupIdx * TILE;
            int t = ctx.groupIdy * TILE + ty;
            float acc = 0f;
            for (int k0 = 0; k0 < cols; k0 += TILE) {
                int k = k0 + tx;
                int wr = r0 + ty; // this thread loads row r0+ty of the weight tile
                sh[ty * TILE + tx] = t < n[0] && k < cols ? x[t * cols + k] : 0f;
                sh[TILE * TILE + ty * TILE + tx] = wr < rows && k < cols ? w[wOff + wr * cols + k] : 0f;
                ctx.localBarrier();
                for (int kk = 0; kk < TILE; kk++) {
                    acc += sh[ty * TILE + kk] * sh[TILE * TILE + tx * TILE + kk];
                }
                ctx.localBarrier();
            }
            int r = r0 + tx;
            if (t < n[0] && r < rows) {
                out[t * rows + r] = acc;
            }
        }
    }

    public static void forward(float[] out, float[] x, float[] w, int wOff, int[] n, int T, int rows, int cols) {
        Matmul.forwardNaive(out, x, w, wOff, n, T, rows, cols);
    }

    // ---- forward: F16 ----

    public static void forward(KernelContext ctx, float[] out, float[] x, short[] w, int wOff, int[] n, int T, int rows, int cols) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        if (n[0] == 1) {
            int r = ctx.groupIdx * GEMV_ROWS + ty;
            float acc = 0f;
            if (r < rows) {
                for (int c = tx; c < cols; c += LANES) {
                    acc += Dequant.finiteHalfToFloat(w[wOff + r * cols + c]) * x[c];
                }
            }
            // the row's LANES partial sums, a tree in local memory (every thread at every barrier)
            sh[ty * LANES + tx] = acc;
            ctx.localBarrier();
            for (int s = LANES / 2; s > 0; s >>= 1) {
                if (tx < s) {
                    sh[ty * LANES + tx] += sh[ty * LANES + tx + s];
                }
                ctx.localBarrier();
            }
            if (tx == 0 && r < rows) {
                out[r] = sh[ty * LANES];
            }
        } else {
            int r0 = ctx.groupIdx * TILE;
            int t = ctx.groupIdy * TILE + ty;
            float acc = 0f;
            for (int k0 = 0; k0 < cols; k0 += TILE) {
                int k = k0 + tx;
                int wr = r0 + ty;
                sh[ty * TILE + tx] = t < n[0] && k < cols ? x[t * cols + k] : 0f;
                sh[TILE * TILE + ty * TILE + tx] = wr < rows && k < cols ? Dequant.finiteHalfToFloat(w[wOff + wr * cols + k]) : 0f;
                ctx.localBarrier();
                for (int kk = 0; kk < TILE; kk++) {
                    acc += sh[ty * TILE + kk] * sh[TILE * TILE + tx * TILE + kk];
                }
                ctx.localBarrier();
            }
            int r = r0 + tx;
            if (t < n[0] && r < rows) {
                out[t * rows + r] = acc;
            }
        }
    }

    public static void forward(float[] out, float[] x, short[] w, int wOff, int[] n, int T, int rows, int cols) {
        Matmul.forwardNaive(out, x, w, wOff, n, T, rows, cols);
    }

    // ---- forward: Q8_0 (int8 quants, a float scale per 32 elements; qOff a multiple of 32) ----

    public static void forward(KernelContext ctx, float[] out, float[] x, byte[] q, float[] d, int qOff, int[] n, int T, int rows,
                               int cols) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        int nb = cols / 32;
        int dOff = qOff / 32;
        if (n[0] == 1) {
            int r = ctx.groupIdx * GEMV_ROWS + ty;
            float acc = 0f;
            if (r < rows) {
                // LANES = 32: iteration b covers block b, one quant per lane
                for (int b = 0; b < nb; b++) {
                    acc += d[dOff + r * nb + b] * (q[qOff + r * cols + b * 32 + tx] * x[b * 32 + tx]);
                }
            }
            // the row's LANES partial sums, a tree in local memory (every thread at every barrier)
            sh[ty * LANES + tx] = acc;
            ctx.localBarrier();
            for (int s = LANES / 2; s > 0; s >>= 1) {
                if (tx < s) {
                    sh[ty * LANES + tx] += sh[ty * LANES + tx + s];
                }
                ctx.localBarrier();
            }
            if (tx == 0 && r < rows) {
                out[r] = sh[ty * LANES];
            }
        } else {
            int r0 = ctx.groupIdx * TILE;
            int t = ctx.groupIdy * TILE + ty;
            float acc = 0f;
            for (int k0 = 0; k0 < cols; k0 += TILE) {
                int k = k0 + tx;
                int wr = r0 + ty;
                sh[ty * TILE + tx] = t < n[0] && k < cols ? x[t * cols + k] : 0f;
                sh[TILE * TILE + ty * TILE + tx] = wr < rows && k < cols ? q[qOff + wr * cols + k] * d[dOff + wr * nb + k / 32] : 0f;
                ctx.localBarrier();
                for (int kk = 0; kk < TILE; kk++) {
                    acc += sh[ty * TILE + kk] * sh[TILE * TILE + tx * TILE + kk];
                }
                ctx.localBarrier();
            }
            int r = r0 + tx;
            if (t < n[0] && r < rows) {
                out[t * rows + r] = acc;
            }
        }
    }

    public static void forward(float[] out, float[] x, byte[] q, float[] d, int qOff, int[] n, int T, int rows, int cols) {
        Matmul.forwardNaive(out, x, q, d, qOff, n, T, rows, cols);
    }

    // ---- forward: k-bit (INT8, INT8_ZP, NF4/FP4 with or without double quantization, kept as they are; Kbit's device layout) ----

    public static void forward(KernelContext ctx, float[] out, float[] x, byte[] q, float[] stats, float[] tables, int kind, int qOff,
                               int qabsOff, int sOff, int[] n, int T, int rows, int cols) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        if (n[0] == 1) {
            int r = ctx.groupIdx * GEMV_ROWS + ty;
            float acc = 0f;
            if (r < rows) {
                for (int c = tx; c < cols; c += LANES) {
                    acc += Kbit.deviceWeight(kind, q, stats, tables, qOff, qabsOff, sOff, cols, r * cols + c) * x[c];
                }
            }
            // the row's LANES partial sums, a tree in local memory (every thread at every barrier)
            sh[ty * LANES + tx] = acc;
            ctx.localBarrier();
            for (int s = LANES / 2; s > 0; s >>= 1) {
                if (tx < s) {
                    sh[ty * LANES + tx] += sh[ty * LANES + tx + s];
                }
                ctx.localBarrier();
            }
            if (tx == 0 && r < rows) {
                out[r] = sh[ty * LANES];
            }
        } else {
            int r0 = ctx.groupIdx * TILE;
            int t = ctx.groupIdy * TILE + ty;
            float acc = 0f;
            for (int k0 = 0; k0 < cols; k0 += TILE) {
                int k = k0 + tx;
                int wr = r0 + ty;
                sh[ty * TILE + tx] = t < n[0] && k < cols ? x[t * cols + k] : 0f;
                sh[TILE * TILE + ty * TILE + tx] = wr < rows && k < cols
                        ? Kbit.deviceWeight(kind, q, stats, tables, qOff, qabsOff, sOff, cols, wr * cols + k) : 0f;
                ctx.localBarrier();
                for (int kk = 0; kk < TILE; kk++) {
                    acc += sh[ty * TILE + kk] * sh[TILE * TILE + tx * TILE + kk];
                }
                ctx.localBarrier();
            }
            int r = r0 + tx;
            if (t < n[0] && r < rows) {
                out[t * rows + r] = acc;
            }
        }
    }

    public static void forward(float[] out, float[] x, byte[] q, float[] stats, float[] tables, int kind, int qOff, int qabsOff, int sOff,
                               int[] n, int T, int rows, int cols) {
        Kbit.forwardNaive(out, x, q, stats, tables, kind, qOff, qabsOff, sOff, n, T, rows, cols);
    }

    // ---- input gradient: dx (T, cols) (= or +=) dy (T, rows) · W ----

    public static void backward(KernelContext ctx, float[] dx, float[] dy, float[] w, int wOff, int T, int rows, int cols, int accumulate) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        int c = ctx.groupIdx * TILE + tx;
        int t = ctx.groupIdy * TILE + ty;
        float acc = 0f;
        for (int k0 = 0; k0 < rows; k0 += TILE) {
            int k = k0 + tx;
            int wr = k0 + ty; // this thread loads W[k0+ty][c0+tx]: consecutive columns together
            sh[ty * TILE + tx] = t < T && k < rows ? dy[t * rows + k] : 0f;
            sh[TILE * TILE + ty * TILE + tx] = wr < rows && c < cols ? w[wOff + wr * cols + c] : 0f;
            ctx.localBarrier();
            for (int kk = 0; kk < TILE; kk++) {
                acc += sh[ty * TILE + kk] * sh[TILE * TILE + kk * TILE + tx];
            }
            ctx.localBarrier();
        }
        if (t < T && c < cols) {
            dx[t * cols + c] = accumulate == 1 ? dx[t * cols + c] + acc : acc;
        }
    }

    public static void backward(float[] dx, float[] dy, float[] w, int wOff, int T, int rows, int cols, int accumulate) {
        Matmul.backwardNaive(dx, dy, w, wOff, T, rows, cols, accumulate);
    }

    public static void backward(KernelContext ctx, float[] dx, float[] dy, short[] w, int wOff, int T, int rows, int cols, int accumulate) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        int c = ctx.groupIdx * TILE + tx;
        int t = ctx.groupIdy * TILE + ty;
        float acc = 0f;
        for (int k0 = 0; k0 < rows; k0 += TILE) {
            int k = k0 + tx;
            int wr = k0 + ty;
            sh[ty * TILE + tx] = t < T && k < rows ? dy[t * rows + k] : 0f;
            sh[TILE * TILE + ty * TILE + tx] = wr < rows && c < cols ? Dequant.finiteHalfToFloat(w[wOff + wr * cols + c]) : 0f;
            ctx.localBarrier();
            for (int kk = 0; kk < TILE; kk++) {
                acc += sh[ty * TILE + kk] * sh[TILE * TILE + kk * TILE + tx];
            }
            ctx.localBarrier();
        }
        if (t < T && c < cols) {
            dx[t * cols + c] = accumulate == 1 ? dx[t * cols + c] + acc : acc;
        }
    }

    public static void backward(float[] dx, float[] dy, short[] w, int wOff, int T, int rows, int cols, int accumulate) {
        Matmul.backwardNaive(dx, dy, w, wOff, T, rows, cols, accumulate);
    }

    public static void backward(KernelContext ctx, float[] dx, float[] dy, byte[] q, float[] d, int qOff, int T, int rows, int cols,
                                int accumulate) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        int c = ctx.groupIdx * TILE + tx;
        int t = ctx.groupIdy * TILE + ty;
        int nb = cols / 32;
        int dOff = qOff / 32;
        float acc = 0f;
        for (int k0 = 0; k0 < rows; k0 += TILE) {
            int k = k0 + tx;
            int wr = k0 + ty;
            sh[ty * TILE + tx] = t < T && k < rows ? dy[t * rows + k] : 0f;
            sh[TILE * TILE + ty * TILE + tx] = wr < rows && c < cols ? q[qOff + wr * cols + c] * d[dOff + wr * nb + c / 32] : 0f;
            ctx.localBarrier();
            for (int kk = 0; kk < TILE; kk++) {
                acc += sh[ty * TILE + kk] * sh[TILE * TILE + kk * TILE + tx];
            }
            ctx.localBarrier();
        }
        if (t < T && c < cols) {
            dx[t * cols + c] = accumulate == 1 ? dx[t * cols + c] + acc : acc;
        }
    }

    public static void backward(float[] dx, float[] dy, byte[] q, float[] d, int qOff, int T, int rows, int cols, int accumulate) {
        Matmul.backwardNaive(dx, dy, q, d, qOff, T, rows, cols, accumulate);
    }

    public static void backward(KernelContext ctx, float[] dx, float[] dy, byte[] q, float[] stats, float[] tables, int kind, int qOff,
                                int qabsOff, int sOff, int T, int rows, int cols, int accumulate) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        int c = ctx.groupIdx * TILE + tx;
        int t = ctx.groupIdy * TILE + ty;
        float acc = 0f;
        for (int k0 = 0; k0 < rows; k0 += TILE) {
            int k = k0 + tx;
            int wr = k0 + ty;
            sh[ty * TILE + tx] = t < T && k < rows ? dy[t * rows + k] : 0f;
            sh[TILE * TILE + ty * TILE + tx] = wr < rows && c < cols
                    ? Kbit.deviceWeight(kind, q, stats, tables, qOff, qabsOff, sOff, cols, wr * cols + c) : 0f;
            ctx.localBarrier();
            for (int kk = 0; kk < TILE; kk++) {
                acc += sh[ty * TILE + kk] * sh[TILE * TILE + kk * TILE + tx];
            }
            ctx.localBarrier();
        }
        if (t < T && c < cols) {
            dx[t * cols + c] = accumulate == 1 ? dx[t * cols + c] + acc : acc;
        }
    }

    public static void backward(float[] dx, float[] dy, byte[] q, float[] stats, float[] tables, int kind, int qOff, int qabsOff, int sOff,
                                int T, int rows, int cols, int accumulate) {
        Kbit.backwardNaive(dx, dy, q, stats, tables, kind, qOff, qabsOff, sOff, T, rows, cols, accumulate);
    }
}

package io.lora4j.tornado;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Matmul;
import io.lora4j.tornado.DevicePlan.Grid;
import uk.ac.manchester.tornado.api.KernelContext;

/**
 * Matrix products shaped for GPUs (TornadoVM {@code KernelContext} kernels: work-groups, local memory,
 * barriers) over every device weight layout, each weight decoded where it is read ({@link #weight}):
 * F32, F16 as fp16 bits, Q8_0 as int8 quants with float block scales, and the k-bit types as they are in
 * {@link Kbit}'s device layout (INT8, INT8_ZP, NF4/FP4 with or without double quantization). A kernel
 * takes the arrays of every layout — {@code wf} floats (F32 weights, Q8_0 scales or k-bit statistics),
 * {@code wh} fp16 bits, {@code wb} bytes (Q8_0 quants or k-bit values), {@code tables} (the k-bit code
 * tables) — and uses those of its {@code layout} (a scalar, so TornadoVM's specialisation on scalar
 * arguments leaves one path); the others are placeholders. Each has its oracle: the method of the same
 * name without the context, which runs {@link Matmul}'s (or {@link Kbit}'s) naive kernel of the layout.
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
 * stores, never around a barrier); the reductions are written inline (a local array passed to a helper
 * method lost the helper's writes on TornadoVM 5.2).
 */
final class GpuMatmul {
    /** Threads that share a row in the GEMV (a warp on NVIDIA GPUs). */
    static final int LANES = 32;
    /** Rows per work-group in the GEMV. */
    static final int GEMV_ROWS = 4;
    /** Tile edge of the GEMMs: TILE tokens × TILE rows (or columns) per work-group, TILE-wide slices of the inner dimension. */
    static final int TILE = 16;
    /** {@code layout}: F32, F16, Q8_0, or {@code KBIT + } {@link Kbit#deviceKind}. */
    static final int F32 = 0, F16 = 1, Q8_0 = 2, KBIT = 3;

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

    /**
     * Element {@code i} (= r·cols + c) of the matrix starting at {@code off} (elements; k-bit: bytes, with its
     * scale codes at {@code qabsOff} and statistics at {@code sOff}).
     */
    static float weight(int layout, float[] wf, short[] wh, byte[] wb, float[] tables, int off, int qabsOff, int sOff, int cols,
                        int i) {
        if (layout == F32) {
            return wf[off + i];
        }
        if (layout == F16) {
            return Dequant.finiteHalfToFloat(wh[off + i]);
        }
        if (layout == Q8_0) {
            return wb[off + i] * wf[(off + i) / 32]; // off and cols are multiples of 32
        }
        return Kbit.deviceWeight(layout - KBIT, wb, wf, tables, off, qabsOff, sOff, cols, i);
    }

    public static void forward(KernelContext ctx, float[] out, float[] x, float[] wf, short[] wh, byte[] wb, float[] tables, int layout,
                               int off, int qabsOff, int sOff, int[] n, int T, int rows, int cols) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        if (n[0] == 1) {
            int r = ctx.groupIdx * GEMV_ROWS + ty;
            float acc = 0f;
            if (r < rows) {
                for (int c = tx; c < cols; c += LANES) {
                    acc += weight(layout, wf, wh, wb, tables, off, qabsOff, sOff, cols, r * cols + c) * x[c];
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
                sh[TILE * TILE + ty * TILE + tx] = wr < rows && k < cols
                        ? weight(layout, wf, wh, wb, tables, off, qabsOff, sOff, cols, wr * cols + k) : 0f;
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

    public static void forward(float[] out, float[] x, float[] wf, short[] wh, byte[] wb, float[] tables, int layout, int off,
                               int qabsOff, int sOff, int[] n, int T, int rows, int cols) {
        switch (layout) {
            case F32 -> Matmul.forwardNaive(out, x, wf, off, n, T, rows, cols);
            case F16 -> Matmul.forwardNaive(out, x, wh, off, n, T, rows, cols);
            case Q8_0 -> Matmul.forwardNaive(out, x, wb, wf, off, n, T, rows, cols);
            default -> Kbit.forwardNaive(out, x, wb, wf, tables, layout - KBIT, off, qabsOff, sOff, n, T, rows, cols);
        }
    }

    public static void backward(KernelContext ctx, float[] dx, float[] dy, float[] wf, short[] wh, byte[] wb, float[] tables, int layout,
                                int off, int qabsOff, int sOff, int T, int rows, int cols, int accumulate) {
        float[] sh = ctx.allocateFloatLocalArray(2 * TILE * TILE);
        int tx = ctx.localIdx;
        int ty = ctx.localIdy;
        int c = ctx.groupIdx * TILE + tx;
        int t = ctx.groupIdy * TILE + ty;
        float acc = 0f;
        for (int k0 = 0; k0 < rows; k0 += TILE) {
            int k = k0 + tx;
            int wr = k0 + ty; // this thread loads W[k0+ty][c]: consecutive columns together
            sh[ty * TILE + tx] = t < T && k < rows ? dy[t * rows + k] : 0f;
            sh[TILE * TILE + ty * TILE + tx] = wr < rows && c < cols
                    ? weight(layout, wf, wh, wb, tables, off, qabsOff, sOff, cols, wr * cols + c) : 0f;
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

    public static void backward(float[] dx, float[] dy, float[] wf, short[] wh, byte[] wb, float[] tables, int layout, int off,
                                int qabsOff, int sOff, int T, int rows, int cols, int accumulate) {
        switch (layout) {
            case F32 -> Matmul.backwardNaive(dx, dy, wf, off, T, rows, cols, accumulate);
            case F16 -> Matmul.backwardNaive(dx, dy, wh, off, T, rows, cols, accumulate);
            case Q8_0 -> Matmul.backwardNaive(dx, dy, wb, wf, off, T, rows, cols, accumulate);
            default -> Kbit.backwardNaive(dx, dy, wb, wf, tables, layout - KBIT, off, qabsOff, sOff, T, rows, cols, accumulate);
        }
    }
}

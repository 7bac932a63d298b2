package io.lora4j.kernels;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The register-blocked matrix products of prefill and training ({@link Matmul#forward} for T &gt; 1 and
 * {@link Matmul#backward}), BLIS-style: a micro-kernel keeps a 6 × 2 block of vector accumulators
 * in registers (12 of the 16 AVX2 or 32 AVX-512 registers; the vector length comes from
 * {@code FloatVector.SPECIES_PREFERRED}) and streams packed operands through them with one FMA per
 * accumulator per step, no horizontal sums.
 * <ul>
 * <li>Forward, {@code out (T, rows) = x (T, cols) · Wᵀ}: x is packed once per call, transposed into
 * blocks of 2L tokens ({@code xp[tb][c][2L]}); each thread decodes a panel of {@link #RP} weight
 * rows once ({@link Dequant#row}, any type) and runs every token block over it, 6 rows × 2L tokens
 * per kernel (row values broadcast, token vectors loaded). The panel's results go to a scratch block
 * and are written to out a token row at a time: writing them straight from the accumulators
 * (a column of out, stride {@code rows}) thrashed one L1 set whenever rows · 4 bytes was a multiple
 * of 4 KiB (2048 rows: 100 against 164 GFLOP/s on one core).</li>
 * <li>Input gradient, {@code dx (T, cols) = dy (T, rows) · W}: threads take strips of {@link #SW}
 * columns; a strip is decoded {@link #RB} rows at a time (a chunk that stays in L2) and every block of
 * 6 tokens runs over it, 6 tokens × 2L columns per kernel (dy broadcast from a copy packed per token
 * block, weight vectors loaded), the partial sums carried from chunk to chunk in dx.</li>
 * </ul>
 * Every output element is one chain of FMAs in index order (over c forward, over r backward), so
 * results do not depend on T, on the token's place in the batch or on the thread count.
 */
final class Gemm {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    /** Tokens per block: the kernel's two vectors. */
    private static final int TB = 2 * L;
    /** Rows (forward) or tokens (backward) per kernel. */
    private static final int MR = 6;
    /** Weight rows decoded per forward panel. */
    static final int RP = 8 * MR;
    /** Columns per backward strip, and rows per strip chunk. */
    static final int SW = 128, RB = 512;
    private static final ThreadLocal<float[]> PACKED = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> PANEL = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> STRIP = ThreadLocal.withInitial(() -> new float[0]);

    private Gemm() {
    }

    private static float[] grow(ThreadLocal<float[]> tl, int n) {
        float[] s = tl.get();
        if (s.length < n) {
            s = new float[n];
            tl.set(s);
        }
        return s;
    }

    /** {@code outs[i] (T, ws[i].rows) = x (T, cols) · ws[i]ᵀ} for matrices sharing x: x packed once, their panels shared out together. */
    static void forward(float[][] outs, float[] x, Weight[] ws, int T) {
        int cols = ws[0].cols();
        int tp = (T + TB - 1) / TB * TB;
        float[] xp = grow(PACKED, cols * tp);
        pack(x, xp, T, cols);
        int[] first = new int[ws.length + 1]; // panels of matrix i: [first[i], first[i + 1])
        for (int i = 0; i < ws.length; i++) {
            first[i + 1] = first[i] + (ws[i].rows() + RP - 1) / RP;
        }
        Threads.parallelFor(first[ws.length], 2L * cols * tp * RP, (from, to) -> {
            float[] h = grow(PANEL, RP * cols + RP * TB);
            for (int i = 0; i < ws.length; i++) {
                for (int p = Math.max(from, first[i]); p < Math.min(to, first[i + 1]); p++) {
                    panel(outs[i], xp, ws[i], T, (p - first[i]) * RP, h);
                }
            }
        });
    }

    /**
     * x (T, cols) into {@code xp[tb][c][TB]}: token block tb's values of column c side by side, the
     * last block padded with zeros. Whole blocks are gathered a vector of L tokens at a time.
     */
    static void pack(float[] x, float[] xp, int T, int cols) {
        int[] idx = new int[L];
        for (int i = 0; i < L; i++) {
            idx[i] = i * cols;
        }
        for (int t0 = 0; t0 < T; t0 += TB) {
            int tn = Math.min(TB, T - t0);
            int base = t0 * cols;
            if (tn == TB) {
                for (int c = 0; c < cols; c++) {
                    FloatVector.fromArray(F, x, base + c, idx, 0).intoArray(xp, base + c * TB);
                    FloatVector.fromArray(F, x, base + L * cols + c, idx, 0).intoArray(xp, base + c * TB + L);
                }
            } else {
                for (int c = 0; c < cols; c++) {
                    int o = base + c * TB;
                    for (int i = 0; i < TB; i++) {
                        xp[o + i] = i < tn ? x[base + i * cols + c] : 0f;
                    }
                }
            }
        }
    }

    /** Rows [r0, r0 + RP) of out for every token; h: the panel (RP rows of cols), then the results of a token block (RP × TB). */
    private static void panel(float[] out, float[] xp, Weight w, int T, int r0, float[] h) {
        int rows = w.rows(), cols = w.cols();
        int n = Math.min(RP, rows - r0);
        int nm = (n + MR - 1) / MR * MR;
        for (int k = 0; k < nm; k++) {
            if (k < n) {
                Dequant.row(w, r0 + k, h, k * cols);
            } else {
                java.util.Arrays.fill(h, k * cols, (k + 1) * cols, 0f);
            }
        }
        int res = RP * cols;
        for (int t0 = 0; t0 < T; t0 += TB) {
            for (int m = 0; m < nm; m += MR) {
                kernel(h, m * cols, xp, t0 * cols, cols, h, res + m * TB);
            }
            int tn = Math.min(TB, T - t0);
            for (int i = 0; i < tn; i++) {
                int o = (t0 + i) * rows + r0;
                for (int k = 0; k < n; k++) {
                    out[o + k] = h[res + k * TB + i];
                }
            }
        }
    }

    /**
     * 6 weight rows (h from w0, cols apart) × TB tokens (xp from xo): {@code res[ro + k·TB + i] = Σ_c
     * h[w0 + k·cols + c] · xp[xo + c·TB + i]}.
     */
    private static void kernel(float[] h, int w0, float[] xp, int xo, int cols, float[] res, int ro) {
        FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
        FloatVector a30 = a00, a31 = a00, a40 = a00, a41 = a00, a50 = a00, a51 = a00;
        int w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols, w4 = w3 + cols, w5 = w4 + cols;
        for (int c = 0; c < cols; c++) {
            int o = xo + c * TB;
            FloatVector x0 = FloatVector.fromArray(F, xp, o);
            FloatVector x1 = FloatVector.fromArray(F, xp, o + L);
            FloatVector b = FloatVector.broadcast(F, h[w0 + c]);
            a00 = x0.fma(b, a00);
            a01 = x1.fma(b, a01);
            b = FloatVector.broadcast(F, h[w1 + c]);
            a10 = x0.fma(b, a10);
            a11 = x1.fma(b, a11);
            b = FloatVector.broadcast(F, h[w2 + c]);
            a20 = x0.fma(b, a20);
            a21 = x1.fma(b, a21);
            b = FloatVector.broadcast(F, h[w3 + c]);
            a30 = x0.fma(b, a30);
            a31 = x1.fma(b, a31);
            b = FloatVector.broadcast(F, h[w4 + c]);
            a40 = x0.fma(b, a40);
            a41 = x1.fma(b, a41);
            b = FloatVector.broadcast(F, h[w5 + c]);
            a50 = x0.fma(b, a50);
            a51 = x1.fma(b, a51);
        }
        a00.intoArray(res, ro);
        a01.intoArray(res, ro + L);
        a10.intoArray(res, ro + TB);
        a11.intoArray(res, ro + TB + L);
        a20.intoArray(res, ro + 2 * TB);
        a21.intoArray(res, ro + 2 * TB + L);
        a30.intoArray(res, ro + 3 * TB);
        a31.intoArray(res, ro + 3 * TB + L);
        a40.intoArray(res, ro + 4 * TB);
        a41.intoArray(res, ro + 4 * TB + L);
        a50.intoArray(res, ro + 5 * TB);
        a51.intoArray(res, ro + 5 * TB + L);
    }

    /** {@code dx (T, cols) (=, or += with accumulate) dy (T, rows) · W}. */
    static void backward(float[] dx, float[] dy, Weight w, int T, boolean accumulate) {
        int rows = w.rows(), cols = w.cols();
        int sw = Math.min(Math.max(SW, w.type().ggml ? w.type().blockSize : Blockwise4.BLOCK), cols);
        int blocks = (T + MR - 1) / MR;
        float[] dyp = grow(PACKED, blocks * MR * rows);
        for (int tb = 0; tb < blocks; tb++) { // dyp[tb][r][MR]: a block's 6 values of row r side by side, zeros past T
            for (int k = 0; k < MR; k++) {
                int t = tb * MR + k;
                int dst = tb * rows * MR + k;
                for (int r = 0; r < rows; r++) {
                    dyp[dst + r * MR] = t < T ? dy[t * rows + r] : 0f;
                }
            }
        }
        Threads.parallelFor((cols + sw - 1) / sw, 2L * T * rows * sw, (from, to) -> {
            float[] strip = grow(STRIP, RB * sw + MR * TB);
            for (int b = from; b < to; b++) {
                int c0 = b * sw;
                int n = Math.min(sw, cols - c0);
                for (int r0 = 0; r0 < rows; r0 += RB) {
                    stripChunk(dx, dy, dyp, w, T, c0, n, r0, Math.min(rows, r0 + RB), accumulate || r0 > 0, strip);
                }
            }
        });
    }

    /**
     * dx[·][c0, c0 + n) (acc: +=) Σ_{r in [r0, r1)} dy[·][r] · W[r][c0, c0 + n). strip: the decoded chunk
     * ((r1 − r0) × n), then room for a padded block of the last tokens (MR × TB).
     */
    private static void stripChunk(float[] dx, float[] dy, float[] dyp, Weight w, int T, int c0, int n, int r0, int r1,
                                   boolean acc, float[] strip) {
        int rows = w.rows(), cols = w.cols();
        boolean ggml = w.type().ggml;
        long rowBytes = ggml ? w.rowBytes() : 0;
        for (int r = r0; r < r1; r++) {
            if (ggml) {
                Dequant.range(w.type(), w.data(), r * rowBytes + w.type().byteSize(c0), strip, (r - r0) * n, n, w.name());
            } else {
                Kbit.decode(w, (long) r * cols + c0, strip, (r - r0) * n, n);
            }
        }
        int tail = (r1 - r0) * n;
        int vec = n / TB * TB;
        for (int c = 0; c < vec; c += TB) {
            for (int t = 0; t < T; t += MR) {
                int q = (t / MR * rows + r0) * MR;
                int valid = Math.min(MR, T - t);
                int xo = t * cols + c0 + c;
                if (valid == MR) {
                    kernelT(dx, xo, cols, acc, dyp, q, strip, c, n, r1 - r0);
                    continue;
                }
                // the last tokens: through a padded block after the chunk
                for (int k = 0; k < MR; k++) {
                    for (int i = 0; i < TB; i++) {
                        strip[tail + k * TB + i] = acc && k < valid ? dx[xo + k * cols + i] : 0f;
                    }
                }
                kernelT(strip, tail, TB, acc, dyp, q, strip, c, n, r1 - r0);
                for (int k = 0; k < valid; k++) {
                    System.arraycopy(strip, tail + k * TB, dx, xo + k * cols, TB);
                }
            }
        }
        for (int t = 0; t < T; t++) {
            for (int c = vec; c < n; c++) {
                int i = t * cols + c0 + c;
                float a = acc ? dx[i] : 0f;
                for (int r = r0; r < r1; r++) {
                    a += dy[t * rows + r] * strip[(r - r0) * n + c];
                }
                dx[i] = a;
            }
        }
    }

    /**
     * 6 tokens × TB columns: {@code d[xo + k·stride + i] (acc: +=) Σ_j dyp[q + 6j + k] · strip[j·n + c + i]}
     * over the chunk's nr rows.
     */
    private static void kernelT(float[] d, int xo, int stride, boolean acc, float[] dyp, int q, float[] strip, int c, int n,
                                int nr) {
        int x1 = xo + stride, x2 = x1 + stride, x3 = x2 + stride, x4 = x3 + stride, x5 = x4 + stride;
        FloatVector a00, a01, a10, a11, a20, a21, a30, a31, a40, a41, a50, a51;
        if (acc) {
            a00 = FloatVector.fromArray(F, d, xo);
            a01 = FloatVector.fromArray(F, d, xo + L);
            a10 = FloatVector.fromArray(F, d, x1);
            a11 = FloatVector.fromArray(F, d, x1 + L);
            a20 = FloatVector.fromArray(F, d, x2);
            a21 = FloatVector.fromArray(F, d, x2 + L);
            a30 = FloatVector.fromArray(F, d, x3);
            a31 = FloatVector.fromArray(F, d, x3 + L);
            a40 = FloatVector.fromArray(F, d, x4);
            a41 = FloatVector.fromArray(F, d, x4 + L);
            a50 = FloatVector.fromArray(F, d, x5);
            a51 = FloatVector.fromArray(F, d, x5 + L);
        } else {
            a00 = FloatVector.zero(F);
            a01 = a00;
            a10 = a00;
            a11 = a00;
            a20 = a00;
            a21 = a00;
            a30 = a00;
            a31 = a00;
            a40 = a00;
            a41 = a00;
            a50 = a00;
            a51 = a00;
        }
        for (int j = 0, o = c; j < nr; j++, o += n, q += MR) {
            FloatVector w0 = FloatVector.fromArray(F, strip, o);
            FloatVector w1 = FloatVector.fromArray(F, strip, o + L);
            FloatVector g = FloatVector.broadcast(F, dyp[q]);
            a00 = w0.fma(g, a00);
            a01 = w1.fma(g, a01);
            g = FloatVector.broadcast(F, dyp[q + 1]);
            a10 = w0.fma(g, a10);
            a11 = w1.fma(g, a11);
            g = FloatVector.broadcast(F, dyp[q + 2]);
            a20 = w0.fma(g, a20);
            a21 = w1.fma(g, a21);
            g = FloatVector.broadcast(F, dyp[q + 3]);
            a30 = w0.fma(g, a30);
            a31 = w1.fma(g, a31);
            g = FloatVector.broadcast(F, dyp[q + 4]);
            a40 = w0.fma(g, a40);
            a41 = w1.fma(g, a41);
            g = FloatVector.broadcast(F, dyp[q + 5]);
            a50 = w0.fma(g, a50);
            a51 = w1.fma(g, a51);
        }
        a00.intoArray(d, xo);
        a01.intoArray(d, xo + L);
        a10.intoArray(d, x1);
        a11.intoArray(d, x1 + L);
        a20.intoArray(d, x2);
        a21.intoArray(d, x2 + L);
        a30.intoArray(d, x3);
        a31.intoArray(d, x3 + L);
        a40.intoArray(d, x4);
        a41.intoArray(d, x4 + L);
        a50.intoArray(d, x5);
        a51.intoArray(d, x5 + L);
    }
}

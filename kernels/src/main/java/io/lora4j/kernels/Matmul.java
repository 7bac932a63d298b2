package io.lora4j.kernels;

import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Matrix products with a (possibly quantized) weight W (rows, cols):
 * {@code out[t][r] = Σ_c W[r][c] · x[t][c]} for T tokens, its input gradient and the weight
 * gradient of a float matrix. Glossary: T tokens, rows = output width, cols = input width.
 * <p>
 * Decode (T = 1) is bound by memory bandwidth: fused decode-and-dot kernels for F32, F16, Q8_0,
 * Q4_0 and the k-bit types ({@link Kbit}: INT8, INT8_ZP, NF4, FP4; the 4-bit ones are bound by their
 * table lookups rather than by memory) read each weight byte once with the Vector API. Prefill
 * (T &gt; 1) is bound by arithmetic: from a vector's worth of tokens on, the register-blocked
 * micro-kernels of {@link Gemm} (each weight decoded once per call, reused by every token; the
 * input gradient of training likewise); below that, four rows decoded to a per-thread float scratch
 * are multiplied against four tokens at a time (16 accumulators).
 */
public final class Matmul {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Byte> B = L == 16 ? ByteVector.SPECIES_128 : L == 8 ? ByteVector.SPECIES_64 : ByteVector.SPECIES_PREFERRED;
    /** L halves (F16 decode): as many 16-bit lanes as the float vector has lanes, widened to int lanes. */
    private static final VectorSpecies<Short> S = L == 16 ? ShortVector.SPECIES_256 : L == 8 ? ShortVector.SPECIES_128 : ShortVector.SPECIES_64;
    private static final VectorSpecies<Integer> I = IntVector.SPECIES_PREFERRED;
    private static final boolean FUSED = (L == 16 || L == 8) && !Boolean.getBoolean("lora4j.noFusedKernels");
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final ThreadLocal<float[]> SCRATCH = ThreadLocal.withInitial(() -> new float[0]);
    private static final ThreadLocal<float[]> LANES = ThreadLocal.withInitial(() -> new float[16 * L]);

    private Matmul() {
    }

    /**
     * Naive oracle and device kernel (TornadoVM kernel subset), one work-item per output element.
     *
     * @param out (T, rows)
     * @param x   (T, cols)
     * @param w   (rows, cols)
     */
    public static void forwardNaive(float[] out, float[] x, float[] w, int T, int rows, int cols) {
        forwardNaive(out, x, w, 0, new int[]{T}, T, rows, cols);
    }

    /**
     * {@link #forwardNaive(float[], float[], float[], int, int, int)} with W starting at {@code w[wOff]}: the
     * device kernel (device plans keep many matrices in one flat buffer, llm.c style). Only the first
     * {@code n[0]} of the T rows are computed (a device plan built for chunks of T tokens runs shorter
     * chunks, e.g. one token when decoding, without the cost of the padding); the rest are left as they were.
     */
    public static void forwardNaive(float[] out, float[] x, float[] w, int wOff, int[] n, int T, int rows, int cols) {
        for (@Parallel int tr = 0; tr < T * rows; tr++) {
            int t = tr / rows;
            int r = tr % rows;
            if (t < n[0]) {
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += w[wOff + r * cols + c] * x[t * cols + c];
                }
                out[tr] = acc;
            }
        }
    }

    /** Naive oracle over quantized bytes: each row decoded by {@link Dequant#naive} into {@code rowScratch} (cols). */
    public static void forwardNaive(float[] out, float[] x, byte[] w, GgmlType type, float[] rowScratch, int T, int rows, int cols) {
        int rowBytes = (int) type.byteSize(cols);
        for (int r = 0; r < rows; r++) {
            Dequant.naive(type, w, r * rowBytes, rowScratch, 0, cols);
            for (int t = 0; t < T; t++) {
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += rowScratch[c] * x[t * cols + c];
                }
                out[t * rows + r] = acc;
            }
        }
    }

    /**
     * Device form over F16 weights (naive oracle, TornadoVM kernel subset): the halves are decoded
     * with integer arithmetic ({@link Dequant#finiteHalfToFloat}) because PoCL and other OpenCL 1.2
     * devices have no fp16 type.
     *
     * @param out (T, rows)
     * @param x   (T, cols)
     * @param w   (rows, cols) fp16 bits, from {@code w[wOff]}
     * @param n   (1) rows of x to compute, as in the F32 form
     */
    public static void forwardNaive(float[] out, float[] x, short[] w, int wOff, int[] n, int T, int rows, int cols) {
        for (@Parallel int tr = 0; tr < T * rows; tr++) {
            int t = tr / rows;
            int r = tr % rows;
            if (t < n[0]) {
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += Dequant.finiteHalfToFloat(w[wOff + r * cols + c]) * x[t * cols + c];
                }
                out[tr] = acc;
            }
        }
    }

    /**
     * Device form over Q8_0 weights split into int8 quants and float block scales (the layout a
     * device plan uploads: ggml's 34-byte blocks with their fp16 scale decoded once on the host).
     * Naive oracle, TornadoVM kernel subset; each block's products are summed before scaling, as
     * ggml does.
     *
     * @param out (T, rows)
     * @param x   (T, cols)
     * @param q   (rows, cols) int8 quants, from {@code q[qOff]} (a multiple of 32)
     * @param d   (rows, cols / 32) block scales, from {@code d[qOff / 32]}
     * @param n   (1) rows of x to compute, as in the F32 form
     */
    public static void forwardNaive(float[] out, float[] x, byte[] q, float[] d, int qOff, int[] n, int T, int rows, int cols) {
        int nb = cols / 32;
        int dOff = qOff / 32;
        for (@Parallel int tr = 0; tr < T * rows; tr++) {
            int t = tr / rows;
            int r = tr % rows;
            if (t < n[0]) {
                float acc = 0f;
                for (int b = 0; b < nb; b++) {
                    float s = 0f;
                    for (int j = 0; j < 32; j++) {
                        s += q[qOff + r * cols + b * 32 + j] * x[t * cols + b * 32 + j];
                    }
                    acc += d[dOff + r * nb + b] * s;
                }
                out[tr] = acc;
            }
        }
    }

    /** Fast twin: {@code out (T, w.rows) = x (T, w.cols) · Wᵀ}, multi-threaded over rows. */
    public static void forward(float[] out, float[] x, Weight w, int T) {
        int rows = w.rows();
        int cols = w.cols();
        if (T == 1 && fused(w)) {
            boolean finite = w.finiteHalves(); // an F16 matrix is scanned once, here, on all threads, before its first product
            float[] in = fusedInput(w, x);
            Threads.parallelFor(rows, 2L * cols, (from, to) -> {
                for (int r = from; r < to; r++) {
                    out[r] = dot(w, r, in, cols, finite);
                }
            });
            return;
        }
        if (T >= L) {
            Gemm.forward(new float[][]{out}, x, new Weight[]{w}, T);
            return;
        }
        // a few tokens (fewer than a vector): 16 decoded rows per block, each block of 4 tokens reused by four 4x4 tiles
        Threads.parallelFor((rows + 15) / 16, 32L * cols * T, (from, to) -> {
            float[] s = scratch(16 * cols);
            for (int rb = from; rb < to; rb++) {
                int r0 = 16 * rb;
                int n = Math.min(16, rows - r0);
                for (int k = 0; k < n; k++) {
                    Dequant.row(w, r0 + k, s, k * cols);
                }
                for (int t = 0; t < T; t += 4) {
                    int tn = Math.min(4, T - t);
                    for (int g = 0; g < n; g += 4) {
                        tile(out, x, s, g * cols, r0 + g, Math.min(4, n - g), t, t + tn, rows, cols);
                    }
                }
            }
        });
    }

    /**
     * Several products with the same input in one dispatch (e.g. Q, K and V): {@code outs[i] = x · ws[i]ᵀ}.
     * One barrier instead of one per matrix; the rows of all matrices are shared out together.
     */
    public static void forward(float[][] outs, float[] x, Weight[] ws, int T) {
        boolean fused = T == 1;
        boolean same = true;
        int total = 0;
        for (Weight w : ws) {
            same &= w.cols() == ws[0].cols();
            fused &= fused(w);
            total += w.rows();
        }
        fused &= same;
        if (T >= L && same) {
            Gemm.forward(outs, x, ws, T);
            return;
        }
        if (!fused) {
            for (int i = 0; i < ws.length; i++) {
                forward(outs[i], x, ws[i], T);
            }
            return;
        }
        int cols = ws[0].cols();
        float[] xd = x; // the same x and cols: one deinterleaved copy serves every 4-bit matrix
        for (Weight w : ws) {
            if (Kbit.fourBit(w.type())) {
                xd = fusedInput(w, x);
                break;
            }
        }
        float[] deinterleaved = xd;
        boolean[] finite = new boolean[ws.length];
        for (int i = 0; i < ws.length; i++) {
            finite[i] = ws[i].finiteHalves();
        }
        Threads.parallelFor(total, 2L * cols, (from, to) -> {
            int base = 0;
            for (int i = 0; i < ws.length; i++) {
                Weight w = ws[i];
                int lo = Math.max(from - base, 0);
                int hi = Math.min(to - base, w.rows());
                float[] out = outs[i];
                float[] in = Kbit.fourBit(w.type()) ? deinterleaved : x;
                for (int r = lo; r < hi; r++) {
                    out[r] = dot(w, r, in, cols, finite[i]);
                }
                base += w.rows();
            }
        });
    }

    /**
     * Decode for a batch of R rows from different sequences: {@code outs[i] (R, rows) = x (R, cols) ·
     * ws[i]ᵀ}, the matrices sharing the input. Every product is computed the same way whatever R is:
     * each weight row is decoded once into a float scratch row ({@link Dequant#row}, exact), then dotted
     * with each input row with the fixed reduction tree ({@link #FOLDS}). A row's results therefore do not
     * depend on which other rows share the batch (a server's batching changes no output), and the
     * weights are read once per call for all R rows.
     */
    public static void forwardRows(float[][] outs, float[] x, Weight[] ws, int R) {
        int total = 0;
        int cols = ws[0].cols();
        for (Weight w : ws) {
            if (w.cols() != cols) {
                throw new IllegalArgumentException("matrices sharing an input must have the same width");
            }
            total += w.rows();
        }
        for (Weight w : ws) {
            w.finiteHalves(); // an F16 matrix is scanned once, here, on all threads, before its first product
        }
        Threads.parallelFor(total, 2L * cols * R, (from, to) -> rowsBlock(outs, x, ws, R, cols, from, to, scratch(RB * cols)));
    }

    /**
     * {@link #forwardRows} for the rows {@code from..to} of the matrices laid end to end; h is scratch for
     * {@link #RB} decoded weight rows. Weight rows are decoded {@link #RB} at a time and every pair of input
     * rows runs over them with RB × 2 accumulators (6 loads per 8 FMAs, where one weight row against one
     * input needs 2 per FMA); whatever the blocking, each output element is one accumulator chain over c
     * in vector steps, the fixed fold and the scalar tail, so a row's result does not depend on the others.
     */
    private static void rowsBlock(float[][] outs, float[] x, Weight[] ws, int R, int cols, int from, int to, float[] h) {
        int upper = F.loopBound(cols);
        int base = 0;
        for (int i = 0; i < ws.length; i++) {
            Weight w = ws[i];
            int rows = w.rows();
            int lo = Math.max(from - base, 0);
            int hi = Math.min(to - base, rows);
            float[] out = outs[i];
            // F16 or Q8_0 with AVX-512: groups of 8 inputs straight from the weights (rows2x8); the last one or
            // two inputs likewise, a row at a time (q8Row: 4x the scratch path's speed at one input; f16Row, finite
            // F16 in the 10-operation decode, both inputs per decoded vector: JMH batchRows 1 and 2 inputs 26/19 and
            // 65/37 -> 42/42 and 80/81 GFLOP/s on 2048x768/5632x2048; 3 to 5 inputs stay faster on the scratch path)
            boolean q8 = w.type() == GgmlType.Q8_0;
            boolean inRegisters = (w.type() == GgmlType.F16 || q8) && L == 16 && FUSED;
            int r8 = inRegisters ? R / 8 * 8 : 0;
            boolean finiteF16 = inRegisters && !q8 && w.finiteHalves();
            int r = lo;
            for (; r + RB <= hi; r += RB) {
                int t = 0;
                if (r8 > 0) {
                    for (int k = 0; k < RB; k += 2) {
                        rows2x8(out, rows, x, w.data(), w.rowBytes(), q8, r + k, r8, cols);
                    }
                    t = r8;
                }
                if (q8 && inRegisters && R - t <= 2) {
                    for (; t < R; t++) {
                        for (int k = 0; k < RB; k++) {
                            q8Row(out, rows, x, w.data(), w.rowBytes(), r + k, t, cols);
                        }
                    }
                }
                if (finiteF16 && t < R && R - t <= 2) {
                    for (int k = 0; k < RB; k++) {
                        f16Row(out, rows, x, w.data(), w.rowBytes(), r + k, t, R - t, cols);
                    }
                    t = R;
                }
                if (t == R) {
                    continue;
                }
                for (int k = 0; k < RB; k++) {
                    Dequant.row(w, r + k, h, k * cols);
                }
                int h1 = cols, h2 = 2 * cols, h3 = 3 * cols;
                for (; t + 2 <= R; t += 2) {
                    int x0 = t * cols, x1 = x0 + cols;
                    FloatVector a00 = FloatVector.zero(F), a01 = a00, a10 = a00, a11 = a00;
                    FloatVector a20 = a00, a21 = a00, a30 = a00, a31 = a00;
                    int c = 0;
                    for (; c < upper; c += L) {
                        FloatVector v0 = FloatVector.fromArray(F, x, x0 + c), v1 = FloatVector.fromArray(F, x, x1 + c);
                        FloatVector w0 = FloatVector.fromArray(F, h, c), w1 = FloatVector.fromArray(F, h, h1 + c);
                        FloatVector w2 = FloatVector.fromArray(F, h, h2 + c), w3 = FloatVector.fromArray(F, h, h3 + c);
                        a00 = w0.fma(v0, a00);
                        a01 = w0.fma(v1, a01);
                        a10 = w1.fma(v0, a10);
                        a11 = w1.fma(v1, a11);
                        a20 = w2.fma(v0, a20);
                        a21 = w2.fma(v1, a21);
                        a30 = w3.fma(v0, a30);
                        a31 = w3.fma(v1, a31);
                    }
                    for (VectorShuffle<Float> fold : FOLDS) {
                        a00 = a00.add(a00.rearrange(fold));
                        a01 = a01.add(a01.rearrange(fold));
                        a10 = a10.add(a10.rearrange(fold));
                        a11 = a11.add(a11.rearrange(fold));
                        a20 = a20.add(a20.rearrange(fold));
                        a21 = a21.add(a21.rearrange(fold));
                        a30 = a30.add(a30.rearrange(fold));
                        a31 = a31.add(a31.rearrange(fold));
                    }
                    float s00 = a00.lane(0), s01 = a01.lane(0), s10 = a10.lane(0), s11 = a11.lane(0);
                    float s20 = a20.lane(0), s21 = a21.lane(0), s30 = a30.lane(0), s31 = a31.lane(0);
                    for (int k = c; k < cols; k++) {
                        float v0 = x[x0 + k], v1 = x[x1 + k];
                        s00 += h[k] * v0;
                        s01 += h[k] * v1;
                        s10 += h[h1 + k] * v0;
                        s11 += h[h1 + k] * v1;
                        s20 += h[h2 + k] * v0;
                        s21 += h[h2 + k] * v1;
                        s30 += h[h3 + k] * v0;
                        s31 += h[h3 + k] * v1;
                    }
                    int o0 = t * rows + r, o1 = o0 + rows;
                    out[o0] = s00;
                    out[o1] = s01;
                    out[o0 + 1] = s10;
                    out[o1 + 1] = s11;
                    out[o0 + 2] = s20;
                    out[o1 + 2] = s21;
                    out[o0 + 3] = s30;
                    out[o1 + 3] = s31;
                }
                if (t < R) { // the last input of an odd count (the only one when R = 1): RB accumulators
                    int x0 = t * cols;
                    FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
                    int c = 0;
                    for (; c < upper; c += L) {
                        FloatVector v0 = FloatVector.fromArray(F, x, x0 + c);
                        a0 = FloatVector.fromArray(F, h, c).fma(v0, a0);
                        a1 = FloatVector.fromArray(F, h, h1 + c).fma(v0, a1);
                        a2 = FloatVector.fromArray(F, h, h2 + c).fma(v0, a2);
                        a3 = FloatVector.fromArray(F, h, h3 + c).fma(v0, a3);
                    }
                    for (VectorShuffle<Float> fold : FOLDS) {
                        a0 = a0.add(a0.rearrange(fold));
                        a1 = a1.add(a1.rearrange(fold));
                        a2 = a2.add(a2.rearrange(fold));
                        a3 = a3.add(a3.rearrange(fold));
                    }
                    float s0 = a0.lane(0), s1 = a1.lane(0), s2 = a2.lane(0), s3 = a3.lane(0);
                    for (int k = c; k < cols; k++) {
                        float v0 = x[x0 + k];
                        s0 += h[k] * v0;
                        s1 += h[h1 + k] * v0;
                        s2 += h[h2 + k] * v0;
                        s3 += h[h3 + k] * v0;
                    }
                    int o0 = t * rows + r;
                    out[o0] = s0;
                    out[o0 + 1] = s1;
                    out[o0 + 2] = s2;
                    out[o0 + 3] = s3;
                }
            }
            for (; r < hi; r++) {
                Dequant.row(w, r, h, 0);
                for (int t = 0; t < R; t++) {
                    out[t * rows + r] = dotArrays(h, 0, x, t * cols, cols); // the order of the blocks' chains
                }
            }
            base += rows;
        }
    }

    /**
     * Rows r and r + 1 of an F16 or a Q8_0 matrix (rows at {@code rowBytes} apart in seg) against the
     * inputs 0..n (n a multiple of 8), 8 at a time: 16 accumulators, each weight vector decoded in
     * registers (F16: {@link #halves}; Q8_0: its 16 quants widened to floats times the block's scale) and
     * used by 8 inputs. Weights stream from memory while the FMAs run (decoding a block of rows to a
     * scratch first left the cores waiting on memory during the decode: a third of a server's step); the
     * results are those of the scratch path bit for bit (the same exact decoded values, one chain per output
     * over c in vector steps, the fixed fold, the scalar tail).
     */
    private static void rows2x8(float[] out, int rows, float[] x, MemorySegment seg, long rowBytes, boolean q8, int r, int n,
                                int cols) {
        int upper = F.loopBound(cols);
        long b0 = r * rowBytes, b1 = b0 + rowBytes;
        for (int t0 = 0; t0 < n; t0 += 8) {
            int x0 = t0 * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
            int x4 = x3 + cols, x5 = x4 + cols, x6 = x5 + cols, x7 = x6 + cols;
            FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
            FloatVector e0 = a0, e1 = a0, e2 = a0, e3 = a0, e4 = a0, e5 = a0, e6 = a0, e7 = a0;
            int c = 0;
            for (; c < upper; c += L) {
                FloatVector w0 = weights(seg, b0, c, q8), w1 = weights(seg, b1, c, q8);
                FloatVector v = FloatVector.fromArray(F, x, x0 + c);
                a0 = w0.fma(v, a0);
                e0 = w1.fma(v, e0);
                v = FloatVector.fromArray(F, x, x1 + c);
                a1 = w0.fma(v, a1);
                e1 = w1.fma(v, e1);
                v = FloatVector.fromArray(F, x, x2 + c);
                a2 = w0.fma(v, a2);
                e2 = w1.fma(v, e2);
                v = FloatVector.fromArray(F, x, x3 + c);
                a3 = w0.fma(v, a3);
                e3 = w1.fma(v, e3);
                v = FloatVector.fromArray(F, x, x4 + c);
                a4 = w0.fma(v, a4);
                e4 = w1.fma(v, e4);
                v = FloatVector.fromArray(F, x, x5 + c);
                a5 = w0.fma(v, a5);
                e5 = w1.fma(v, e5);
                v = FloatVector.fromArray(F, x, x6 + c);
                a6 = w0.fma(v, a6);
                e6 = w1.fma(v, e6);
                v = FloatVector.fromArray(F, x, x7 + c);
                a7 = w0.fma(v, a7);
                e7 = w1.fma(v, e7);
            }
            for (VectorShuffle<Float> fold : FOLDS) {
                a0 = a0.add(a0.rearrange(fold));
                a1 = a1.add(a1.rearrange(fold));
                a2 = a2.add(a2.rearrange(fold));
                a3 = a3.add(a3.rearrange(fold));
                a4 = a4.add(a4.rearrange(fold));
                a5 = a5.add(a5.rearrange(fold));
                a6 = a6.add(a6.rearrange(fold));
                a7 = a7.add(a7.rearrange(fold));
                e0 = e0.add(e0.rearrange(fold));
                e1 = e1.add(e1.rearrange(fold));
                e2 = e2.add(e2.rearrange(fold));
                e3 = e3.add(e3.rearrange(fold));
                e4 = e4.add(e4.rearrange(fold));
                e5 = e5.add(e5.rearrange(fold));
                e6 = e6.add(e6.rearrange(fold));
                e7 = e7.add(e7.rearrange(fold));
            }
            float[] s0 = {a0.lane(0), a1.lane(0), a2.lane(0), a3.lane(0), a4.lane(0), a5.lane(0), a6.lane(0), a7.lane(0)};
            float[] s1 = {e0.lane(0), e1.lane(0), e2.lane(0), e3.lane(0), e4.lane(0), e5.lane(0), e6.lane(0), e7.lane(0)};
            for (int k = c; k < cols; k++) { // F16 only: a Q8_0 row is whole blocks of 32
                float w0 = Float.float16ToFloat(seg.get(SHORT, b0 + 2L * k)), w1 = Float.float16ToFloat(seg.get(SHORT, b1 + 2L * k));
                for (int j = 0; j < 8; j++) {
                    float v = x[x0 + j * cols + k];
                    s0[j] += w0 * v;
                    s1[j] += w1 * v;
                }
            }
            for (int j = 0; j < 8; j++) {
                out[(t0 + j) * rows + r] = s0[j];
                out[(t0 + j) * rows + r + 1] = s1[j];
            }
        }
    }

    /**
     * Finite F16 row r ({@link Weight#finiteHalves}) against input t, or inputs t and t + 1 (n = 2): the
     * scratch path's chain for each output, each weight vector decoded once in registers ({@link #finiteHalves})
     * for both, one stream of weights.
     */
    private static void f16Row(float[] out, int rows, float[] x, MemorySegment seg, long rowBytes, int r, int t, int n, int cols) {
        long b0 = r * rowBytes;
        int x0 = t * cols, x1 = x0 + cols;
        int upper = F.loopBound(cols);
        FloatVector a = FloatVector.zero(F), e = a;
        int c = 0;
        if (n == 1) {
            for (; c < upper; c += L) {
                a = finiteHalves(seg, b0 + 2L * c).fma(FloatVector.fromArray(F, x, x0 + c), a);
            }
        } else {
            for (; c < upper; c += L) {
                FloatVector w = finiteHalves(seg, b0 + 2L * c);
                a = w.fma(FloatVector.fromArray(F, x, x0 + c), a);
                e = w.fma(FloatVector.fromArray(F, x, x1 + c), e);
            }
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            a = a.add(a.rearrange(fold));
            e = e.add(e.rearrange(fold));
        }
        float s0 = a.lane(0), s1 = e.lane(0);
        for (; c < cols; c++) {
            float w = Float.float16ToFloat(seg.get(SHORT, b0 + 2L * c));
            s0 += w * x[x0 + c];
            if (n == 2) {
                s1 += w * x[x1 + c];
            }
        }
        out[t * rows + r] = s0;
        if (n == 2) {
            out[(t + 1) * rows + r] = s1;
        }
    }

    /** Q8_0 row r against input t alone, {@link #rows2x8}'s chain for one output: one stream of weights (two rows interleaved stream worse from memory). */
    private static void q8Row(float[] out, int rows, float[] x, MemorySegment seg, long rowBytes, int r, int t, int cols) {
        long b0 = r * rowBytes;
        int x0 = t * cols;
        FloatVector a = FloatVector.zero(F);
        for (int c = 0; c < cols; c += L) { // whole blocks of 32: no tail
            a = weights(seg, b0, c, true).fma(FloatVector.fromArray(F, x, x0 + c), a);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            a = a.add(a.rearrange(fold));
        }
        out[t * rows + r] = a.lane(0);
    }

    /**
     * Columns c..c + L of the F16 or Q8_0 row at byte {@code base}, exactly as {@link Dequant#row} decodes
     * them (Q8_0: blocks of 32, 2 bytes of fp16 scale then 32 quants; column c in block c / 32).
     */
    private static FloatVector weights(MemorySegment seg, long base, int c, boolean q8) {
        if (!q8) {
            return halves(seg, base + 2L * c);
        }
        long p = base + 34L * (c >> 5);
        return ((FloatVector) ByteVector.fromMemorySegment(B, seg, p + 2 + (c & 31), ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.B2F, F, 0)).mul(Float.float16ToFloat(seg.get(SHORT, p)));
    }

    /** Weight rows decoded together by {@link #forwardRows}. */
    private static final int RB = 4;

    /**
     * Shuffles that bring lane i + L/2, then i + L/4, … onto lane i: a fixed pairwise reduction tree.
     * Kernels sum their accumulator with {@code for (fold : FOLDS) acc = acc.add(acc.rearrange(fold));
     * acc.lane(0)}: {@code reduceLanes(ADD)} may add in a different order in interpreted and compiled
     * code, which would make results depend on JIT timing; this does not.
     * <p>
     * The loop is written in each kernel, not in a shared helper. A helper's vector calls are
     * virtual (FloatVector is abstract) and C2 inlines them only from the helper's own type profile;
     * when C2 compiled the helper early at tier 2, which keeps no profile, the calls stayed virtual,
     * ran the Vector API's Java fallbacks once per row, and the Q8_0 decode kernel ran at a third of
     * its speed (7.7 against 22 GB/s streaming a 184 MB matrix set, 2 threads), depending on JIT timing.
     */
    static final VectorShuffle<Float>[] FOLDS = folds();

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] folds() {
        int n = Integer.numberOfTrailingZeros(L);
        VectorShuffle<Float>[] f = new VectorShuffle[n];
        for (int k = 0; k < n; k++) {
            int half = L >> (k + 1);
            f[k] = VectorShuffle.fromOp(F, i -> (i + half) % L);
        }
        return f;
    }

    private static float[] scratch(int n) {
        float[] s = SCRATCH.get();
        if (s.length < n) {
            s = new float[n];
            SCRATCH.set(s);
        }
        return s;
    }

    /** out[t][r0+k] = Σ_c s[so + k·cols + c] · x[t][c] for k < n rows and tokens [tFrom, T), 4 tokens at a time. */
    private static void tile(float[] out, float[] x, float[] s, int so, int r0, int n, int tFrom, int T, int rows, int cols) {
        int upper = F.loopBound(cols);
        int t = tFrom;
        for (; t + 4 <= T && n == 4; t += 4) {
            int x0 = t * cols, x1 = x0 + cols, x2 = x1 + cols, x3 = x2 + cols;
            FloatVector a00 = FloatVector.zero(F), a01 = a00, a02 = a00, a03 = a00;
            FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
            FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            int c = 0;
            for (; c < upper; c += L) {
                FloatVector w0 = FloatVector.fromArray(F, s, so + c);
                FloatVector w1 = FloatVector.fromArray(F, s, so + cols + c);
                FloatVector w2 = FloatVector.fromArray(F, s, so + 2 * cols + c);
                FloatVector w3 = FloatVector.fromArray(F, s, so + 3 * cols + c);
                FloatVector v = FloatVector.fromArray(F, x, x0 + c);
                a00 = w0.fma(v, a00);
                a10 = w1.fma(v, a10);
                a20 = w2.fma(v, a20);
                a30 = w3.fma(v, a30);
                v = FloatVector.fromArray(F, x, x1 + c);
                a01 = w0.fma(v, a01);
                a11 = w1.fma(v, a11);
                a21 = w2.fma(v, a21);
                a31 = w3.fma(v, a31);
                v = FloatVector.fromArray(F, x, x2 + c);
                a02 = w0.fma(v, a02);
                a12 = w1.fma(v, a12);
                a22 = w2.fma(v, a22);
                a32 = w3.fma(v, a32);
                v = FloatVector.fromArray(F, x, x3 + c);
                a03 = w0.fma(v, a03);
                a13 = w1.fma(v, a13);
                a23 = w2.fma(v, a23);
                a33 = w3.fma(v, a33);
            }
            // lanes summed in a fixed order (see sum): spill the 16 accumulators, add sequentially
            float[] lanes = LANES.get();
            a00.intoArray(lanes, 0);
            a01.intoArray(lanes, L);
            a02.intoArray(lanes, 2 * L);
            a03.intoArray(lanes, 3 * L);
            a10.intoArray(lanes, 4 * L);
            a11.intoArray(lanes, 5 * L);
            a12.intoArray(lanes, 6 * L);
            a13.intoArray(lanes, 7 * L);
            a20.intoArray(lanes, 8 * L);
            a21.intoArray(lanes, 9 * L);
            a22.intoArray(lanes, 10 * L);
            a23.intoArray(lanes, 11 * L);
            a30.intoArray(lanes, 12 * L);
            a31.intoArray(lanes, 13 * L);
            a32.intoArray(lanes, 14 * L);
            a33.intoArray(lanes, 15 * L);
            for (int k = 0; k < 4; k++) {
                for (int j = 0; j < 4; j++) {
                    int o = (4 * k + j) * L;
                    float acc = 0f;
                    for (int i = 0; i < L; i++) {
                        acc += lanes[o + i];
                    }
                    for (int cc = c; cc < cols; cc++) {
                        acc += s[so + k * cols + cc] * x[(t + j) * cols + cc];
                    }
                    out[(t + j) * rows + r0 + k] = acc;
                }
            }
        }
        for (; t < T; t++) {
            for (int k = 0; k < n; k++) {
                out[t * rows + r0 + k] = dotArrays(s, so + k * cols, x, t * cols, cols);
            }
        }
    }

    static float dotArrays(float[] a, int ao, float[] b, int bo, int n) {
        int upper = F.loopBound(n);
        FloatVector acc = FloatVector.zero(F);
        int c = 0;
        for (; c < upper; c += L) {
            acc = FloatVector.fromArray(F, a, ao + c).fma(FloatVector.fromArray(F, b, bo + c), acc);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        float sum = acc.lane(0);
        for (; c < n; c++) {
            sum += a[ao + c] * b[bo + c];
        }
        return sum;
    }

    /** Whether row products of w run fused: decode and dot in registers, read once. */
    private static boolean fused(Weight w) {
        if (!w.type().ggml) {
            return Kbit.fusedRows(w);
        }
        return FUSED && (w.type() == GgmlType.F32 || w.type() == GgmlType.F16 || w.type() == GgmlType.Q8_0
                || w.type() == GgmlType.Q4_0) && w.cols() % L == 0;
    }

    /** x as {@link #dot} reads it for w (the 4-bit k-bit types take it deinterleaved, in a per-thread copy). */
    private static float[] fusedInput(Weight w, float[] x) {
        if (w.type().ggml) {
            return x;
        }
        float[] s = XD.get();
        if (s.length < w.cols()) {
            s = new float[w.cols()];
            XD.set(s);
        }
        return Kbit.fusedInput(w, x, s);
    }

    private static final ThreadLocal<float[]> XD = ThreadLocal.withInitial(() -> new float[0]);

    /**
     * Fused decode-and-dot of row r with the {@link #fusedInput} (cols a multiple of the vector length).
     */
    private static float dot(Weight w, int r, float[] x, int cols, boolean finite) {
        if (!w.type().ggml) {
            return Kbit.dot(w, r, x);
        }
        MemorySegment seg = w.data();
        long base = r * w.rowBytes();
        return switch (w.type()) {
            case F32 -> dotF32(seg, base, x, cols);
            case F16 -> finite ? dotFiniteF16(seg, base, x, cols) : dotF16(seg, base, x, cols);
            case Q8_0 -> dotQ8(seg, base, x, cols);
            case Q4_0 -> dotQ4(seg, base, x, cols);
            default -> throw new IllegalStateException();
        };
    }

    private static float dotF32(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int c = 0;
        for (; c + 4 * L <= cols; c += 4 * L) {
            long o = base + 4L * c;
            a0 = FloatVector.fromMemorySegment(F, seg, o, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = FloatVector.fromMemorySegment(F, seg, o + 4L * L, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, c + L), a1);
            a2 = FloatVector.fromMemorySegment(F, seg, o + 8L * L, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, c + 2 * L), a2);
            a3 = FloatVector.fromMemorySegment(F, seg, o + 12L * L, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, c + 3 * L), a3);
        }
        for (; c < cols; c += L) {
            a0 = FloatVector.fromMemorySegment(F, seg, base + 4L * c, ByteOrder.LITTLE_ENDIAN).fma(FloatVector.fromArray(F, x, c), a0);
        }
        FloatVector acc = a0.add(a1).add(a2.add(a3));
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /**
     * F16 row · x in one pass: each vector of L halves decoded in integer lanes by {@link #halves}
     * and multiplied in registers. The two-pass form before (the row's halves to a float scratch with
     * {@code Float.float16ToFloat}, a loop C2 turns into VCVTPH2PS, then a dot over the scratch) streamed
     * half as fast on a 5632x2048 matrix (JMH {@code F16DotBench}, one thread: 7–15 against 14–15 GB/s,
     * docs/BENCHMARKS.md). The accumulators and their order are those of the two-pass form, and the
     * decoded values are exact, so the results are the same bits.
     */
    private static float dotF16(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int c = 0;
        for (; c + 2 * L <= cols; c += 2 * L) {
            a0 = halves(seg, base + 2L * c).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = halves(seg, base + 2L * (c + L)).fma(FloatVector.fromArray(F, x, c + L), a1);
        }
        for (; c < cols; c += L) {
            a0 = halves(seg, base + 2L * c).fma(FloatVector.fromArray(F, x, c), a0);
        }
        FloatVector acc = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /** {@link #dotF16} for a matrix without infinities or NaNs ({@link Weight#finiteHalves}): the same bits, two operations fewer per vector. */
    private static float dotFiniteF16(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int c = 0;
        for (; c + 2 * L <= cols; c += 2 * L) {
            a0 = finiteHalves(seg, base + 2L * c).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = finiteHalves(seg, base + 2L * (c + L)).fma(FloatVector.fromArray(F, x, c + L), a1);
        }
        for (; c < cols; c += L) {
            a0 = finiteHalves(seg, base + 2L * c).fma(FloatVector.fromArray(F, x, c), a0);
        }
        FloatVector acc = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /**
     * L fp16 values at byte {@code off} as floats, exactly as {@code Float.float16ToFloat} gives them
     * except that a signaling NaN is not quieted (an FMA quiets it, so a dot's bits are the same):
     * exponent and mantissa moved into a float's and the exponent rebiased in integer lanes (normal
     * halves), rebiased once more for infinities and NaNs, and subnormal ones renormalized by one
     * masked subtraction of two normal floats (their bits plus 2^-14, minus 2^-14) — no float denormal
     * ever appears, which would cost a microcode assist per vector on Intel cores. Twelve vector
     * operations per L halves; the form before (subnormals through an int→float conversion and a
     * multiply, blends, NaNs quieted) took seventeen and streamed 17–18 against 24–25 GB/s (JMH
     * {@code F16DotBench} bitsn against giesen, one thread, 5632x2048). A helper unlike the lane sum of
     * {@link #FOLDS}: every vector in it is made here from a constant species, so C2 knows their exact
     * classes even where it compiles this method without a type profile.
     */
    static FloatVector halves(MemorySegment seg, long off) {
        IntVector i = (IntVector) ShortVector.fromMemorySegment(S, seg, off, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.S2I, I, 0);
        IntVector em = i.and(0x7fff);
        IntVector o = em.lanewise(VectorOperators.LSHL, 13).add((127 - 15) << 23);
        o = o.add((128 - 16) << 23, em.compare(VectorOperators.GE, 0x7c00));
        VectorMask<Integer> subnormal = em.compare(VectorOperators.LT, 0x400);
        FloatVector f = o.add(1 << 23, subnormal).reinterpretAsFloats().sub(0x1p-14f, subnormal.cast(F));
        return f.reinterpretAsInts().or(i.and(0x80000000)).reinterpretAsFloats(); // i is sign-extended: bit 31 is the sign
    }

    /**
     * {@link #halves} for finite halves only (an infinity or a NaN comes out as a finite number): without
     * the exponent's second rebias. Ten vector operations per L halves instead of twelve.
     */
    static FloatVector finiteHalves(MemorySegment seg, long off) {
        IntVector i = (IntVector) ShortVector.fromMemorySegment(S, seg, off, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.S2I, I, 0);
        IntVector em = i.and(0x7fff);
        IntVector o = em.lanewise(VectorOperators.LSHL, 13).add((127 - 15) << 23);
        VectorMask<Integer> subnormal = em.compare(VectorOperators.LT, 0x400);
        FloatVector f = o.add(1 << 23, subnormal).reinterpretAsFloats().sub(0x1p-14f, subnormal.cast(F));
        return f.reinterpretAsInts().or(i.and(0x80000000)).reinterpretAsFloats();
    }

    private static float dotQ8(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector acc = FloatVector.zero(F);
        int nb = cols / 32;
        for (int b = 0; b < nb; b++) {
            long p = base + 34L * b;
            float d = Float.float16ToFloat(seg.get(SHORT, p));
            FloatVector s = FloatVector.zero(F);
            for (int j = 0; j < 32; j += L) {
                FloatVector q = (FloatVector) ByteVector.fromMemorySegment(B, seg, p + 2 + j, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, F, 0);
                s = q.fma(FloatVector.fromArray(F, x, 32 * b + j), s);
            }
            acc = s.fma(FloatVector.broadcast(F, d), acc);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    private static float dotQ4(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector acc = FloatVector.zero(F);
        int nb = cols / 32;
        for (int b = 0; b < nb; b++) {
            long p = base + 18L * b;
            float d = Float.float16ToFloat(seg.get(SHORT, p));
            FloatVector s = FloatVector.zero(F);
            for (int j = 0; j < 16; j += L) {
                ByteVector q = ByteVector.fromMemorySegment(B, seg, p + 2 + j, ByteOrder.LITTLE_ENDIAN);
                FloatVector lo = (FloatVector) q.and((byte) 15).sub((byte) 8).convertShape(VectorOperators.B2F, F, 0);
                FloatVector hi = (FloatVector) q.lanewise(VectorOperators.LSHR, 4).and((byte) 15).sub((byte) 8)
                        .convertShape(VectorOperators.B2F, F, 0);
                s = lo.fma(FloatVector.fromArray(F, x, 32 * b + j), s);
                s = hi.fma(FloatVector.fromArray(F, x, 32 * b + 16 + j), s);
            }
            acc = s.fma(FloatVector.broadcast(F, d), acc);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }
    /**
     * Input gradient: {@code dx[t][c] (= or, with accumulate = 1, +=) Σ_r dy[t][r] · W[r][c]} — the backward of
     * {@link #forward} with respect to x, through a frozen (possibly quantized) weight. Naive oracle and
     * device kernel, one work-item per input-gradient element.
     *
     * @param dx (T, cols)
     * @param dy (T, rows)
     * @param w  (rows, cols) as float
     */
    public static void backwardNaive(float[] dx, float[] dy, float[] w, int T, int rows, int cols, int accumulate) {
        backwardNaive(dx, dy, w, 0, T, rows, cols, accumulate);
    }

    /** {@link #backwardNaive(float[], float[], float[], int, int, int, int)} with W at {@code w[wOff]} (device kernel). */
    public static void backwardNaive(float[] dx, float[] dy, float[] w, int wOff, int T, int rows, int cols, int accumulate) {
        for (@Parallel int tc = 0; tc < T * cols; tc++) {
            int t = tc / cols;
            int c = tc % cols;
            float acc = accumulate == 1 ? dx[tc] : 0f;
            for (int r = 0; r < rows; r++) {
                acc += dy[t * rows + r] * w[wOff + r * cols + c];
            }
            dx[tc] = acc;
        }
    }

    /** {@link #backwardNaive} over F16 weights (device form, halves decoded with integer arithmetic). */
    public static void backwardNaive(float[] dx, float[] dy, short[] w, int wOff, int T, int rows, int cols, int accumulate) {
        for (@Parallel int tc = 0; tc < T * cols; tc++) {
            int t = tc / cols;
            int c = tc % cols;
            float acc = accumulate == 1 ? dx[tc] : 0f;
            for (int r = 0; r < rows; r++) {
                acc += dy[t * rows + r] * Dequant.finiteHalfToFloat(w[wOff + r * cols + c]);
            }
            dx[tc] = acc;
        }
    }

    /** {@link #backwardNaive} over Q8_0 weights as int8 quants + block scales (device form, see {@link #forwardNaive(float[], float[], byte[], float[], int, int, int)}). */
    public static void backwardNaive(float[] dx, float[] dy, byte[] q, float[] d, int qOff, int T, int rows, int cols, int accumulate) {
        int nb = cols / 32;
        int dOff = qOff / 32;
        for (@Parallel int tc = 0; tc < T * cols; tc++) {
            int t = tc / cols;
            int c = tc % cols;
            float acc = accumulate == 1 ? dx[tc] : 0f;
            for (int r = 0; r < rows; r++) {
                acc += dy[t * rows + r] * (d[dOff + r * nb + c / 32] * q[qOff + r * cols + c]);
            }
            dx[tc] = acc;
        }
    }

    /**
     * Fast twin of {@link #backwardNaive} (and of the k-bit naive backward, {@link Kbit#backwardNaive})
     * over a {@link Weight} of any supported type: the register-blocked product of {@link Gemm#backward}.
     * Each element is summed over r in order, so the result does not depend on the thread count.
     */
    public static void backward(float[] dx, float[] dy, Weight w, int T, boolean accumulate) {
        Gemm.backward(dx, dy, w, T, accumulate);
    }

    /**
     * Weight gradient of a float (trainable) matrix: {@code dw[r][c] += Σ_t dy[t][r] · x[t][c]}. Naive oracle
     * and device kernel, one work-item per weight.
     *
     * @param dw (rows, cols) accumulated
     * @param dy (T, rows)
     * @param x  (T, cols)
     */
    public static void backwardWeightNaive(float[] dw, float[] dy, float[] x, int T, int rows, int cols) {
        backwardWeightNaive(dw, 0, dy, x, T, rows, cols);
    }

    /** {@link #backwardWeightNaive(float[], float[], float[], int, int, int)} into {@code dw[dwOff..]} (device kernel). */
    public static void backwardWeightNaive(float[] dw, int dwOff, float[] dy, float[] x, int T, int rows, int cols) {
        for (@Parallel int rc = 0; rc < rows * cols; rc++) {
            int r = rc / cols;
            int c = rc % cols;
            float acc = 0f;
            for (int t = 0; t < T; t++) {
                acc += dy[t * rows + r] * x[t * cols + c];
            }
            dw[dwOff + rc] += acc;
        }
    }

    /** Fast twin of {@link #backwardWeightNaive}: parallel over rows, Vector-API axpys over columns. */
    public static void backwardWeight(float[] dw, float[] dy, float[] x, int T, int rows, int cols) {
        backwardWeight(dw, 0, dy, x, T, rows, cols);
    }

    /** {@link #backwardWeight(float[], float[], float[], int, int, int)} into {@code dw[dwOff..]} (a flat gradient buffer). */
    public static void backwardWeight(float[] dw, int dwOff, float[] dy, float[] x, int T, int rows, int cols) {
        Threads.parallelFor(rows, (long) T * cols * 2, (from, to) -> {
            int upper = F.loopBound(cols);
            for (int r = from; r < to; r++) {
                int o = dwOff + r * cols;
                for (int t = 0; t < T; t++) {
                    float d = dy[t * rows + r];
                    if (d == 0f) {
                        continue;
                    }
                    FloatVector vd = FloatVector.broadcast(F, d);
                    int xo = t * cols;
                    int c = 0;
                    for (; c < upper; c += F.length()) {
                        FloatVector.fromArray(F, x, xo + c).fma(vd, FloatVector.fromArray(F, dw, o + c)).intoArray(dw, o + c);
                    }
                    for (; c < cols; c++) {
                        dw[o + c] += d * x[xo + c];
                    }
                }
            }
        });
    }
}

package io.lora4j.tornado;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.Weight;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * A weight matrix in the plain arrays a device plan uploads once ({@code FIRST_EXECUTION}):
 * F32 as {@code float[]}, F16 as its fp16 bits in {@code short[]} (decoded in the kernel with
 * integer arithmetic: OpenCL 1.2 devices such as PoCL have no half type), Q8_0 as int8 quants
 * plus one float scale per 32-element block. Other types (BF16, Q4_0, the K-quants) are decoded
 * to F32 on the host, exactly, at 4 bytes per weight.
 * <p>
 * {@link #pack} puts several matrices (a block's projections) into shared buffers, one per device
 * layout, each matrix at an offset: fewer arrays for a graph to hold and hand on (TornadoVM bounds
 * the size of a graph). Glossary: rows = output width, cols = input width.
 */
final class DeviceMatrix {
    final String name;
    /** F32, F16 or Q8_0: the layout on the device. */
    final GgmlType type;
    final int rows;
    final int cols;
    private final float[] f32;
    private final short[] f16;
    private final byte[] q8;
    private final float[] scales;
    /** Where this matrix starts in its buffer (elements; for Q8_0 a multiple of 32). */
    private final int off;

    private DeviceMatrix(Weight w, GgmlType type, float[] f32, short[] f16, byte[] q8, float[] scales, int off) {
        this.name = w.name();
        this.type = type;
        this.rows = w.rows();
        this.cols = w.cols();
        this.f32 = f32;
        this.f16 = f16;
        this.q8 = q8;
        this.scales = scales;
        this.off = off;
    }

    /** The device layout of a weight's type. */
    static GgmlType layout(GgmlType t) {
        return t == GgmlType.F16 || t == GgmlType.Q8_0 ? t : GgmlType.F32;
    }

    static DeviceMatrix of(Weight w) {
        return pack(w)[0];
    }

    /** The weights in shared buffers, one per device layout, in order. */
    static DeviceMatrix[] pack(Weight... ws) {
        long[] total = new long[3];
        for (Weight w : ws) {
            total[slot(layout(w.type()))] += (long) w.rows() * w.cols();
        }
        float[] f32 = total[0] > 0 ? new float[Math.toIntExact(total[0])] : null;
        short[] f16 = total[1] > 0 ? new short[Math.toIntExact(total[1])] : null;
        byte[] q8 = total[2] > 0 ? new byte[Math.toIntExact(total[2])] : null;
        float[] scales = total[2] > 0 ? new float[Math.toIntExact(total[2] / 32)] : null;
        int[] at = new int[3];
        DeviceMatrix[] out = new DeviceMatrix[ws.length];
        for (int i = 0; i < ws.length; i++) {
            Weight w = ws[i];
            GgmlType lay = layout(w.type());
            int s = slot(lay);
            int o = at[s];
            fill(w, f32, f16, q8, scales, o);
            out[i] = new DeviceMatrix(w, lay, f32, f16, q8, scales, o);
            at[s] += w.rows() * w.cols();
        }
        return out;
    }

    private static int slot(GgmlType layout) {
        return layout == GgmlType.F32 ? 0 : layout == GgmlType.F16 ? 1 : 2;
    }

    private static void fill(Weight w, float[] f32, short[] f16, byte[] q8, float[] scales, int o) {
        int n = Math.multiplyExact(w.rows(), w.cols());
        MemorySegment seg = w.data();
        switch (w.type()) {
            case F32 -> MemorySegment.copy(seg, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, f32, o, n);
            case F16 -> {
                MemorySegment.copy(seg, ValueLayout.JAVA_SHORT_UNALIGNED, 0, f16, o, n);
                for (int i = 0; i < n; i++) {
                    if ((f16[o + i] & 0x7c00) == 0x7c00) {
                        throw new IllegalArgumentException("tensor " + w.name() + " has a non-finite F16 value at element " + i
                                + "; the device kernels decode finite halves only");
                    }
                }
            }
            case Q8_0 -> {
                for (int b = 0; b < n / 32; b++) {
                    long p = 34L * b;
                    scales[o / 32 + b] = Float.float16ToFloat(seg.get(ValueLayout.JAVA_SHORT_UNALIGNED, p));
                    MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, p + 2, q8, o + 32 * b, 32);
                }
            }
            default -> {
                float[] row = new float[w.cols()];
                for (int r = 0; r < w.rows(); r++) {
                    Dequant.row(w, r, row, 0);
                    System.arraycopy(row, 0, f32, o + r * w.cols(), w.cols());
                }
            }
        }
    }

    /** The distinct buffers behind {@code ms}, to upload once. */
    static Object[] buffers(DeviceMatrix... ms) {
        List<Object> out = new ArrayList<>();
        for (DeviceMatrix d : ms) {
            for (Object a : d.type == GgmlType.F32 ? new Object[]{d.f32} : d.type == GgmlType.F16 ? new Object[]{d.f16}
                    : new Object[]{d.q8, d.scales}) {
                if (out.stream().noneMatch(x -> x == a)) {
                    out.add(a);
                }
            }
        }
        return out.toArray();
    }

    /** Bytes of this matrix on the device. */
    long bytes() {
        long n = (long) rows * cols;
        return switch (type) {
            case F32 -> 4 * n;
            case F16 -> 2 * n;
            default -> n + n / 8;
        };
    }

    /** Adds the task {@code dx (T, cols) (= or +=) dy (T, rows) · W} (the input gradient) to {@code g}. */
    void backward(DevicePlan.Graph g, String id, float[] dx, float[] dy, int T, boolean accumulate) {
        int acc = accumulate ? 1 : 0;
        switch (type) {
            case F32 -> g.task(id, Matmul::backwardNaive, dx, dy, f32, off, T, rows, cols, acc);
            case F16 -> g.task(id, Matmul::backwardNaive, dx, dy, f16, off, T, rows, cols, acc);
            default -> g.task(id, Matmul::backwardNaive, dx, dy, q8, scales, off, T, rows, cols, acc);
        }
    }

    /** Adds the task {@code out (T, rows) = x (T, cols) · Wᵀ} over the first {@code n[0]} rows to {@code g}. */
    void matmul(DevicePlan.Graph g, String id, float[] out, float[] x, int[] n, int T) {
        switch (type) {
            case F32 -> g.task(id, Matmul::forwardNaive, out, x, f32, off, n, T, rows, cols);
            case F16 -> g.task(id, Matmul::forwardNaive, out, x, f16, off, n, T, rows, cols);
            default -> g.task(id, Matmul::forwardNaive, out, x, q8, scales, off, n, T, rows, cols);
        }
    }
}

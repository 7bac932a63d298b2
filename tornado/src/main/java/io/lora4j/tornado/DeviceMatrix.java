package io.lora4j.tornado;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.Weight;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;

/**
 * A weight matrix in the plain arrays a device plan uploads once ({@code FIRST_EXECUTION}):
 * F32 as {@code float[]}, F16 as its fp16 bits in {@code short[]} (decoded in the kernel with
 * integer arithmetic: OpenCL 1.2 devices such as PoCL have no half type), Q8_0 as int8 quants
 * plus one float scale per 32-element block. Other types (BF16, Q4_0, the K-quants) are decoded
 * to F32 on the host, exactly, at 4 bytes per weight. Glossary: rows = output width, cols = input width.
 */
final class DeviceMatrix {
    final String name;
    /** F32, F16 or Q8_0: the layout on the device. */
    final GgmlType type;
    /** The type of the weight this was made from. */
    final GgmlType sourceType;
    final int rows;
    final int cols;
    private final float[] f32;
    private final short[] f16;
    private final byte[] q8;
    private final float[] scales;

    private DeviceMatrix(Weight w, GgmlType type, float[] f32, short[] f16, byte[] q8, float[] scales) {
        this.name = w.name();
        this.sourceType = w.type();
        this.type = type;
        this.rows = w.rows();
        this.cols = w.cols();
        this.f32 = f32;
        this.f16 = f16;
        this.q8 = q8;
        this.scales = scales;
    }

    static DeviceMatrix of(Weight w) {
        int n = Math.multiplyExact(w.rows(), w.cols());
        MemorySegment seg = w.data();
        switch (w.type()) {
            case F32 -> {
                float[] f = new float[n];
                MemorySegment.copy(seg, ValueLayout.JAVA_FLOAT_UNALIGNED, 0, f, 0, n);
                return new DeviceMatrix(w, GgmlType.F32, f, null, null, null);
            }
            case F16 -> {
                short[] h = new short[n];
                MemorySegment.copy(seg, ValueLayout.JAVA_SHORT_UNALIGNED, 0, h, 0, n);
                for (int i = 0; i < n; i++) {
                    if ((h[i] & 0x7c00) == 0x7c00) {
                        throw new IllegalArgumentException("tensor " + w.name() + " has a non-finite F16 value at element " + i
                                + "; the device kernels decode finite halves only");
                    }
                }
                return new DeviceMatrix(w, GgmlType.F16, null, h, null, null);
            }
            case Q8_0 -> {
                byte[] q = new byte[n];
                float[] d = new float[n / 32];
                for (int b = 0; b < d.length; b++) {
                    long p = 34L * b;
                    d[b] = Float.float16ToFloat(seg.get(ValueLayout.JAVA_SHORT_UNALIGNED, p));
                    MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, p + 2, q, 32 * b, 32);
                }
                return new DeviceMatrix(w, GgmlType.Q8_0, null, null, q, d);
            }
            default -> {
                float[] f = new float[n];
                for (int r = 0; r < w.rows(); r++) {
                    Dequant.row(w, r, f, r * w.cols());
                }
                return new DeviceMatrix(w, GgmlType.F32, f, null, null, null);
            }
        }
    }

    /** The arrays to upload. */
    Object[] arrays() {
        return switch (type) {
            case F32 -> new Object[]{f32};
            case F16 -> new Object[]{f16};
            default -> new Object[]{q8, scales};
        };
    }

    /** Bytes on the device. */
    long bytes() {
        return switch (type) {
            case F32 -> 4L * f32.length;
            case F16 -> 2L * f16.length;
            default -> q8.length + 4L * scales.length;
        };
    }

    /** Adds the task {@code dx (T, cols) (= or +=) dy (T, rows) · W} (the input gradient) to {@code g}. */
    void backward(DevicePlan.Graph g, String id, float[] dx, float[] dy, int T, boolean accumulate) {
        switch (type) {
            case F32 -> g.task(id, Matmul::backwardNaive, dx, dy, f32, T, rows, cols, accumulate ? 1 : 0);
            case F16 -> g.task(id, Matmul::backwardNaive, dx, dy, f16, T, rows, cols, accumulate ? 1 : 0);
            default -> g.task(id, Matmul::backwardNaive, dx, dy, q8, scales, T, rows, cols, accumulate ? 1 : 0);
        }
    }

    /** Adds the task {@code out (T, rows) = x (T, cols) · Wᵀ} to {@code g}. */
    void matmul(DevicePlan.Graph g, String id, float[] out, float[] x, int T) {
        switch (type) {
            case F32 -> g.task(id, Matmul::forwardNaive, out, x, f32, T, rows, cols);
            case F16 -> g.task(id, Matmul::forwardNaive, out, x, f16, T, rows, cols);
            default -> g.task(id, Matmul::forwardNaive, out, x, q8, scales, T, rows, cols);
        }
    }
}

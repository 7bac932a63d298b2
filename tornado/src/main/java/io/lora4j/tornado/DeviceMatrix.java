package io.lora4j.tornado;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Weight;
import io.lora4j.tornado.DevicePlan.Grid;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.List;

/**
 * A weight matrix in the plain arrays a device plan uploads once ({@code FIRST_EXECUTION}):
 * F32 as {@code float[]}, F16 as its fp16 bits in {@code short[]} (decoded in the kernel with
 * integer arithmetic: OpenCL 1.2 devices such as PoCL have no half type), Q8_0 as int8 quants
 * plus one float scale per 32-element block, and the k-bit types of a base loaded with
 * {@code --quantize} (INT8, INT8_ZP, NF4/FP4, with or without double quantization) as they are,
 * in {@link Kbit}'s device layout (their bytes, their statistics, the constant code tables): 1 or
 * ½ byte per weight plus the scales, decoded in the kernels. Other types (BF16, Q4_0, the
 * K-quants) are decoded to F32 on the host, exactly, at 4 bytes per weight.
 * <p>
 * {@link #pack} puts several matrices (a block's projections) into shared buffers, one per device
 * layout, each matrix at an offset: fewer arrays for a graph to hold and hand on (TornadoVM bounds
 * the size of a graph). Products run as {@link GpuMatmul}'s work-group kernels. Glossary: rows =
 * output width, cols = input width.
 */
final class DeviceMatrix {
    final String name;
    /** F32, F16, Q8_0 or a k-bit type: the layout on the device. */
    final GgmlType type;
    final int rows;
    final int cols;
    /** The arrays {@link GpuMatmul}'s kernels take (see there); those the layout does not use are one-element placeholders. */
    private final float[] wf;
    private final short[] wh;
    private final byte[] wb;
    private final float[] tables;
    /** Where this matrix starts in its buffer (elements; for Q8_0 a multiple of 32; k-bit: bytes). */
    private final int off;
    /** k-bit: where its scale codes (*_DQ) and its statistics start. */
    private final int qabsOff, statsOff;

    private DeviceMatrix(Weight w, GgmlType type, Buffers b, int off, int qabsOff, int statsOff) {
        this(w.name(), type, w.rows(), w.cols(), b, off, qabsOff, statsOff);
    }

    private DeviceMatrix(String name, GgmlType type, int rows, int cols, Buffers b, int off, int qabsOff, int statsOff) {
        this.name = name;
        this.type = type;
        this.rows = rows;
        this.cols = cols;
        this.wf = switch (type) {
            case F32 -> b.f32;
            case F16 -> b.placeholderF();
            case Q8_0 -> b.q8Scales;
            default -> b.kStats;
        };
        this.wh = type == GgmlType.F16 ? b.f16 : b.placeholderH();
        this.wb = type == GgmlType.Q8_0 ? b.q8 : kbit(type) ? b.kq : b.placeholderB();
        this.tables = kbit(type) ? b.tables : b.placeholderT();
        this.off = off;
        this.qabsOff = qabsOff;
        this.statsOff = statsOff;
    }

    /** An F32 matrix at {@code p[off..]} of an array the plan already holds (a trainable lm_head in the parameter buffer). */
    static DeviceMatrix inParams(String name, float[] p, int off, int rows, int cols) {
        Buffers b = new Buffers();
        b.f32 = p;
        return new DeviceMatrix(name, GgmlType.F32, rows, cols, b, off, 0, 0);
    }

    /** The shared buffers of one pack, one per layout (null where no matrix has it), and its placeholders. */
    private static final class Buffers {
        float[] f32, q8Scales, kStats, tables;
        short[] f16;
        byte[] q8, kq;
        private float[] phF, phT;
        private short[] phH;
        private byte[] phB;

        float[] placeholderF() {
            return phF == null ? phF = new float[1] : phF;
        }

        float[] placeholderT() {
            return phT == null ? phT = new float[1] : phT;
        }

        short[] placeholderH() {
            return phH == null ? phH = new short[1] : phH;
        }

        byte[] placeholderB() {
            return phB == null ? phB = new byte[1] : phB;
        }
    }

    /** The device layout of a weight's type. */
    static GgmlType layout(GgmlType t) {
        return t == GgmlType.F16 || t == GgmlType.Q8_0 || kbit(t) ? t : GgmlType.F32;
    }

    private static boolean kbit(GgmlType t) {
        return !t.ggml;
    }

    static DeviceMatrix of(Weight w) {
        return pack(w)[0];
    }

    /** The weights in shared buffers, one per device layout, in order. */
    static DeviceMatrix[] pack(Weight... ws) {
        long f32 = 0, f16 = 0, q8 = 0, kq = 0, kStats = 0;
        for (Weight w : ws) {
            long n = (long) w.rows() * w.cols();
            GgmlType t = layout(w.type());
            switch (t) {
                case F32 -> f32 += n;
                case F16 -> f16 += n;
                case Q8_0 -> q8 += n;
                default -> {
                    kq += Kbit.deviceBytes(t, w.rows(), w.cols());
                    kStats += Kbit.deviceFloats(t, w.rows(), w.cols());
                }
            }
        }
        Buffers b = new Buffers();
        b.f32 = f32 > 0 ? new float[Math.toIntExact(f32)] : null;
        b.f16 = f16 > 0 ? new short[Math.toIntExact(f16)] : null;
        b.q8 = q8 > 0 ? new byte[Math.toIntExact(q8)] : null;
        b.q8Scales = q8 > 0 ? new float[Math.toIntExact(q8 / 32)] : null;
        b.kq = kq > 0 ? new byte[Math.toIntExact(kq)] : null;
        b.kStats = kq > 0 ? new float[Math.toIntExact(kStats)] : null;
        b.tables = kq > 0 ? Kbit.deviceTables() : null;
        int atF32 = 0, atF16 = 0, atQ8 = 0, atK = 0, atStats = 0;
        DeviceMatrix[] out = new DeviceMatrix[ws.length];
        for (int i = 0; i < ws.length; i++) {
            Weight w = ws[i];
            GgmlType lay = layout(w.type());
            int n = Math.multiplyExact(w.rows(), w.cols());
            switch (lay) {
                case F32 -> {
                    fillF32(w, b.f32, atF32);
                    out[i] = new DeviceMatrix(w, lay, b, atF32, 0, 0);
                    atF32 += n;
                }
                case F16 -> {
                    fillF16(w, b.f16, atF16);
                    out[i] = new DeviceMatrix(w, lay, b, atF16, 0, 0);
                    atF16 += n;
                }
                case Q8_0 -> {
                    fillQ8(w, b.q8, b.q8Scales, atQ8);
                    out[i] = new DeviceMatrix(w, lay, b, atQ8, 0, 0);
                    atQ8 += n;
                }
                default -> {
                    Kbit.toDevice(w, b.kq, atK, b.kStats, atStats);
                    int qabs = atK + (int) Kbit.valueBytes(lay, n); // a *_DQ matrix's scale codes follow its values
                    out[i] = new DeviceMatrix(w, lay, b, atK, qabs, atStats);
                    atK += (int) Kbit.deviceBytes(lay, w.rows(), w.cols());
                    atStats += (int) Kbit.deviceFloats(lay, w.rows(), w.cols());
                }
            }
        }
        return out;
    }

    private static void fillF32(Weight w, float[] f32, int o) {
        int n = w.rows() * w.cols();
        if (w.type() == GgmlType.F32) {
            MemorySegment.copy(w.data(), ValueLayout.JAVA_FLOAT_UNALIGNED, 0, f32, o, n);
            return;
        }
        float[] row = new float[w.cols()];
        for (int r = 0; r < w.rows(); r++) {
            Dequant.row(w, r, row, 0);
            System.arraycopy(row, 0, f32, o + r * w.cols(), w.cols());
        }
    }

    private static void fillF16(Weight w, short[] f16, int o) {
        int n = w.rows() * w.cols();
        MemorySegment.copy(w.data(), ValueLayout.JAVA_SHORT_UNALIGNED, 0, f16, o, n);
        for (int i = 0; i < n; i++) {
            if ((f16[o + i] & 0x7c00) == 0x7c00) {
                throw new IllegalArgumentException("tensor " + w.name() + " has a non-finite F16 value at element " + i
                        + "; the device kernels decode finite halves only");
            }
        }
    }

    private static void fillQ8(Weight w, byte[] q8, float[] scales, int o) {
        MemorySegment seg = w.data();
        int n = w.rows() * w.cols();
        for (int b = 0; b < n / 32; b++) {
            long p = 34L * b;
            scales[o / 32 + b] = Float.float16ToFloat(seg.get(ValueLayout.JAVA_SHORT_UNALIGNED, p));
            MemorySegment.copy(seg, ValueLayout.JAVA_BYTE, p + 2, q8, o + 32 * b, 32);
        }
    }

    /** The distinct buffers behind {@code ms} (placeholders included: the kernels take them), to upload once. */
    static Object[] buffers(DeviceMatrix... ms) {
        List<Object> out = new ArrayList<>();
        for (DeviceMatrix d : ms) {
            for (Object a : new Object[]{d.wf, d.wh, d.wb, d.tables}) {
                if (out.stream().noneMatch(x -> x == a)) {
                    out.add(a);
                }
            }
        }
        return out.toArray();
    }

    /** The {@link GpuMatmul} layout code of this matrix. */
    private int layout() {
        return switch (type) {
            case F32 -> GpuMatmul.F32;
            case F16 -> GpuMatmul.F16;
            case Q8_0 -> GpuMatmul.Q8_0;
            default -> GpuMatmul.KBIT + Kbit.deviceKind(type);
        };
    }

    /**
     * Adds the task {@code dx (T, cols) (= or +=) dy (T, rows) · W} (the input gradient) to {@code g}: a
     * tiled GEMM ({@link GpuMatmul#backward}).
     */
    void backward(DevicePlan.Graph g, String id, float[] dx, float[] dy, int T, boolean accumulate) {
        Grid grid = Grid.of(1, 1, 1, 1);
        GpuMatmul.backwardGrid(grid, T, cols);
        g.kernel(id, grid, GpuMatmul::backward, GpuMatmul::backward, dx, dy, wf, wh, wb, tables, layout(), off, qabsOff, statsOff, T,
                rows, cols, accumulate ? 1 : 0);
    }

    /**
     * Adds the task {@code out (T, rows) = x (T, cols) · Wᵀ} over the first {@code n[0]} rows to {@code g}:
     * a GEMV for one live row, a tiled GEMM for more ({@link GpuMatmul#forward}; its grid follows the live rows).
     */
    void matmul(DevicePlan.Graph g, String id, float[] out, float[] x, int[] n, int T) {
        Grid grid = Grid.byLiveRows(2, T, (gr, live) -> GpuMatmul.forwardGrid(gr, live, rows));
        g.kernel(id, grid, GpuMatmul::forward, GpuMatmul::forward, out, x, wf, wh, wb, tables, layout(), off, qabsOff, statsOff, n, T,
                rows, cols);
    }
}

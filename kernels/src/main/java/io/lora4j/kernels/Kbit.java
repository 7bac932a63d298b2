package io.lora4j.kernels;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * lora4j's k-bit formats of a frozen base matrix, quantized on load (bitsandbytes' algorithms:
 * {@link Int8}, {@link Blockwise4}, {@link Blockwise8}), and their byte layout in one segment of a
 * {@link Weight}. Blocks run over the flattened row-major matrix (n = rows·cols elements), so
 * a block may straddle two rows; "pad" aligns the float section to 4 bytes.
 * <pre>
 * INT8     i8 q[n]                    pad  f32 rowmax[rows]
 * INT8_ZP  u8 q[n]                    pad  f32 (d, z)[ceil(n/64)]
 * NF4, FP4 u8 packed[ceil(n/2)]       pad  f32 absmax[nb = ceil(n/64)]
 * *_DQ     u8 packed[ceil(n/2)]  u8 qabsmax[nb]  pad  f32 absmax2[ceil(nb/256)]  f32 offset
 * </pre>
 * (packed: element 2k in the high nibble of byte k, 2k+1 in the low one; the double-quantized
 * scale of block b is DYNAMIC[qabsmax[b]]·absmax2[b/256] + offset.)
 */
public final class Kbit {
    /** {@link GgmlType#blockSize} of INT8: its blocks are rows. */
    static final int ROW = 0;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Kbit() {
    }

    static boolean fourBit(GgmlType t) {
        return t == GgmlType.NF4 || t == GgmlType.NF4_DQ || t == GgmlType.FP4 || t == GgmlType.FP4_DQ;
    }

    static boolean doubleQuant(GgmlType t) {
        return t == GgmlType.NF4_DQ || t == GgmlType.FP4_DQ;
    }

    private static long blocks(long n, int size) {
        return (n + size - 1) / size;
    }

    private static long align4(long x) {
        return (x + 3) & ~3L;
    }

    /** Bytes of the quantized values (before the statistics). */
    public static long valueBytes(GgmlType t, long n) {
        return fourBit(t) ? (n + 1) / 2 : n;
    }

    /** Where the statistics start: INT8 row absmax, INT8_ZP pairs, NF4/FP4 absmax or the *_DQ qabsmax bytes. */
    static long statsOffset(GgmlType t, long n) {
        long v = valueBytes(t, n);
        return doubleQuant(t) ? v : align4(v);
    }

    /** *_DQ: the fp32 absmax2 of each 256 block of the 4-bit absmax constants. */
    static long absmax2Offset(long n) {
        return align4((n + 1) / 2 + blocks(n, Blockwise4.BLOCK));
    }

    /** *_DQ: the mean subtracted before the 8-bit quantization. */
    static long offsetOffset(long n) {
        return absmax2Offset(n) + 4 * blocks(blocks(n, Blockwise4.BLOCK), Blockwise8.DQ_BLOCK);
    }

    static long tensorBytes(GgmlType t, long rows, long cols) {
        long n = rows * cols;
        return switch (t) {
            case INT8 -> statsOffset(t, n) + 4 * rows;
            case INT8_ZP -> statsOffset(t, n) + 8 * blocks(n, Int8.ZP_BLOCK);
            case NF4, FP4 -> statsOffset(t, n) + 4 * blocks(n, Blockwise4.BLOCK);
            case NF4_DQ, FP4_DQ -> offsetOffset(n) + 4;
            default -> throw new IllegalArgumentException(t + " is not a k-bit type");
        };
    }

    /**
     * Quantizes the float matrix {@code w} (rows, cols) to {@code type}, multi-threaded over blocks
     * (rows for INT8), into a new off-heap segment (freed with the Weight).
     */
    public static Weight quantize(GgmlType type, String name, float[] w, int rows, int cols) {
        int n = Math.multiplyExact(rows, cols);
        if (w.length < n) {
            throw new IllegalArgumentException(name + ": " + w.length + " values for " + rows + "x" + cols);
        }
        MemorySegment seg = Arena.ofAuto().allocate(type.tensorBytes(rows, cols), 64);
        switch (type) {
            case INT8 -> {
                byte[] q = new byte[n];
                float[] rowmax = new float[rows];
                Threads.parallelFor(rows, 3L * cols, (a, b) -> Int8.quantizeRows(q, rowmax, w, cols, a, b));
                put(seg, type, n, q, rowmax);
            }
            case INT8_ZP -> {
                byte[] q = new byte[n];
                int nb = (int) blocks(n, Int8.ZP_BLOCK);
                float[] stats = new float[2 * nb];
                Threads.parallelFor(nb, 4L * Int8.ZP_BLOCK, (a, b) -> Int8.quantizeZeroPoint(q, stats, w, n, a, b));
                put(seg, type, n, q, stats);
            }
            case NF4, FP4, NF4_DQ, FP4_DQ -> {
                boolean nf4 = type == GgmlType.NF4 || type == GgmlType.NF4_DQ;
                byte[] packed = new byte[(n + 1) / 2];
                int nb = (int) blocks(n, Blockwise4.BLOCK);
                float[] absmax = new float[nb];
                Threads.parallelFor(nb, 8L * Blockwise4.BLOCK, (a, b) -> Blockwise4.quantize(packed, absmax, w, n, nf4, a, b));
                if (!doubleQuant(type)) {
                    put(seg, type, n, packed, absmax);
                } else {
                    MemorySegment.copy(packed, 0, seg, ValueLayout.JAVA_BYTE, 0, packed.length);
                    doubleQuantize(seg, n, absmax);
                }
            }
            default -> throw new IllegalArgumentException(name + ": " + type + " is not a k-bit type (int8, int8-zp, nf4, fp4)");
        }
        return new Weight(name, type, seg, rows, cols);
    }

    private static void put(MemorySegment seg, GgmlType type, long n, byte[] values, float[] stats) {
        MemorySegment.copy(values, 0, seg, ValueLayout.JAVA_BYTE, 0, values.length);
        MemorySegment.copy(stats, 0, seg, FLOAT, statsOffset(type, n), stats.length);
    }

    /**
     * QLoRA's double quantization ({@code compress_statistics}): offset = mean(absmax) (summed in
     * double, rounded to float), then absmax − offset quantized blockwise (256) with the dynamic map.
     */
    private static void doubleQuantize(MemorySegment seg, long n, float[] absmax) {
        int nb = absmax.length;
        double sum = 0;
        for (float a : absmax) {
            sum += a;
        }
        float offset = (float) (sum / nb);
        float[] centred = new float[nb];
        for (int b = 0; b < nb; b++) {
            centred[b] = absmax[b] - offset;
        }
        byte[] q = new byte[nb];
        int n2 = (int) blocks(nb, Blockwise8.DQ_BLOCK);
        float[] absmax2 = new float[n2];
        Blockwise8.quantize(q, absmax2, centred, Blockwise8.DYNAMIC, nb, Blockwise8.DQ_BLOCK, 0, n2);
        MemorySegment.copy(q, 0, seg, ValueLayout.JAVA_BYTE, (n + 1) / 2, nb);
        MemorySegment.copy(absmax2, 0, seg, FLOAT, absmax2Offset(n), n2);
        seg.set(FLOAT, offsetOffset(n), offset);
    }

    // ---- the naive fused dequantize-and-multiply (TornadoVM's kernel subset) ----

    /** What the naive kernels decode: {@link GgmlType#INT8}, {@link GgmlType#INT8_ZP}, or a 4-bit type with its code table. */
    public static final int INT8 = 0, INT8_ZP = 1, FOUR_BIT = 2;

    /** The naive kernels' {@code kind} for a k-bit type. */
    public static int kind(GgmlType t) {
        return fourBit(t) ? FOUR_BIT : t == GgmlType.INT8_ZP ? INT8_ZP : t == GgmlType.INT8 ? INT8 : -1;
    }

    /**
     * Element i = r·cols + c of the flattened matrix from its pieces ({@link #values}, {@link #stats}):
     * q·rowmax·(1/127), (q + z)·d of its block of 64, or code[nibble]·absmax of its block of 64.
     */
    static float weight(int kind, byte[] q, float[] stats, float[] code, int cols, int i) {
        if (kind == FOUR_BIT) {
            return Blockwise4.weight(q, stats, code, i);
        }
        return kind == INT8_ZP ? Int8.zpWeight(q, stats, i) : Int8.rowWeight(q, stats, cols, i);
    }

    /**
     * Naive fused dequantize-and-multiply: {@code out[t][r] = Σ_c w[r·cols + c]·x[t][c]}, each weight
     * decoded where it is used.
     *
     * @param out   (T, rows)
     * @param x     (T, cols)
     * @param q     the quantized values ({@link #values})
     * @param stats the statistics ({@link #stats})
     * @param code  (16) the 4-bit code table ({@link #code}); any array for the 8-bit kinds
     */
    public static void forwardNaive(float[] out, float[] x, int kind, byte[] q, float[] stats, float[] code, int T, int rows, int cols) {
        for (@Parallel int r = 0; r < rows; r++) {
            for (int t = 0; t < T; t++) {
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += weight(kind, q, stats, code, cols, r * cols + c) * x[t * cols + c];
                }
                out[t * rows + r] = acc;
            }
        }
    }

    /**
     * Naive input gradient through the frozen k-bit weight: {@code dx[t][c] (= or +=) Σ_r dy[t][r]·w[r·cols + c]}.
     *
     * @param dx (T, cols)
     * @param dy (T, rows)
     */
    public static void backwardNaive(float[] dx, float[] dy, int kind, byte[] q, float[] stats, float[] code, int T, int rows, int cols,
                                     boolean accumulate) {
        for (@Parallel int t = 0; t < T; t++) {
            for (int c = 0; c < cols; c++) {
                float acc = accumulate ? dx[t * cols + c] : 0f;
                for (int r = 0; r < rows; r++) {
                    acc += dy[t * rows + r] * weight(kind, q, stats, code, cols, r * cols + c);
                }
                dx[t * cols + c] = acc;
            }
        }
    }

    // ---- the device layout: k-bit matrices kept as they are in shared buffers (what a device plan uploads) ----

    /** Device kinds (a kernel argument): the k-bit type of one matrix in the shared buffers. */
    public static final int DEV_INT8 = 0, DEV_INT8_ZP = 1, DEV_NF4 = 2, DEV_FP4 = 3, DEV_NF4_DQ = 4, DEV_FP4_DQ = 5;
    /** Where the device tables hold the NF4 code, the FP4 code and the dynamic map of the double quantization. */
    static final int TABLE_NF4 = 0, TABLE_FP4 = 16, TABLE_DYNAMIC = 32;

    /** The device kind of a k-bit type. */
    public static int deviceKind(GgmlType t) {
        return switch (t) {
            case INT8 -> DEV_INT8;
            case INT8_ZP -> DEV_INT8_ZP;
            case NF4 -> DEV_NF4;
            case FP4 -> DEV_FP4;
            case NF4_DQ -> DEV_NF4_DQ;
            case FP4_DQ -> DEV_FP4_DQ;
            default -> throw new IllegalArgumentException(t + " is not a k-bit type");
        };
    }

    /** The constant tables every device k-bit kernel takes: NF4 code (16), FP4 code (16), dynamic map (256). */
    public static float[] deviceTables() {
        float[] t = new float[TABLE_DYNAMIC + Blockwise8.DYNAMIC.length];
        System.arraycopy(Blockwise4.NF4, 0, t, TABLE_NF4, 16);
        System.arraycopy(Blockwise4.FP4, 0, t, TABLE_FP4, 16);
        System.arraycopy(Blockwise8.DYNAMIC, 0, t, TABLE_DYNAMIC, Blockwise8.DYNAMIC.length);
        return t;
    }

    /**
     * Bytes of a matrix in the device's byte buffer: its quantized values (INT8 / INT8_ZP bytes or packed
     * nibbles), then for *_DQ the 8-bit codes of its block scales (unsigned bytes stored as u − 128).
     */
    public static long deviceBytes(GgmlType t, long rows, long cols) {
        long n = rows * cols;
        return valueBytes(t, n) + (doubleQuant(t) ? blocks(n, Blockwise4.BLOCK) : 0);
    }

    /**
     * Floats of a matrix in the device's float buffer: INT8 row absmax, INT8_ZP (d, z) pairs, 4-bit absmax
     * per block, or for *_DQ the offset followed by the absmax of each 256 block scales.
     */
    public static long deviceFloats(GgmlType t, long rows, long cols) {
        long n = rows * cols;
        return switch (t) {
            case INT8 -> rows;
            case INT8_ZP -> 2 * blocks(n, Int8.ZP_BLOCK);
            case NF4, FP4 -> blocks(n, Blockwise4.BLOCK);
            case NF4_DQ, FP4_DQ -> 1 + blocks(blocks(n, Blockwise4.BLOCK), Blockwise8.DQ_BLOCK);
            default -> throw new IllegalArgumentException(t + " is not a k-bit type");
        };
    }

    /** Copies w's pieces, as they are (no decoding), into the device buffers at {@code q[qOff..]} and {@code stats[sOff..]}. */
    public static void toDevice(Weight w, byte[] q, int qOff, float[] stats, int sOff) {
        requireKbit(w);
        GgmlType t = w.type();
        long n = (long) w.rows() * w.cols();
        int v = (int) valueBytes(t, n);
        MemorySegment.copy(w.data(), ValueLayout.JAVA_BYTE, 0, q, qOff, v);
        if (t == GgmlType.INT8_ZP) {
            flipTopBits(q, qOff, v);
        }
        if (doubleQuant(t)) {
            int nb = (int) blocks(n, Blockwise4.BLOCK);
            MemorySegment.copy(w.data(), ValueLayout.JAVA_BYTE, statsOffset(t, n), q, qOff + v, nb);
            flipTopBits(q, qOff + v, nb);
            float[] a2 = absmax2(w);
            stats[sOff] = offset(w);
            System.arraycopy(a2, 0, stats, sOff + 1, a2.length);
        } else {
            int count = (int) deviceFloats(t, w.rows(), w.cols());
            MemorySegment.copy(w.data(), FLOAT, statsOffset(t, n), stats, sOff, count);
        }
    }

    /** Unsigned bytes u stored as u − 128 (their top bit flipped): the kernels read u as b + 128 (see {@link #deviceWeight}). */
    private static void flipTopBits(byte[] a, int from, int n) {
        for (int i = from; i < from + n; i++) {
            a[i] ^= (byte) 0x80;
        }
    }

    /**
     * Element i of a matrix in the device buffers (values at byte {@code qOff}, *_DQ scale codes at byte
     * {@code qabsOff}, statistics at {@code sOff}): the same arithmetic as {@link #weight} (for *_DQ the
     * block scale is decoded here, {@code dynamic[code]·absmax2 + offset}, as {@link #stats} does on the
     * host). The unsigned bytes (INT8_ZP values, *_DQ scale codes) are stored as u − 128 and read as
     * b + 128, added in float: TornadoVM's OpenCL code generator keeps arithmetic on a byte in an 8-bit
     * {@code char} (so {@code b + 128} wraps) and turns {@code if (b < 0) b += 256} into a zero-extension
     * it emits wrongly (an index beyond the array).
     */
    public static float deviceWeight(int kind, byte[] q, float[] stats, float[] tables, int qOff, int qabsOff, int sOff, int cols, int i) {
        if (kind == DEV_INT8) {
            return q[qOff + i] * stats[sOff + i / cols] * Int8.INV127;
        }
        if (kind == DEV_INT8_ZP) {
            float v = q[qOff + i] + 128f;
            int b = i / Int8.ZP_BLOCK;
            return (v + stats[sOff + 2 * b + 1]) * stats[sOff + 2 * b];
        }
        int packed = q[qOff + (i >> 1)];
        int nibble = (i & 1) == 0 ? (packed >> 4) & 15 : packed & 15;
        int b = i / Blockwise4.BLOCK;
        float absmax;
        if (kind == DEV_NF4 || kind == DEV_FP4) {
            absmax = stats[sOff + b];
        } else {
            int k = (int) (q[qabsOff + b] + 128f);
            absmax = tables[TABLE_DYNAMIC + k] * stats[sOff + 1 + b / Blockwise8.DQ_BLOCK] + stats[sOff];
        }
        int code = kind == DEV_FP4 || kind == DEV_FP4_DQ ? TABLE_FP4 : TABLE_NF4;
        return tables[code + nibble] * absmax;
    }

    /**
     * Naive device kernel over a matrix in the device buffers: {@code out[t][r] = Σ_c w[r·cols + c]·x[t][c]}
     * for the first {@code n[0]} of T rows (the rest left as they were), one work-item per output element.
     */
    public static void forwardNaive(float[] out, float[] x, byte[] q, float[] stats, float[] tables, int kind, int qOff, int qabsOff,
                                    int sOff, int[] n, int T, int rows, int cols) {
        for (@Parallel int tr = 0; tr < T * rows; tr++) {
            int t = tr / rows;
            int r = tr % rows;
            if (t < n[0]) {
                float acc = 0f;
                for (int c = 0; c < cols; c++) {
                    acc += deviceWeight(kind, q, stats, tables, qOff, qabsOff, sOff, cols, r * cols + c) * x[t * cols + c];
                }
                out[tr] = acc;
            }
        }
    }

    /** Naive device kernel of the input gradient {@code dx[t][c] (= or +=, accumulate 1) Σ_r dy[t][r]·w[r·cols + c]}. */
    public static void backwardNaive(float[] dx, float[] dy, byte[] q, float[] stats, float[] tables, int kind, int qOff, int qabsOff,
                                     int sOff, int T, int rows, int cols, int accumulate) {
        for (@Parallel int tc = 0; tc < T * cols; tc++) {
            int t = tc / cols;
            int c = tc % cols;
            float acc = accumulate == 1 ? dx[tc] : 0f;
            for (int r = 0; r < rows; r++) {
                acc += dy[t * rows + r] * deviceWeight(kind, q, stats, tables, qOff, qabsOff, sOff, cols, r * cols + c);
            }
            dx[tc] = acc;
        }
    }

    // ---- the pieces as plain arrays (for the naive kernels, tests and device transfers) ----

    /** The quantized values: INT8 / INT8_ZP bytes or the packed nibbles. */
    public static byte[] values(Weight w) {
        requireKbit(w);
        long n = (long) w.rows() * w.cols();
        return w.data().asSlice(0, valueBytes(w.type(), n)).toArray(ValueLayout.JAVA_BYTE);
    }

    /**
     * The statistics as the naive kernels take them: INT8 row absmax, INT8_ZP (d, z) pairs, 4-bit
     * absmax per block (decoded from the double quantization for *_DQ, as bitsandbytes'
     * {@code dequantize_blockwise} does before {@code dequantize_4bit}).
     */
    public static float[] stats(Weight w) {
        requireKbit(w);
        long n = (long) w.rows() * w.cols();
        GgmlType t = w.type();
        if (doubleQuant(t)) {
            int nb = (int) blocks(n, Blockwise4.BLOCK);
            float[] out = new float[nb];
            Blockwise8.dequantize(out, qabsmax(w), absmax2(w), Blockwise8.DYNAMIC, offset(w), nb, Blockwise8.DQ_BLOCK);
            return out;
        }
        long count = t == GgmlType.INT8 ? w.rows() : t == GgmlType.INT8_ZP ? 2 * blocks(n, Int8.ZP_BLOCK) : blocks(n, Blockwise4.BLOCK);
        return w.data().asSlice(statsOffset(t, n), 4 * count).toArray(FLOAT);
    }

    /** *_DQ: the 8-bit codes of the centred absmax constants. */
    public static byte[] qabsmax(Weight w) {
        requireDq(w);
        long n = (long) w.rows() * w.cols();
        return w.data().asSlice(statsOffset(w.type(), n), blocks(n, Blockwise4.BLOCK)).toArray(ValueLayout.JAVA_BYTE);
    }

    /** *_DQ: absmax of each 256 block of the centred constants. */
    public static float[] absmax2(Weight w) {
        requireDq(w);
        long n = (long) w.rows() * w.cols();
        return w.data().asSlice(absmax2Offset(n), 4 * blocks(blocks(n, Blockwise4.BLOCK), Blockwise8.DQ_BLOCK)).toArray(FLOAT);
    }

    /** *_DQ: the mean that was subtracted. */
    public static float offset(Weight w) {
        requireDq(w);
        return w.data().get(FLOAT, offsetOffset((long) w.rows() * w.cols()));
    }

    /** The 16-value code table of a 4-bit type (a one-element placeholder for the 8-bit ones, which have none). */
    public static float[] code(GgmlType t) {
        requireKbitType(t);
        return fourBit(t) ? Blockwise4.table(t).clone() : new float[1];
    }

    private static void requireKbit(Weight w) {
        if (w.type().ggml) {
            throw new IllegalArgumentException(w.name() + " is " + w.type() + ", not a k-bit weight");
        }
    }

    private static void requireKbitType(GgmlType t) {
        if (t.ggml) {
            throw new IllegalArgumentException(t + " is not a k-bit type");
        }
    }

    private static void requireDq(Weight w) {
        if (!doubleQuant(w.type())) {
            throw new IllegalArgumentException(w.name() + " is " + w.type() + ", not double-quantized");
        }
    }

    // ---- dispatch of the fast twins (Matmul, Dequant) ----

    /** Whether row products of w can run fused (decode and dot in registers, no scratch). */
    static boolean fusedRows(Weight w) {
        return fourBit(w.type()) ? Blockwise4.vectorRows(w) : Int8.vectorRows(w);
    }

    /** The input as the fused row products read it: deinterleaved for the 4-bit types, else x itself. */
    static float[] fusedInput(Weight w, float[] x, float[] scratch) {
        if (!fourBit(w.type())) {
            return x;
        }
        Blockwise4.deinterleave(scratch, x, w.cols());
        return scratch;
    }

    /** Row r of w dotted with the {@link #fusedInput}. */
    static float dot(Weight w, int r, float[] in) {
        return fourBit(w.type()) ? Blockwise4.dot(w, r, in) : Int8.dot(w, r, in);
    }

    /** Elements [first, first + n) of the flattened matrix decoded into dst[off..]. */
    static void decode(Weight w, long first, float[] dst, int off, int n) {
        if (fourBit(w.type())) {
            Blockwise4.decode(w, first, dst, off, n);
        } else {
            Int8.decode(w, first, dst, off, n);
        }
    }
}

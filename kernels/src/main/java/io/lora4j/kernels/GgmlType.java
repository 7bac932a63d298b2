package io.lora4j.kernels;

/**
 * Tensor element types, numbered as in ggml ({@code enum ggml_type}). A type stores
 * {@link #blockSize} elements in {@link #typeSize} bytes; plain types have blockSize 1.
 * <p>
 * The last six are not ggml's: they are lora4j's load-time k-bit formats of a frozen base
 * (bitsandbytes' int8, NF4 and FP4; see {@link Kbit} for their byte layout). Their blocks run over
 * the flattened matrix, so they have no per-row byte size, no GGUF id ({@link #ggml} is false) and
 * are never read from or written to a file.
 */
public enum GgmlType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 2 + 16),
    Q4_1(3, 32, 2 + 2 + 16),
    Q5_0(6, 32, 2 + 4 + 16),
    Q5_1(7, 32, 2 + 2 + 4 + 16),
    Q8_0(8, 32, 2 + 32),
    Q8_1(9, 32, 4 + 4 + 32),
    Q2_K(10, 256, 256 / 16 + 256 / 4 + 2 + 2),
    Q3_K(11, 256, 256 / 8 + 256 / 4 + 12 + 2),
    Q4_K(12, 256, 2 + 2 + 12 + 256 / 2),
    Q5_K(13, 256, 2 + 2 + 12 + 256 / 8 + 256 / 2),
    Q6_K(14, 256, 256 / 2 + 256 / 4 + 256 / 16 + 2),
    Q8_K(15, 256, 4 + 256 + 256 / 16 * 2),
    I8(24, 1, 1),
    I16(25, 1, 2),
    I32(26, 1, 4),
    I64(27, 1, 8),
    F64(28, 1, 8),
    BF16(30, 1, 2),
    /** int8, symmetric absmax per row (LLM.int8's weight format): x = q·rowmax/127. */
    INT8(Kbit.ROW),
    /** uint8 with a zero point per block of 64 (asymmetric): x = (q + z)·(max − min)/255. */
    INT8_ZP(64),
    /** 4-bit NormalFloat, absmax per block of 64 (bitsandbytes / QLoRA). */
    NF4(64),
    /** NF4 with double quantization: the absmax constants 8-bit quantized in blocks of 256. */
    NF4_DQ(64),
    /** bitsandbytes' 4-bit float (1 sign, 2 exponent, 1 mantissa bit), absmax per block of 64. */
    FP4(64),
    /** FP4 with double quantization. */
    FP4_DQ(64);

    public final int id;
    public final int blockSize;
    public final int typeSize;
    /** Whether ggml has this type (it can be read from and written to GGUF). */
    public final boolean ggml;

    GgmlType(int id, int blockSize, int typeSize) {
        this.id = id;
        this.blockSize = blockSize;
        this.typeSize = typeSize;
        this.ggml = true;
    }

    /** A lora4j k-bit type: no ggml id, blocks of {@code blockSize} over the flattened matrix ({@link Kbit#ROW}: per row). */
    GgmlType(int blockSize) {
        this.id = -1;
        this.blockSize = blockSize;
        this.typeSize = 0;
        this.ggml = false;
    }

    /**
     * Bytes needed for {@code n} elements of one row; {@code n} must be a multiple of
     * {@link #blockSize}. Only for ggml types: a k-bit type's size is {@link #tensorBytes}.
     */
    public long byteSize(long n) {
        if (!ggml) {
            throw new IllegalStateException(this + " is blocked over the whole matrix and has no per-row byte size");
        }
        if (n % blockSize != 0) {
            throw new IllegalArgumentException(this + ": " + n + " elements is not a multiple of the block size " + blockSize);
        }
        return n / blockSize * typeSize;
    }

    /** Bytes of a whole {@code rows × cols} matrix, statistics included for the k-bit types. */
    public long tensorBytes(long rows, long cols) {
        return ggml ? rows * byteSize(cols) : Kbit.tensorBytes(this, rows, cols);
    }

    public boolean isQuantized() {
        return blockSize > 1 || !ggml;
    }

    /** The type with ggml id {@code id}, or null when lora4j does not know it. */
    public static GgmlType fromId(int id) {
        for (GgmlType t : values()) {
            if (t.ggml && t.id == id) {
                return t;
            }
        }
        return null;
    }
}

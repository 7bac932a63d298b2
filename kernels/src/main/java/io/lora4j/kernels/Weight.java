package io.lora4j.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A (possibly quantized) weight matrix in memory-mapped bytes: {@code rows} output rows of
 * {@code cols} input elements each, row-major, row r at byte {@code r * rowBytes()}. A vector is a
 * matrix with one row. The segment points into the mapped file; it is never copied. A k-bit
 * matrix (INT8, NF4, … quantized on load, see {@link Kbit}) lives in its own off-heap segment,
 * packed values then statistics, and has no row byte size.
 *
 * @param name  tensor name (for error messages)
 * @param type  element type
 * @param data  the tensor's bytes
 * @param rows  output dimension (ggml ne1)
 * @param cols  input dimension (ggml ne0)
 */
public record Weight(String name, GgmlType type, MemorySegment data, int rows, int cols) {
    public Weight {
        long need = type.tensorBytes(rows, cols);
        if (data.byteSize() < need) {
            throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes, need " + need
                    + " for " + rows + "x" + cols + " " + type);
        }
    }

    /** Bytes of one row (ggml types only: k-bit blocks run over the flattened matrix). */
    public long rowBytes() {
        return type.byteSize(cols);
    }
}

package io.lora4j.kernels;

import java.lang.foreign.MemorySegment;

/**
 * A (possibly quantized) weight matrix in memory-mapped bytes: {@code rows} output rows of
 * {@code cols} input elements each, row-major, row r at byte {@code r * rowBytes()}. A vector is a
 * matrix with one row. The segment points into the mapped file; it is never copied.
 *
 * @param name  tensor name (for error messages)
 * @param type  element type
 * @param data  the tensor's bytes
 * @param rows  output dimension (ggml ne1)
 * @param cols  input dimension (ggml ne0)
 */
public record Weight(String name, GgmlType type, MemorySegment data, int rows, int cols) {
    public Weight {
        long need = (long) rows * type.byteSize(cols);
        if (data.byteSize() < need) {
            throw new IllegalArgumentException(name + ": " + data.byteSize() + " bytes, need " + need
                    + " for " + rows + "x" + cols + " " + type);
        }
    }

    public long rowBytes() {
        return type.byteSize(cols);
    }
}

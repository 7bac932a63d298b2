package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * One tensor of a weight file: its name, element type, shape in ggml order (ne0 = the innermost,
 * contiguous dimension first) and its bytes as a view into the memory-mapped file.
 */
public record TensorInfo(String name, GgmlType type, long[] shape, MemorySegment data) {

    public long elementCount() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    /** This tensor as a matrix of {@code shape[1]} rows by {@code shape[0]} columns (a vector is one row). */
    public Weight asWeight() {
        long rows = 1;
        for (int i = 1; i < shape.length; i++) {
            rows *= shape[i];
        }
        return new Weight(name, type, data, Math.toIntExact(rows), Math.toIntExact(shape[0]));
    }

    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(shape);
    }
}

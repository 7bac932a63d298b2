package io.lora4j.model.lora;

import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.Quantizer;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * A merged float matrix quantized back to the type of the projection it replaces: the load-time
 * k-bit types ({@link Kbit}) and the ggml types lora4j has a reference quantizer for (Q8_0, Q4_0).
 */
final class Requantize {
    private Requantize() {
    }

    /** Refuses a type that cannot be requantized, before anything is merged. */
    static void check(Weight base) {
        GgmlType t = base.type();
        if (t.ggml && t != GgmlType.Q8_0 && t != GgmlType.Q4_0) {
            throw new IllegalArgumentException(base.name() + " is " + t + ": lora4j has no " + t + " quantizer, so it cannot "
                    + "requantize a merge into it (Q8_0, Q4_0 and the --quantize types can); merge with --dequantize instead");
        }
    }

    /** {@code m} (base.rows × base.cols) as a new weight of base's type. */
    static Weight like(Weight base, String name, float[] m) {
        check(base);
        GgmlType t = base.type();
        int rows = base.rows(), cols = base.cols();
        if (!t.ggml) {
            return Kbit.quantize(t, name, m, rows, cols);
        }
        long rowBytes = t.byteSize(cols);
        MemorySegment seg = Arena.ofAuto().allocate(rows * rowBytes, 64);
        for (int r = 0; r < rows; r++) {
            Quantizer.quantizeRow(t, seg, r * rowBytes, m, r * cols, cols);
        }
        return new Weight(name, t, seg, rows, cols);
    }
}

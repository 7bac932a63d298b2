package io.lora4j.kernels;

import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

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
 * @param facts what a scan of the bytes learned, once (they never change once a Weight is made)
 */
public record Weight(String name, GgmlType type, MemorySegment data, int rows, int cols, Facts facts) {
    public Weight(String name, GgmlType type, MemorySegment data, int rows, int cols) {
        this(name, type, data, rows, cols, new Facts());
    }

    public Weight {
        if (facts == null) {
            facts = new Facts();
        }
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

    /**
     * F16 only: whether no element is an infinity or a NaN, so that the decode kernels may skip handling
     * them (two of the twelve vector operations per 16 halves). Scanned on the first call, on all threads.
     */
    public boolean finiteHalves() {
        int f = facts.finite;
        if (f == 0) {
            f = scanFinite() ? 1 : 2;
            facts.finite = f;
        }
        return f == 1;
    }

    private boolean scanFinite() {
        if (type != GgmlType.F16) {
            return false;
        }
        VectorSpecies<Short> s = ShortVector.SPECIES_PREFERRED;
        long rb = rowBytes();
        boolean[] special = new boolean[1];
        Threads.parallelFor(rows, 2L * cols, (from, to) -> {
            ShortVector top = ShortVector.zero(s);
            for (int r = from; r < to && !special[0]; r++) {
                long base = r * rb;
                int c = 0;
                for (; c + s.length() <= cols; c += s.length()) { // |h| as a signed short orders like the half's magnitude
                    top = top.max(ShortVector.fromMemorySegment(s, data, base + 2L * c, ByteOrder.LITTLE_ENDIAN).and((short) 0x7fff));
                }
                boolean found = top.reduceLanes(VectorOperators.MAX) >= 0x7c00;
                for (; c < cols; c++) {
                    found |= (data.get(ValueLayout.JAVA_SHORT_UNALIGNED, base + 2L * c) & 0x7c00) == 0x7c00;
                }
                if (found) {
                    special[0] = true;
                }
            }
        });
        return !special[0];
    }

    /**
     * What scans of a weight's bytes learned. Equal to every other Facts, so that a Weight's equality and hash
     * stay those of its tensor.
     */
    public static final class Facts {
        private volatile int finite; // F16: 0 not scanned, 1 no infinity or NaN, 2 some

        @Override
        public boolean equals(Object o) {
            return o instanceof Facts;
        }

        @Override
        public int hashCode() {
            return 0;
        }

        @Override
        public String toString() {
            return "Facts";
        }
    }
}

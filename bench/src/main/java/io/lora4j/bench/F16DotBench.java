package io.lora4j.bench;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;
import org.openjdk.jmh.annotations.AuxCounters;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Param;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Variants of the F16 decode dot (one thread, all rows of one matrix against one input), to choose
 * the kernel of {@code Matmul}: {@code row} converts a row's halves to a float scratch with
 * {@code Float.float16ToFloat} (a loop C2 turns into VCVTPH2PS) and dots it (the kernel today);
 * {@code four} converts four rows, then dots them together, loading each input vector once for the
 * four; {@code chunk} converts and dots 128 columns at a time (the scratch stays in registers'
 * reach); {@code bits} decodes the halves in integer lanes (shift into a float's exponent and
 * mantissa, scale by 2^112; subnormal halves pass through float denormals); {@code bitsn} likewise
 * without denormals (normal halves rebiased in integer lanes, subnormal ones as mantissa · 2^-24; the
 * kernel until 2026-12-06); {@code giesen} rebiased in integer lanes, infinities and NaNs by a masked
 * add, subnormals renormalized by a masked subtraction of 2^-14 (F. Giesen's half_to_float; twelve
 * vector operations instead of seventeen, the kernel {@code Matmul} adopted); {@code four512} four
 * rows, 512 columns at a time. Reported as weight
 * bytes read per second.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@State(Scope.Benchmark)
public class F16DotBench {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Short> S = L == 16 ? ShortVector.SPECIES_256 : ShortVector.SPECIES_128;
    private static final VectorSpecies<Integer> I = L == 16 ? IntVector.SPECIES_512 : IntVector.SPECIES_256;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VectorShuffle<Float>[] FOLDS = folds();
    private static final int CHUNK = 128;

    @Param({"row", "four", "four512", "chunk", "bits", "bitsn", "giesen"})
    public String variant;

    /** rows x cols */
    @Param({"2048x768", "5632x2048", "32000x768"})
    public String shape;

    private MemorySegment w;
    private int rows, cols;
    private float[] x, out, h;

    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Rates {
        public double weightBytes;
    }

    @Setup(Level.Trial)
    public void setup() {
        String[] rc = shape.split("x");
        rows = Integer.parseInt(rc[0]);
        cols = Integer.parseInt(rc[1]);
        SplittableRandom r = new SplittableRandom(1);
        w = Arena.ofShared().allocate(2L * rows * cols, 64);
        for (long i = 0; i < (long) rows * cols; i++) {
            w.set(SHORT, 2 * i, Float.floatToFloat16((float) (r.nextGaussian() * 0.02)));
        }
        x = new float[cols];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) r.nextGaussian();
        }
        out = new float[rows];
        h = new float[4 * cols];
    }

    @Benchmark
    public float[] dot(Rates rates) {
        long rb = 2L * cols;
        switch (variant) {
            case "row" -> {
                for (int r = 0; r < rows; r++) {
                    out[r] = dotRow(w, r * rb, x, cols, h);
                }
            }
            case "four" -> {
                int r = 0;
                for (; r + 4 <= rows; r += 4) {
                    dotFour(w, r * rb, x, cols, h, out, r);
                }
                for (; r < rows; r++) {
                    out[r] = dotRow(w, r * rb, x, cols, h);
                }
            }
            case "four512" -> {
                int r = 0;
                for (; r + 4 <= rows; r += 4) {
                    dotFourChunked(w, r * rb, rb, x, cols, h, out, r);
                }
                for (; r < rows; r++) {
                    out[r] = dotRow(w, r * rb, x, cols, h);
                }
            }
            case "bitsn" -> {
                for (int r = 0; r < rows; r++) {
                    out[r] = dotBitsNormal(w, r * rb, x, cols);
                }
            }
            case "chunk" -> {
                for (int r = 0; r < rows; r++) {
                    out[r] = dotChunk(w, r * rb, x, cols, h);
                }
            }
            case "bits" -> {
                for (int r = 0; r < rows; r++) {
                    out[r] = dotBits(w, r * rb, x, cols);
                }
            }
            case "giesen" -> {
                for (int r = 0; r < rows; r++) {
                    out[r] = dotGiesen(w, r * rb, x, cols);
                }
            }
            default -> throw new IllegalArgumentException(variant);
        }
        rates.weightBytes += rows * rb;
        return out;
    }

    static void halves(MemorySegment seg, long off, float[] dst, int dstOff, int n) {
        for (int i = 0; i < n; i++) {
            dst[dstOff + i] = Float.float16ToFloat(seg.get(SHORT, off + 2L * i));
        }
    }

    static float dotRow(MemorySegment seg, long base, float[] x, int cols, float[] h) {
        halves(seg, base, h, 0, cols);
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        int c = 0;
        for (; c + 2 * L <= cols; c += 2 * L) {
            a0 = FloatVector.fromArray(F, h, c).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = FloatVector.fromArray(F, h, c + L).fma(FloatVector.fromArray(F, x, c + L), a1);
        }
        for (; c < cols; c += L) {
            a0 = FloatVector.fromArray(F, h, c).fma(FloatVector.fromArray(F, x, c), a0);
        }
        FloatVector acc = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    static void dotFour(MemorySegment seg, long base, float[] x, int cols, float[] h, float[] out, int r0) {
        halves(seg, base, h, 0, 4 * cols);
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        int h1 = cols, h2 = 2 * cols, h3 = 3 * cols;
        for (int c = 0; c < cols; c += L) {
            FloatVector v = FloatVector.fromArray(F, x, c);
            a0 = FloatVector.fromArray(F, h, c).fma(v, a0);
            a1 = FloatVector.fromArray(F, h, h1 + c).fma(v, a1);
            a2 = FloatVector.fromArray(F, h, h2 + c).fma(v, a2);
            a3 = FloatVector.fromArray(F, h, h3 + c).fma(v, a3);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            a0 = a0.add(a0.rearrange(fold));
            a1 = a1.add(a1.rearrange(fold));
            a2 = a2.add(a2.rearrange(fold));
            a3 = a3.add(a3.rearrange(fold));
        }
        out[r0] = a0.lane(0);
        out[r0 + 1] = a1.lane(0);
        out[r0 + 2] = a2.lane(0);
        out[r0 + 3] = a3.lane(0);
    }

    /** As dotFour, 512 columns of the four rows at a time (8 KiB of scratch). */
    static void dotFourChunked(MemorySegment seg, long base, long rb, float[] x, int cols, float[] h, float[] out, int r0) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int c0 = 0; c0 < cols; c0 += 512) {
            int n = Math.min(512, cols - c0);
            halves(seg, base + 2L * c0, h, 0, n);
            halves(seg, base + rb + 2L * c0, h, 512, n);
            halves(seg, base + 2 * rb + 2L * c0, h, 1024, n);
            halves(seg, base + 3 * rb + 2L * c0, h, 1536, n);
            for (int c = 0; c < n; c += L) {
                FloatVector v = FloatVector.fromArray(F, x, c0 + c);
                a0 = FloatVector.fromArray(F, h, c).fma(v, a0);
                a1 = FloatVector.fromArray(F, h, 512 + c).fma(v, a1);
                a2 = FloatVector.fromArray(F, h, 1024 + c).fma(v, a2);
                a3 = FloatVector.fromArray(F, h, 1536 + c).fma(v, a3);
            }
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            a0 = a0.add(a0.rearrange(fold));
            a1 = a1.add(a1.rearrange(fold));
            a2 = a2.add(a2.rearrange(fold));
            a3 = a3.add(a3.rearrange(fold));
        }
        out[r0] = a0.lane(0);
        out[r0 + 1] = a1.lane(0);
        out[r0 + 2] = a2.lane(0);
        out[r0 + 3] = a3.lane(0);
    }

    /** As dotBits without float denormals: normal halves by integer rebias, subnormal ones as mantissa · 2^-24, ±∞ and NaN kept (Matmul's kernel). */
    static float dotBitsNormal(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int c = 0; c < cols; c += 2 * L) {
            a0 = decodeNormal(seg, base + 2L * c).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = decodeNormal(seg, base + 2L * (c + L)).fma(FloatVector.fromArray(F, x, c + L), a1);
        }
        FloatVector acc = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    private static FloatVector decodeNormal(MemorySegment seg, long off) {
        IntVector i = (IntVector) ShortVector.fromMemorySegment(S, seg, off, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.S2I, I, 0);
        IntVector em = i.and(0x7fff);
        FloatVector normal = em.lanewise(VectorOperators.LSHL, 13).add((127 - 15) << 23).reinterpretAsFloats();
        FloatVector sub = ((FloatVector) em.convertShape(VectorOperators.I2F, F, 0)).mul(0x1p-24f);
        IntVector shifted = em.lanewise(VectorOperators.LSHL, 13);
        FloatVector f = normal.blend(sub, em.compare(VectorOperators.LT, 0x400).cast(F))
                .blend(Float.POSITIVE_INFINITY, em.compare(VectorOperators.EQ, 0x7c00).cast(F))
                .blend(shifted.or(0x7fc00000).reinterpretAsFloats(), em.compare(VectorOperators.GT, 0x7c00).cast(F));
        return f.reinterpretAsInts().or(i.and(0x8000).lanewise(VectorOperators.LSHL, 16)).reinterpretAsFloats();
    }

    static float dotChunk(MemorySegment seg, long base, float[] x, int cols, float[] h) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int c0 = 0; c0 < cols; c0 += CHUNK) {
            halves(seg, base + 2L * c0, h, 0, CHUNK);
            for (int c = 0; c < CHUNK; c += 2 * L) {
                a0 = FloatVector.fromArray(F, h, c).fma(FloatVector.fromArray(F, x, c0 + c), a0);
                a1 = FloatVector.fromArray(F, h, c + L).fma(FloatVector.fromArray(F, x, c0 + c + L), a1);
            }
        }
        FloatVector acc = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    static float dotBits(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        FloatVector scale = FloatVector.broadcast(F, 0x1p112f);
        for (int c = 0; c < cols; c += 2 * L) {
            a0 = decode(seg, base + 2L * c, scale).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = decode(seg, base + 2L * (c + L), scale).fma(FloatVector.fromArray(F, x, c + L), a1);
        }
        FloatVector acc = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    static float dotGiesen(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0;
        for (int c = 0; c < cols; c += 2 * L) {
            a0 = decodeGiesen(seg, base + 2L * c).fma(FloatVector.fromArray(F, x, c), a0);
            a1 = decodeGiesen(seg, base + 2L * (c + L)).fma(FloatVector.fromArray(F, x, c + L), a1);
        }
        FloatVector acc = a0.add(a1);
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /** Exact without float denormals: rebias in integer lanes, subnormals renormalized by a masked subtraction. */
    static FloatVector decodeGiesen(MemorySegment seg, long off) {
        IntVector i = (IntVector) ShortVector.fromMemorySegment(S, seg, off, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.S2I, I, 0);
        IntVector em = i.and(0x7fff);
        IntVector o = em.lanewise(VectorOperators.LSHL, 13).add(112 << 23);
        o = o.add(112 << 23, em.compare(VectorOperators.GE, 0x7c00));
        VectorMask<Integer> den = em.compare(VectorOperators.LT, 0x400);
        o = o.add(1 << 23, den);
        FloatVector f = o.reinterpretAsFloats().sub(0x1p-14f, den.cast(F));
        return f.reinterpretAsInts().or(i.and(0x80000000)).reinterpretAsFloats();
    }

    private static FloatVector decode(MemorySegment seg, long off, FloatVector scale) {
        IntVector i = (IntVector) ShortVector.fromMemorySegment(S, seg, off, ByteOrder.LITTLE_ENDIAN)
                .convertShape(VectorOperators.S2I, I, 0);
        IntVector mag = i.and(0x7fff).lanewise(VectorOperators.LSHL, 13);
        IntVector sign = i.and(0x8000).lanewise(VectorOperators.LSHL, 16);
        FloatVector f = mag.reinterpretAsFloats().mul(scale);
        return f.reinterpretAsInts().or(sign).reinterpretAsFloats();
    }

    @SuppressWarnings("unchecked")
    private static VectorShuffle<Float>[] folds() {
        int n = Integer.numberOfTrailingZeros(L);
        VectorShuffle<Float>[] f = new VectorShuffle[n];
        for (int k = 0; k < n; k++) {
            int half = L >> (k + 1);
            f[k] = VectorShuffle.fromOp(F, i -> (i + half) % L);
        }
        return f;
    }
}

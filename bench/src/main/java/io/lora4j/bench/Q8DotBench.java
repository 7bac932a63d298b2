package io.lora4j.bench;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.format.Quantizer;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
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
 * Variants of the Q8_0 decode dot (one thread, all rows of one matrix against one input), to choose
 * the kernel of {@code Matmul}: {@code float} converts the weight bytes to floats and multiplies the
 * float input (the kernel before the integer path); {@code int} quantizes the input to Q8_0 blocks once
 * (llama.cpp's {@code quantize_row_q8_0}) and multiplies bytes as 16-bit integers, widened to int lanes,
 * one float scale per block pair ({@code dw·dx}) — with the input widened to shorts once per matmul
 * ({@code int}) or per row ({@code intb}); {@code int4} does four weight rows per pass over the input.
 * Reported as weight bytes read per second.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@State(Scope.Benchmark)
public class Q8DotBench {
    private static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    private static final int L = F.length();
    private static final VectorSpecies<Byte> B = L == 16 ? ByteVector.SPECIES_128 : ByteVector.SPECIES_64;
    private static final VectorSpecies<Short> S = L == 16 ? ShortVector.SPECIES_256 : ShortVector.SPECIES_128;
    private static final VectorSpecies<Integer> I = L == 16 ? IntVector.SPECIES_512 : IntVector.SPECIES_256;
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    private static final VectorShuffle<Float>[] FOLDS = folds();

    @Param({"float", "int", "intb", "int4"})
    public String variant;

    /** rows x cols */
    @Param({"2048x768", "5632x2048"})
    public String shape;

    private MemorySegment w;
    private int rows, cols;
    private float[] x, out;
    private byte[] qx;
    private short[] sx;
    private float[] dx;

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
        float[] m = new float[rows * cols];
        for (int i = 0; i < m.length; i++) {
            m[i] = (float) (r.nextGaussian() * 0.02);
        }
        long rb = GgmlType.Q8_0.byteSize(cols);
        w = Arena.ofShared().allocate(rows * rb, 64);
        for (int i = 0; i < rows; i++) {
            Quantizer.quantizeRow(GgmlType.Q8_0, w, i * rb, m, i * cols, cols);
        }
        x = new float[cols];
        for (int i = 0; i < cols; i++) {
            x[i] = (float) r.nextGaussian();
        }
        out = new float[rows];
        qx = new byte[cols];
        sx = new short[cols];
        dx = new float[cols / 32];
    }

    @Benchmark
    public float[] dot(Rates rates) {
        long rb = 34L * (cols / 32);
        switch (variant) {
            case "float" -> {
                for (int r = 0; r < rows; r++) {
                    out[r] = dotFloat(w, r * rb, x, cols);
                }
            }
            case "int" -> {
                quantize(x, qx, dx, cols);
                for (int i = 0; i < cols; i++) {
                    sx[i] = qx[i];
                }
                for (int r = 0; r < rows; r++) {
                    out[r] = dotInt(w, r * rb, sx, dx, cols);
                }
            }
            case "intb" -> {
                quantize(x, qx, dx, cols);
                for (int r = 0; r < rows; r++) {
                    out[r] = dotIntB(w, r * rb, qx, dx, cols);
                }
            }
            case "int4" -> {
                quantize(x, qx, dx, cols);
                for (int i = 0; i < cols; i++) {
                    sx[i] = qx[i];
                }
                int r = 0;
                for (; r + 4 <= rows; r += 4) {
                    dotInt4(w, r * rb, rb, sx, dx, cols, out, r);
                }
                for (; r < rows; r++) {
                    out[r] = dotInt(w, r * rb, sx, dx, cols);
                }
            }
            default -> throw new IllegalArgumentException(variant);
        }
        rates.weightBytes += rows * rb;
        return out;
    }

    /** llama.cpp's x86 quantize_row_q8_0: d = amax / 127 rounded to fp16, q = round-half-even(x · 127 / amax). */
    static void quantize(float[] x, byte[] q, float[] d, int n) {
        for (int b = 0; b < n / 32; b++) {
            float amax = 0f;
            for (int j = 0; j < 32; j++) {
                amax = Math.max(amax, Math.abs(x[32 * b + j]));
            }
            float db = amax / 127f;
            float id = amax != 0f ? 127f / amax : 0f;
            for (int j = 0; j < 32; j++) {
                q[32 * b + j] = (byte) Math.rint(x[32 * b + j] * id);
            }
            d[b] = Float.float16ToFloat(Float.floatToFloat16(db));
        }
    }

    static float dotFloat(MemorySegment seg, long base, float[] x, int cols) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < cols / 32; b++) {
            long p = base + 34L * b;
            float d = Float.float16ToFloat(seg.get(SHORT, p));
            FloatVector s = FloatVector.zero(F);
            for (int j = 0; j < 32; j += L) {
                FloatVector q = (FloatVector) ByteVector.fromMemorySegment(B, seg, p + 2 + j, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2F, F, 0);
                s = q.fma(FloatVector.fromArray(F, x, 32 * b + j), s);
            }
            acc = s.fma(FloatVector.broadcast(F, d), acc);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /** x as 16-bit integers: per L-byte chunk, weight bytes widened to shorts, times x, two chunks added, widened to ints. */
    static float dotInt(MemorySegment seg, long base, short[] sx, float[] dx, int cols) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < cols / 32; b++) {
            long p = base + 34L * b;
            float d = Float.float16ToFloat(seg.get(SHORT, p)) * dx[b];
            IntVector s = IntVector.zero(I);
            for (int j = 0; j < 32; j += 2 * L) {
                ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B, seg, p + 2 + j, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2S, S, 0);
                ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B, seg, p + 2 + j + L, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2S, S, 0);
                ShortVector pr = w0.mul(ShortVector.fromArray(S, sx, 32 * b + j)).add(w1.mul(ShortVector.fromArray(S, sx, 32 * b + j + L)));
                s = s.add((IntVector) pr.convertShape(VectorOperators.S2I, I, 0));
            }
            acc = ((FloatVector) s.convertShape(VectorOperators.I2F, F, 0)).fma(FloatVector.broadcast(F, d), acc);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /** As dotInt with x kept as bytes, widened per row. */
    static float dotIntB(MemorySegment seg, long base, byte[] qx, float[] dx, int cols) {
        FloatVector acc = FloatVector.zero(F);
        for (int b = 0; b < cols / 32; b++) {
            long p = base + 34L * b;
            float d = Float.float16ToFloat(seg.get(SHORT, p)) * dx[b];
            IntVector s = IntVector.zero(I);
            for (int j = 0; j < 32; j += 2 * L) {
                ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B, seg, p + 2 + j, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2S, S, 0);
                ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B, seg, p + 2 + j + L, ByteOrder.LITTLE_ENDIAN)
                        .convertShape(VectorOperators.B2S, S, 0);
                ShortVector x0 = (ShortVector) ByteVector.fromArray(B, qx, 32 * b + j).convertShape(VectorOperators.B2S, S, 0);
                ShortVector x1 = (ShortVector) ByteVector.fromArray(B, qx, 32 * b + j + L).convertShape(VectorOperators.B2S, S, 0);
                ShortVector pr = w0.mul(x0).add(w1.mul(x1));
                s = s.add((IntVector) pr.convertShape(VectorOperators.S2I, I, 0));
            }
            acc = ((FloatVector) s.convertShape(VectorOperators.I2F, F, 0)).fma(FloatVector.broadcast(F, d), acc);
        }
        for (VectorShuffle<Float> fold : FOLDS) {
            acc = acc.add(acc.rearrange(fold));
        }
        return acc.lane(0);
    }

    /** Four rows per pass: the input chunk loaded once for four weight rows. */
    static void dotInt4(MemorySegment seg, long base, long rb, short[] sx, float[] dx, int cols, float[] out, int r0) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < cols / 32; b++) {
            long p = base + 34L * b;
            float db = dx[b];
            IntVector s0 = IntVector.zero(I), s1 = s0, s2 = s0, s3 = s0;
            for (int j = 0; j < 32; j += 2 * L) {
                ShortVector x0 = ShortVector.fromArray(S, sx, 32 * b + j);
                ShortVector x1 = ShortVector.fromArray(S, sx, 32 * b + j + L);
                s0 = s0.add(pair(seg, p + 2 + j, x0, x1));
                s1 = s1.add(pair(seg, p + rb + 2 + j, x0, x1));
                s2 = s2.add(pair(seg, p + 2 * rb + 2 + j, x0, x1));
                s3 = s3.add(pair(seg, p + 3 * rb + 2 + j, x0, x1));
            }
            a0 = ((FloatVector) s0.convertShape(VectorOperators.I2F, F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(seg.get(SHORT, p)) * db), a0);
            a1 = ((FloatVector) s1.convertShape(VectorOperators.I2F, F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(seg.get(SHORT, p + rb)) * db), a1);
            a2 = ((FloatVector) s2.convertShape(VectorOperators.I2F, F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(seg.get(SHORT, p + 2 * rb)) * db), a2);
            a3 = ((FloatVector) s3.convertShape(VectorOperators.I2F, F, 0)).fma(FloatVector.broadcast(F, Float.float16ToFloat(seg.get(SHORT, p + 3 * rb)) * db), a3);
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

    private static IntVector pair(MemorySegment seg, long p, ShortVector x0, ShortVector x1) {
        ShortVector w0 = (ShortVector) ByteVector.fromMemorySegment(B, seg, p, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.B2S, S, 0);
        ShortVector w1 = (ShortVector) ByteVector.fromMemorySegment(B, seg, p + L, ByteOrder.LITTLE_ENDIAN).convertShape(VectorOperators.B2S, S, 0);
        return (IntVector) w0.mul(x0).add(w1.mul(x1)).convertShape(VectorOperators.S2I, I, 0);
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

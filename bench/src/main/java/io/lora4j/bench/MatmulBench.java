package io.lora4j.bench;

import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.Quantizer;
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
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * Matrix products over off-heap weights of the 110M and 1B shapes: decode (T = 1, memory-bound:
 * read GB/s) and prefill (T = 64, compute-bound: GFLOP/s), reported beside the time as auxiliary
 * counters (per second: weightBytes = bytes/s read, flops = FLOP/s); and the input gradient of
 * training ({@code inputGradient}, T = 64). Types: the ggml ones (written with the reference
 * quantizers) and the load-time k-bit ones of a QLoRA base ({@link Kbit}: INT8, INT8_ZP, NF4, NF4_DQ,
 * FP4, FP4_DQ; their bytes include the quantization statistics). Run:
 * {@code java --add-modules jdk.incubator.vector -jar bench/target/benchmarks.jar MatmulBench -p type=F16,NF4_DQ}.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@State(Scope.Benchmark)
public class MatmulBench {

    @Param({"F32", "F16", "Q8_0", "Q4_0", "INT8", "INT8_ZP", "NF4", "NF4_DQ", "FP4", "FP4_DQ"})
    public String type;

    /** rows x cols */
    @Param({"768x768", "2048x768", "2048x2048", "5632x2048"})
    public String shape;

    @Param({"1", "64"})
    public int tokens;

    private Weight w;
    private float[] x;
    private float[] out;
    private float[] dy;
    private float[] dx;
    private float[][] rows;
    private Weight[] ws;

    /** Throughput beside the time: weight bytes read and floating-point operations per second. */
    @State(Scope.Thread)
    @AuxCounters(AuxCounters.Type.OPERATIONS)
    public static class Rates {
        public double weightBytes;
        public double flops;
    }

    @Setup(Level.Trial)
    public void setup() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]);
        int cols = Integer.parseInt(rc[1]);
        GgmlType t = GgmlType.valueOf(type);
        SplittableRandom r = new SplittableRandom(1);
        float[] m = new float[rows * cols];
        for (int i = 0; i < m.length; i++) {
            m[i] = (float) (r.nextGaussian() * 0.02);
        }
        if (t.ggml) {
            MemorySegment seg = Arena.ofShared().allocate(rows * t.byteSize(cols), 64);
            for (int i = 0; i < rows; i++) {
                Quantizer.quantizeRow(t, seg, i * t.byteSize(cols), m, i * cols, cols);
            }
            w = new Weight("bench", t, seg, rows, cols);
        } else {
            w = Kbit.quantize(t, "bench", m, rows, cols);
        }
        x = random(r, tokens * cols);
        dy = random(r, tokens * rows);
        out = new float[tokens * rows];
        this.rows = new float[][]{out};
        ws = new Weight[]{w};
        dx = new float[tokens * cols];
    }

    private static float[] random(SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) r.nextGaussian();
        }
        return a;
    }

    @Benchmark
    public float[] matmul(Rates rates) {
        Matmul.forward(out, x, w, tokens);
        count(rates);
        return out;
    }

    /** A server's decode step: {@code tokens} rows from different sequences, the weights read once ({@link Matmul#forwardRows}). */
    @Benchmark
    public float[] batchRows(Rates rates) {
        Matmul.forwardRows(rows, x, ws, tokens);
        count(rates);
        return out;
    }

    /** dx = dy·W through the frozen weight: the base's share of a training step's backward pass. */
    @Benchmark
    public float[] inputGradient(Rates rates) {
        Matmul.backward(dx, dy, w, tokens, false);
        count(rates);
        return dx;
    }

    private void count(Rates rates) {
        rates.weightBytes += w.type().tensorBytes(w.rows(), w.cols());
        rates.flops += 2.0 * tokens * w.rows() * w.cols();
    }
}

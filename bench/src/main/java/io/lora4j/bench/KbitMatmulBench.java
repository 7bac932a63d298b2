package io.lora4j.bench;

import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.Weight;
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

import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

/**
 * The fused dequantize-and-multiply kernels of the load-time k-bit bases ({@link Kbit}) on the 110M
 * and 1B shapes: decode (T = 1, memory-bound: weightBytes/s is the packed matrix with its
 * statistics read per second) and the products of training (T = 64: forward and the input gradient,
 * flops/s). Compare with {@link MatmulBench}'s F16 and Q8_0. Run:
 * {@code java --add-modules jdk.incubator.vector -jar bench/target/benchmarks.jar KbitMatmulBench}.
 */
@BenchmarkMode(Mode.Throughput)
@OutputTimeUnit(TimeUnit.SECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(value = 1, jvmArgsAppend = {"--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED"})
@State(Scope.Benchmark)
public class KbitMatmulBench {

    @Param({"INT8", "INT8_ZP", "NF4", "NF4_DQ", "FP4", "FP4_DQ"})
    public String type;

    /** rows x cols */
    @Param({"768x768", "2048x768", "768x2048", "5632x2048"})
    public String shape;

    @Param({"1", "64"})
    public int tokens;

    private Weight w;
    private float[] x;
    private float[] out;
    private float[] dy;
    private float[] dx;

    @Setup(Level.Trial)
    public void setup() {
        String[] rc = shape.split("x");
        int rows = Integer.parseInt(rc[0]);
        int cols = Integer.parseInt(rc[1]);
        SplittableRandom r = new SplittableRandom(1);
        float[] m = new float[rows * cols];
        for (int i = 0; i < m.length; i++) {
            m[i] = (float) (r.nextGaussian() * 0.02);
        }
        w = Kbit.quantize(GgmlType.valueOf(type), "bench", m, rows, cols);
        x = new float[tokens * cols];
        dy = new float[tokens * rows];
        for (int i = 0; i < x.length; i++) {
            x[i] = (float) r.nextGaussian();
        }
        for (int i = 0; i < dy.length; i++) {
            dy[i] = (float) r.nextGaussian();
        }
        out = new float[tokens * rows];
        dx = new float[tokens * cols];
    }

    @Benchmark
    public float[] matmul(MatmulBench.Rates rates) {
        Matmul.forward(out, x, w, tokens);
        rates.weightBytes += w.type().tensorBytes(w.rows(), w.cols());
        rates.flops += 2.0 * tokens * w.rows() * w.cols();
        return out;
    }

    /** dx = dy·W, the base's part of the backward pass in QLoRA training. */
    @Benchmark
    public float[] inputGradient(MatmulBench.Rates rates) {
        Matmul.backward(dx, dy, w, tokens, false);
        rates.weightBytes += w.type().tensorBytes(w.rows(), w.cols());
        rates.flops += 2.0 * tokens * w.rows() * w.cols();
        return dx;
    }
}

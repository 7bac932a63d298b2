package io.lora4j.kernels;

/**
 * SwiGLU gate: {@code out[i] = silu(gate[i]) · up[i]}, {@code silu(g) = g / (1 + e^-g)}.
 * Glossary: N = T·hidden elements.
 */
public final class SwiGlu {
    private SwiGlu() {
    }

    /**
     * Naive oracle (TornadoVM kernel subset); {@code out} may alias {@code gate}.
     *
     * @param out  (N)
     * @param gate (N)
     * @param up   (N)
     */
    public static void forwardNaive(float[] out, float[] gate, float[] up, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            float g = gate[i];
            out[i] = g / (1.0f + (float) Math.exp(-g)) * up[i];
        }
    }

    /** Fast twin: the same loop split across threads (exp dominates; the JIT vectorises the rest). */
    public static void forward(float[] out, float[] gate, float[] up, int N) {
        Threads.parallelFor(N, 16, (from, to) -> {
            for (int i = from; i < to; i++) {
                float g = gate[i];
                out[i] = g / (1.0f + (float) Math.exp(-g)) * up[i];
            }
        });
    }

    /**
     * Backward (naive oracle): with σ = sigmoid(g), silu = g·σ,
     * {@code dgate = dout · up · σ · (1 + g·(1 − σ))}, {@code dup = dout · silu} (both assigned).
     *
     * @param dgate (N) out
     * @param dup   (N) out
     * @param dout  (N)
     * @param gate  (N) forward input
     * @param up    (N) forward input
     */
    public static void backwardNaive(float[] dgate, float[] dup, float[] dout, float[] gate, float[] up, int N) {
        for (@Parallel int i = 0; i < N; i++) {
            float g = gate[i];
            float sig = 1.0f / (1.0f + (float) Math.exp(-g));
            dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
            dup[i] = dout[i] * g * sig;
        }
    }

    /** Fast twin of {@link #backwardNaive}, split across threads. */
    public static void backward(float[] dgate, float[] dup, float[] dout, float[] gate, float[] up, int N) {
        Threads.parallelFor(N, 20, (from, to) -> {
            for (int i = from; i < to; i++) {
                float g = gate[i];
                float sig = 1.0f / (1.0f + (float) Math.exp(-g));
                dgate[i] = dout[i] * up[i] * sig * (1.0f + g * (1.0f - sig));
                dup[i] = dout[i] * g * sig;
            }
        });
    }
}

package io.lora4j.kernels;

/**
 * Softmax cross-entropy over the vocabulary: {@code loss[t] = −log softmax(logits[t])[target[t]]}.
 * A negative target marks a position without loss (padding, prompt tokens): its loss and
 * gradient are zero. Glossary: T positions, V vocabulary.
 */
public final class CrossEntropy {
    private CrossEntropy() {
    }

    /**
     * Naive oracle. {@code probs} receives the softmax (the backward needs it); it may alias logits.
     *
     * @param losses  (T)
     * @param probs   (T, V)
     * @param logits  (T, V)
     * @param targets (T)
     */
    public static void forwardNaive(float[] losses, float[] probs, float[] logits, int[] targets, int T, int V) {
        for (@Parallel int t = 0; t < T; t++) {
            int o = t * V;
            float max = Float.NEGATIVE_INFINITY;
            for (int v = 0; v < V; v++) {
                max = Math.max(max, logits[o + v]);
            }
            float sum = 0f;
            for (int v = 0; v < V; v++) {
                float e = (float) Math.exp(logits[o + v] - max);
                probs[o + v] = e;
                sum += e;
            }
            for (int v = 0; v < V; v++) {
                probs[o + v] = probs[o + v] / sum;
            }
            int y = targets[t];
            losses[t] = y < 0 ? 0f : (float) -Math.log(probs[o + y]);
        }
    }

    /** Fast twin of {@link #forwardNaive}, parallel over positions; the log-probability uses log-sum-exp. */
    public static void forward(float[] losses, float[] probs, float[] logits, int[] targets, int T, int V) {
        Threads.parallelFor(T, (long) V * 8, (from, to) -> {
            for (int t = from; t < to; t++) {
                int o = t * V;
                float max = Float.NEGATIVE_INFINITY;
                for (int v = 0; v < V; v++) {
                    max = Math.max(max, logits[o + v]);
                }
                float sum = 0f;
                int y = targets[t];
                float zy = y < 0 ? 0f : logits[o + y] - max;
                for (int v = 0; v < V; v++) {
                    float e = (float) Math.exp(logits[o + v] - max);
                    probs[o + v] = e;
                    sum += e;
                }
                float inv = 1f / sum;
                for (int v = 0; v < V; v++) {
                    probs[o + v] *= inv;
                }
                losses[t] = y < 0 ? 0f : (float) (Math.log(sum) - zy);
            }
        });
    }

    /**
     * Backward (naive oracle): {@code dlogits[t] = (probs[t] − onehot(target[t])) · dloss[t]}, zero
     * where the target is negative. May alias probs.
     *
     * @param dlogits (T, V) out
     * @param probs   (T, V) from the forward
     * @param dlosses (T) upstream gradient per position (e.g. 1/count)
     */
    public static void backwardNaive(float[] dlogits, float[] probs, int[] targets, float[] dlosses, int T, int V) {
        for (@Parallel int t = 0; t < T; t++) {
            int y = targets[t];
            float d = y < 0 ? 0f : dlosses[t];
            for (int v = 0; v < V; v++) {
                float ind = v == y ? 1f : 0f;
                dlogits[t * V + v] = (probs[t * V + v] - ind) * d;
            }
        }
    }

    /** Fast twin of {@link #backwardNaive}, parallel over positions. */
    public static void backward(float[] dlogits, float[] probs, int[] targets, float[] dlosses, int T, int V) {
        Threads.parallelFor(T, (long) V * 2, (from, to) -> {
            for (int t = from; t < to; t++) {
                int y = targets[t];
                float d = y < 0 ? 0f : dlosses[t];
                int o = t * V;
                for (int v = 0; v < V; v++) {
                    dlogits[o + v] = probs[o + v] * d;
                }
                if (y >= 0) {
                    dlogits[o + y] -= d;
                }
            }
        });
    }
}

package io.lora4j.model.lora;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * PEFT's {@code peft/utils/merge_utils.py}: merging k "task tensors" of the same size (an adapter's
 * lora_A of each adapter, its lora_B, or each adapter's whole update) with weights w, in float32 as torch
 * computes them. Every tensor is flat, in PEFT's row-major (Hugging Face) element order, which is the
 * order random masks are drawn in.
 * <ul>
 *   <li>task arithmetic: Σ wᵢ·tᵢ;</li>
 *   <li>magnitude prune: each tᵢ keeps its ⌊density·N⌋ largest |values| (torch.topk), then Σ wᵢ·tᵢ;</li>
 *   <li>TIES: magnitude-pruned tᵢ; the sign elected per element from Σ tᵢ ("total", ≥ 0 → +) or Σ sign tᵢ
 *       ("frequency"); the mean of the weighted values that have that sign (the sum over the count, at least 1);</li>
 *   <li>DARE linear / DARE TIES: each element kept with probability density (torch.bernoulli) and divided by
 *       density, then task arithmetic / TIES's sign election and disjoint mean.</li>
 * </ul>
 * A density ≥ 1 prunes nothing (PEFT warns); a negative one is an error.
 */
final class TaskMerging {
    private TaskMerging() {
    }

    static float[] taskArithmetic(List<float[]> t, float[] w) {
        float[] out = new float[t.get(0).length];
        for (int i = 0; i < out.length; i++) {
            float s = 0;
            for (int k = 0; k < t.size(); k++) {
                s += t.get(k)[i] * w[k];
            }
            out[i] = s;
        }
        return out;
    }

    static float[] magnitudePrune(List<float[]> t, float[] w, double density) {
        return taskArithmetic(prune(t, density, null), w);
    }

    static float[] ties(List<float[]> t, float[] w, double density, String majoritySignMethod) {
        return disjointMerge(prune(t, density, null), w, majoritySignMethod);
    }

    static float[] dareLinear(List<float[]> t, float[] w, double density, TorchRandom rnd) {
        return taskArithmetic(prune(t, density, rnd), w);
    }

    static float[] dareTies(List<float[]> t, float[] w, double density, String majoritySignMethod, TorchRandom rnd) {
        return disjointMerge(prune(t, density, rnd), w, majoritySignMethod);
    }

    /** PEFT's prune of every tensor, by magnitude (rnd null) or at random with rescaling (DARE). */
    static List<float[]> prune(List<float[]> t, double density, TorchRandom rnd) {
        if (density < 0 || Double.isNaN(density)) {
            throw new IllegalArgumentException("density should be >= 0, got " + density);
        }
        List<float[]> out = new ArrayList<>();
        for (float[] x : t) {
            out.add(density >= 1 ? x : rnd == null ? magnitude(x, density) : random(x, density, rnd));
        }
        return out;
    }

    /** Keeps the ⌊density·N⌋ largest magnitudes (equal magnitudes: the lower index first). */
    static float[] magnitude(float[] x, double density) {
        int k = (int) (density * x.length);
        Integer[] order = new Integer[x.length];
        for (int i = 0; i < x.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> Float.compare(Math.abs(x[b]), Math.abs(x[a])));
        float[] out = new float[x.length];
        for (int i = 0; i < k; i++) {
            out[order[i]] = x[order[i]];
        }
        return out;
    }

    /** {@code tensor * bernoulli(full_like(tensor, density)) / density}. */
    static float[] random(float[] x, double density, TorchRandom rnd) {
        float p = (float) density;
        float[] out = new float[x.length];
        for (int i = 0; i < x.length; i++) {
            out[i] = rnd.bernoulli(p) ? x[i] / p : 0f;
        }
        return out;
    }

    /** calculate_majority_sign_mask on the unweighted tensors, then disjoint_merge of the weighted ones. */
    static float[] disjointMerge(List<float[]> t, float[] w, String method) {
        if (!method.equals("total") && !method.equals("frequency")) {
            throw new IllegalArgumentException("majority_sign_method must be total or frequency, got '" + method + "'");
        }
        boolean total = method.equals("total");
        float[] out = new float[t.get(0).length];
        for (int i = 0; i < out.length; i++) {
            float magnitude = 0;
            for (float[] x : t) {
                magnitude += total ? x[i] : Math.signum(x[i]);
            }
            float majority = magnitude >= 0 ? 1f : -1f;
            float sum = 0;
            int kept = 0;
            for (int k = 0; k < t.size(); k++) {
                float v = t.get(k)[i];
                if (Math.signum(v) == majority) {
                    sum += v * w[k];
                    kept++;
                }
            }
            out[i] = sum / Math.max(kept, 1);
        }
        return out;
    }
}

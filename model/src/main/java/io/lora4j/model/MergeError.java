package io.lora4j.model;

import java.util.Locale;

/**
 * What merging into a quantized base costs, measured as PEFT users check a merge: the logits of the
 * merged model against those of the same adapters applied unmerged, position by position over a
 * sample of tokens. KL(merged ‖ unmerged) = Σ_v p_merged(v)·log(p_merged(v) / p_unmerged(v)) per
 * position, in nats. Glossary: N sampled positions, V vocab.
 *
 * @param positions      N
 * @param maxAbsLogit    max over positions and vocabulary of |logit_merged − logit_unmerged|
 * @param meanKl         mean over positions of the KL divergence
 * @param maxKl          the largest per-position KL divergence
 */
public record MergeError(int positions, double maxAbsLogit, double meanKl, double maxKl) {

    /** Logits at every position of {@code tokens} (N, V), one token at a time through the KV cache. */
    public static float[][] logits(Llama m, Backend b, int[] tokens) {
        State s = m.newState(1, tokens.length);
        float[][] out = new float[tokens.length][];
        for (int i = 0; i < tokens.length; i++) {
            out[i] = m.forward(b, s, tokens, i, 1, i).clone();
        }
        return out;
    }

    /** The error of {@code merged} (N, V) against {@code unmerged} (N, V). */
    public static MergeError between(float[][] merged, float[][] unmerged) {
        double maxAbs = 0, sumKl = 0, maxKl = 0;
        for (int i = 0; i < merged.length; i++) {
            float[] a = merged[i], b = unmerged[i];
            double ma = Double.NEGATIVE_INFINITY, mb = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < a.length; v++) {
                maxAbs = Math.max(maxAbs, Math.abs(a[v] - (double) b[v]));
                ma = Math.max(ma, a[v]);
                mb = Math.max(mb, b[v]);
            }
            double za = 0, zb = 0;
            for (int v = 0; v < a.length; v++) {
                za += Math.exp(a[v] - ma);
                zb += Math.exp(b[v] - mb);
            }
            double lza = Math.log(za) + ma, lzb = Math.log(zb) + mb;
            double kl = 0;
            for (int v = 0; v < a.length; v++) {
                double la = a[v] - lza;
                kl += Math.exp(la) * (la - (b[v] - lzb));
            }
            kl = Math.max(kl, 0); // rounding can leave a tiny negative value for identical rows
            sumKl += kl;
            maxKl = Math.max(maxKl, kl);
        }
        return new MergeError(merged.length, maxAbs, merged.length == 0 ? 0 : sumKl / merged.length, maxKl);
    }

    public String describe() {
        return String.format(Locale.ROOT, "max |Δlogit| %.4g, KL(merged ‖ unmerged) mean %.4g, max %.4g nats over %d positions",
                maxAbsLogit, meanKl, maxKl, positions);
    }
}

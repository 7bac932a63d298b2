package io.lora4j.model.train;

import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * AdaLoRA's rank allocation (PEFT's {@code RankAllocator} and {@code AdaLoraModel.update_and_allocate},
 * peft/tuners/adalora/{layer,model}.py), run by the {@link Trainer} after every optimizer step.
 * <ul>
 *   <li>Importance of every element w of A, E and B from the step's gradient:
 *       {@code I = |w·∇w|}, sensitivity {@code Ī ← β1·Ī + (1−β1)·I}, uncertainty
 *       {@code Ū ← β2·Ū + (1−β2)·|I − Ī|} (with the new Ī), score {@code s = Ī·Ū}.</li>
 *   <li>Score of triplet i of a module: {@code s(E_i) + mean_n s(A_in) + mean_o s(B_oi)}.</li>
 *   <li>Budget (triplets over all modules) at global step t (0-based: the optimizer steps done before
 *       this one, as in PEFT's example loop): b0 = Σ ranks for t ≤ tinit (no masking),
 *       {@code ⌊(b0 − bT)·(1 − (t − tinit)/(T − tfinal − tinit))³ + bT⌋} until T − tfinal with
 *       masking when t % deltaT = 0, bT = target_r·modules afterwards.</li>
 *   <li>Masking to budget b: the {@code k = b0 − b} smallest scores are cut, i.e. every triplet with
 *       a score ≤ the k-th smallest (ties at the threshold are all cut, as PEFT's {@code <=}) gets
 *       E_i = 0 and rank_pattern false. Cut triplets may regrow (the optimizer still moves them)
 *       until they are cut again.</li>
 *   <li>For t &lt; T − tfinal: update the scores, then mask when the schedule says so. At t = T − tfinal:
 *       mask to bT without updating (PEFT's {@code force_mask}) and reset the scores. For t &gt; T − tfinal:
 *       re-apply that final rank pattern (the final fine-tuning phase).</li>
 * </ul>
 * Differs from PEFT where PEFT fails: masking with k ≤ 0 (e.g. target_r = init_r) cuts nothing
 * instead of raising in {@code torch.kthvalue}.
 * Glossary: b0 initial budget, bT target budget, T total_step, k triplets cut.
 */
public final class RankAllocator {

    /** The budget at a step and whether that step masks. */
    public record Budget(int budget, boolean mask) {
    }

    private final LoraAdapter adapter;
    private final AdaLoraConfig cfg;
    private final List<LoraLayer> layers;
    private final int initBudget;
    private final int targetBudget;
    /** Per layer, per factor (0 A, 1 E, 2 B): the sensitivity Ī and uncertainty Ū EMAs, shaped like the factor. */
    private final float[][][] avgIpt;
    private final float[][][] avgUnc;

    public RankAllocator(LoraAdapter adapter) {
        if (adapter.adaLora() == null) {
            throw new IllegalArgumentException("adapter " + adapter.name() + " is not an AdaLoRA adapter");
        }
        this.adapter = adapter;
        this.cfg = adapter.adaLora();
        this.layers = adapter.layers();
        int b0 = 0;
        for (LoraLayer l : layers) {
            b0 += l.r;
        }
        initBudget = b0;
        targetBudget = cfg.targetR() * layers.size();
        avgIpt = new float[layers.size()][][];
        avgUnc = new float[layers.size()][][];
        for (int i = 0; i < layers.size(); i++) {
            LoraLayer l = layers.get(i);
            avgIpt[i] = new float[][]{new float[l.a.len()], new float[l.e.len()], new float[l.b.len()]};
            avgUnc[i] = new float[][]{new float[l.a.len()], new float[l.e.len()], new float[l.b.len()]};
        }
    }

    public int initBudget() {
        return initBudget;
    }

    public int targetBudget() {
        return targetBudget;
    }

    /** PEFT's {@code budget_schedule} at global step {@code step}, in PEFT's double arithmetic. */
    public static Budget schedule(int step, int b0, int bT, int tinit, int tfinal, int totalStep, int deltaT) {
        if (step <= tinit) {
            return new Budget(b0, false);
        }
        if (step > totalStep - tfinal) {
            return new Budget(bT, true);
        }
        double mul = 1 - (double) (step - tinit) / (totalStep - tfinal - tinit);
        return new Budget((int) ((b0 - bT) * Math.pow(mul, 3) + bT), step % deltaT == 0);
    }

    public Budget schedule(int step) {
        return schedule(step, initBudget, targetBudget, cfg.tinit(), cfg.tfinal(), cfg.totalStep(), cfg.deltaT());
    }

    /**
     * The allocation step after optimizer step {@code step} (0-based), with the gradients of that step
     * still in the layers. Returns the budget in force afterwards.
     */
    public int updateAndAllocate(int step) {
        int end = cfg.totalStep() - cfg.tfinal();
        if (step < end) {
            updateImportance();
            Budget b = schedule(step);
            if (b.mask()) {
                maskToBudget(b.budget());
            }
            return b.budget();
        }
        if (step == end) {
            maskToBudget(targetBudget);
            for (int i = 0; i < layers.size(); i++) {
                for (int f = 0; f < 3; f++) {
                    Arrays.fill(avgIpt[i][f], 0f);
                    Arrays.fill(avgUnc[i][f], 0f);
                }
            }
        } else {
            maskWithPattern();
        }
        return targetBudget;
    }

    /** Updates Ī and Ū of every element of A, E, B from |w·∇w| (PEFT's {@code update_ipt}). */
    void updateImportance() {
        float b1 = cfg.beta1(), b2 = cfg.beta2();
        for (int i = 0; i < layers.size(); i++) {
            LoraLayer l = layers.get(i);
            io.lora4j.model.lora.ParamStore.View[] t = {l.a, l.e, l.b};
            float[] w = l.values(), g = l.grads();
            for (int f = 0; f < 3; f++) {
                float[] ipt = avgIpt[i][f], unc = avgUnc[i][f];
                int off = t[f].off();
                for (int j = 0; j < t[f].len(); j++) {
                    float now = Math.abs(w[off + j] * g[off + j]);
                    ipt[j] = b1 * ipt[j] + (1 - b1) * now;
                    unc[j] = b2 * unc[j] + (1 - b2) * Math.abs(now - ipt[j]);
                }
            }
        }
    }

    /** Each layer's triplet scores: {@code s(E_j) + (mean_n s(A_jn) + mean_o s(B_oj))}. */
    float[][] tripletScores() {
        float[][] out = new float[layers.size()][];
        for (int i = 0; i < layers.size(); i++) {
            LoraLayer l = layers.get(i);
            float[] s = new float[l.r];
            for (int j = 0; j < l.r; j++) {
                double sa = 0;
                for (int n = 0; n < l.in; n++) {
                    sa += (double) avgIpt[i][0][j * l.in + n] * avgUnc[i][0][j * l.in + n];
                }
                double sb = 0;
                for (int o = 0; o < l.out; o++) {
                    sb += (double) avgIpt[i][2][o * l.r + j] * avgUnc[i][2][o * l.r + j];
                }
                float ab = (float) (sa / l.in) + (float) (sb / l.out);
                s[j] = avgIpt[i][1][j] * avgUnc[i][1][j] + ab;
            }
            out[i] = s;
        }
        return out;
    }

    /** Cuts the {@code initBudget − budget} lowest-scored triplets (ties at the threshold included); sets the rank pattern. */
    void maskToBudget(int budget) {
        float[][] scores = tripletScores();
        int k = initBudget - budget;
        float threshold = Float.NEGATIVE_INFINITY;
        if (k > 0) {
            float[] all = new float[initBudget];
            int n = 0;
            for (float[] s : scores) {
                System.arraycopy(s, 0, all, n, s.length);
                n += s.length;
            }
            Arrays.sort(all);
            threshold = all[k - 1]; // torch.kthvalue(k): the k-th smallest
        }
        Map<String, boolean[]> pattern = new LinkedHashMap<>();
        for (int i = 0; i < layers.size(); i++) {
            LoraLayer l = layers.get(i);
            boolean[] keep = new boolean[l.r];
            for (int j = 0; j < l.r; j++) {
                keep[j] = !(scores[i][j] <= threshold);
                if (!keep[j]) {
                    l.e.set(j, 0f);
                }
            }
            pattern.put(l.path(), keep);
        }
        adapter.setRankPattern(pattern);
    }

    /** Zeroes E wherever the adapter's rank pattern cuts (PEFT's {@code mask_using_rank_pattern}). */
    void maskWithPattern() {
        Map<String, boolean[]> pattern = adapter.rankPattern();
        if (pattern == null) {
            return;
        }
        for (LoraLayer l : layers) {
            boolean[] keep = pattern.get(l.path());
            for (int j = 0; keep != null && j < l.r; j++) {
                if (!keep[j]) {
                    l.e.set(j, 0f);
                }
            }
        }
    }

    /** Triplets the current rank pattern keeps (the initial budget before any allocation). */
    public int keptTriplets() {
        Map<String, boolean[]> pattern = adapter.rankPattern();
        if (pattern == null) {
            return initBudget;
        }
        int n = 0;
        for (LoraLayer l : layers) {
            boolean[] keep = pattern.get(l.path());
            n += keep == null ? l.r : LoraAdapter.kept(keep);
        }
        return n;
    }

    /** The EMAs as named tensors ({@code <module>.lora_{A,E,B}.exp_avg_{ipt,unc}}), for checkpoints; the arrays themselves. */
    Map<String, float[]> state() {
        Map<String, float[]> m = new LinkedHashMap<>();
        String[] names = {"lora_A", "lora_E", "lora_B"};
        for (int i = 0; i < layers.size(); i++) {
            for (int f = 0; f < 3; f++) {
                String k = layers.get(i).path() + "." + names[f];
                m.put(k + ".exp_avg_ipt", avgIpt[i][f]);
                m.put(k + ".exp_avg_unc", avgUnc[i][f]);
            }
        }
        return m;
    }
}

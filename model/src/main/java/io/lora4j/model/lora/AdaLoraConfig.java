package io.lora4j.model.lora;

import java.util.List;
import java.util.Map;

/**
 * PEFT's {@code AdaLoraConfig} (peft/tuners/adalora/config.py): a {@link LoraConfig} for the fields
 * the two share (lora_alpha, lora_dropout, target_modules, layers_to_transform, init_lora_weights,
 * modules_to_save; its r is init_r) and the rank allocator's settings. Budgets count singular
 * triplets (A row, E entry, B column) over all adapted modules: {@code init_r·modules} at first,
 * {@code target_r·modules} at the end. lora_alpha must be positive (PEFT falls back to the rank
 * for lora_alpha ≤ 0).
 * <p>
 * Like PEFT: scaling is {@code lora_alpha / (init_r + 1e-5)} for every module (PEFT's
 * {@code scaling = lora_alpha} divided by {@code ranknum + 1e-5}, ranknum = init_r even after
 * pruning); {@code r}, {@code use_rslora}, {@code alpha_pattern} do not apply (rejected here rather
 * than ignored), and {@code rank_pattern} is not a setting but the allocator's result (see
 * {@link LoraAdapter#rankPattern()}). Stricter than PEFT: {@code target_r ≤ init_r}, both ≥ 1.
 *
 * @param lora          the shared LoRA fields, with {@code r = init_r}
 * @param initR         initial rank of every module
 * @param targetR       average rank at the end
 * @param tinit         warm-up steps without pruning
 * @param tfinal        final steps with the budget fixed
 * @param deltaT        steps between two allocations in the budgeting phase
 * @param beta1         EMA coefficient of the sensitivity
 * @param beta2         EMA coefficient of the uncertainty
 * @param orthRegWeight weight of the orthogonal regulariser in the loss
 * @param totalStep     optimizer steps the schedule spans (required)
 */
public record AdaLoraConfig(LoraConfig lora, int initR, int targetR, int tinit, int tfinal, int deltaT, float beta1,
                            float beta2, float orthRegWeight, Integer totalStep) {

    public AdaLoraConfig {
        if (lora.useDora()) {
            throw new IllegalArgumentException("ADALORA does not support DoRA."); // PEFT's AdaLoraConfig
        }
        if (initR < 1) {
            throw new IllegalArgumentException("init_r must be >= 1, got " + initR);
        }
        if (targetR < 1) {
            throw new IllegalArgumentException("target_r must be >= 1, got " + targetR);
        }
        if (targetR > initR) {
            throw new IllegalArgumentException("target_r (" + targetR + ") is larger than init_r (" + initR
                    + "): AdaLoRA only prunes ranks, so target_r must be <= init_r");
        }
        if (totalStep == null || totalStep <= 0) {
            throw new IllegalArgumentException("AdaLoRA needs total_step > 0, the optimizer steps the budget schedule spans"
                    + (totalStep == null ? "; it is missing" : ", got " + totalStep));
        }
        if (tinit < 0 || tfinal < 0) {
            throw new IllegalArgumentException("tinit and tfinal must be >= 0, got " + tinit + " and " + tfinal);
        }
        if (tinit >= totalStep - tfinal) {
            throw new IllegalArgumentException("tinit (" + tinit + ") must be < total_step - tfinal (" + totalStep + " - "
                    + tfinal + " = " + (totalStep - tfinal) + "): the schedule leaves no budgeting phase; "
                    + "decrease tinit or tfinal or increase total_step");
        }
        if (deltaT < 1) {
            throw new IllegalArgumentException("deltaT must be >= 1, got " + deltaT);
        }
        if (!(beta1 > 0 && beta1 < 1) || !(beta2 > 0 && beta2 < 1)) {
            throw new IllegalArgumentException("beta1 and beta2 must be in (0, 1), got " + beta1 + " and " + beta2);
        }
        if (!(orthRegWeight >= 0)) {
            throw new IllegalArgumentException("orth_reg_weight must be >= 0, got " + orthRegWeight);
        }
        if (lora.r() != initR) {
            throw new IllegalArgumentException("the LoRA fields of an AdaLoRA config must have r = init_r (" + initR + "), got " + lora.r());
        }
        if (lora.useRslora() || !lora.rankPattern().isEmpty() || !lora.alphaPattern().isEmpty()) {
            throw new IllegalArgumentException("use_rslora, rank_pattern and alpha_pattern do not apply to AdaLoRA "
                    + "(its scaling is lora_alpha / init_r and its ranks are allocated during training)");
        }
        if (!(lora.loraAlpha() > 0)) {
            throw new IllegalArgumentException("lora_alpha must be > 0 for AdaLoRA, got " + lora.loraAlpha());
        }
        if (lora.bias().equals("lora_only")) {
            throw new IllegalArgumentException("bias lora_only is not supported by AdaLoRA (its layers have no lora_B bias)");
        }
    }

    /** An AdaLoRA config over the shared fields of {@code base} (its r, rank and alpha patterns and rsLoRA are replaced). */
    public static AdaLoraConfig of(LoraConfig base, int initR, int targetR, int tinit, int tfinal, int deltaT, float beta1,
                                   float beta2, float orthRegWeight, Integer totalStep) {
        if (initR < 1) {
            throw new IllegalArgumentException("init_r must be >= 1, got " + initR);
        }
        LoraConfig lora = new LoraConfig(initR, base.loraAlpha(), base.loraDropout(), base.targetModules(), base.targetRegex(),
                base.bias(), false, base.initLoraWeights(), base.layersToTransform(), Map.of(), Map.of(), base.modulesToSave(),
                base.useDora());
        return new AdaLoraConfig(lora, initR, targetR, tinit, tfinal, deltaT, beta1, beta2, orthRegWeight, totalStep);
    }

    /** PEFT's defaults (init_r 12, target_r 8, tinit 0, tfinal 0, deltaT 1, betas 0.85, orth_reg_weight 0.5). */
    public static AdaLoraConfig defaults(float alpha, List<String> targets, int totalStep) {
        return of(LoraConfig.of(12, alpha, targets), 12, 8, 0, 0, 1, 0.85f, 0.85f, 0.5f, totalStep);
    }

    /** The scaling of every module: {@code lora_alpha / (init_r + 1e-5)}, in float as PEFT's float32 ranknum. */
    public float scaling() {
        return lora.loraAlpha() / (initR + 1e-5f);
    }
}

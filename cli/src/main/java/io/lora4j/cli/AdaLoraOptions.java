package io.lora4j.cli;

import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.LoraConfig;
import picocli.CommandLine.Option;

/** PEFT's AdaLoraConfig fields as options (same names, dashes for underscores), for {@code train --method adalora}. */
public final class AdaLoraOptions {
    @Option(names = "--init-r", defaultValue = "12", description = "AdaLoRA: initial rank of every module (default ${DEFAULT-VALUE}).")
    int initR;
    @Option(names = "--target-r", defaultValue = "8", description = "AdaLoRA: average rank at the end (default ${DEFAULT-VALUE}).")
    int targetR;
    @Option(names = "--tinit", defaultValue = "0", description = "AdaLoRA: warm-up steps before pruning (default ${DEFAULT-VALUE}).")
    int tinit;
    @Option(names = "--tfinal", defaultValue = "0", description = "AdaLoRA: final steps with the budget fixed (default ${DEFAULT-VALUE}).")
    int tfinal;
    @Option(names = "--delta-t", defaultValue = "1", description = "AdaLoRA: steps between two allocations (default ${DEFAULT-VALUE}).")
    int deltaT;
    @Option(names = "--beta1", defaultValue = "0.85", description = "AdaLoRA: EMA coefficient of the sensitivity (default ${DEFAULT-VALUE}).")
    float beta1;
    @Option(names = "--beta2", defaultValue = "0.85", description = "AdaLoRA: EMA coefficient of the uncertainty (default ${DEFAULT-VALUE}).")
    float beta2;
    @Option(names = "--orth-reg-weight", defaultValue = "0.5", description = "AdaLoRA: weight of the orthogonal regulariser (default ${DEFAULT-VALUE}).")
    float orthRegWeight;
    @Option(names = "--total-step", paramLabel = "N", description = "AdaLoRA: optimizer steps the budget schedule spans (default: --steps).")
    Integer totalStep;

    /** The AdaLoRA config over the shared LoRA fields of {@code lora}; total_step defaults to {@code steps}. */
    AdaLoraConfig config(LoraConfig lora, int steps) {
        if (lora.useRslora() || !lora.rankPattern().isEmpty() || !lora.alphaPattern().isEmpty()) {
            throw new IllegalArgumentException("--method adalora: --use-rslora, --rank-pattern and --alpha-pattern do not apply "
                    + "to AdaLoRA (its scaling is lora_alpha / init_r; its ranks are allocated during training)");
        }
        try {
            return AdaLoraConfig.of(lora, initR, targetR, tinit, tfinal, deltaT, beta1, beta2, orthRegWeight,
                    totalStep != null ? totalStep : steps);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--method adalora: " + e.getMessage(), e);
        }
    }
}

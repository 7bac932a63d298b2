package io.lora4j.model.train;

/**
 * Trainer settings (names as in transformers' TrainingArguments where one exists).
 *
 * @param optimizer      "adamw" or "sgd"
 * @param lr             peak learning rate
 * @param weightDecay    decoupled weight decay
 * @param beta1          AdamW β1 (SGD: momentum)
 * @param beta2          AdamW β2
 * @param eps            AdamW ε
 * @param schedule       "constant", "linear" or "cosine"
 * @param warmupSteps    linear warm-up steps
 * @param steps          optimizer steps
 * @param batchSize      sequences per micro-batch
 * @param gradAccum      micro-batches per optimizer step
 * @param maxGradNorm    global-norm clipping threshold (0 = off)
 * @param seqLen         longest sequence
 * @param seed           seeds data order and dropout
 * @param shuffle        reshuffle the examples every epoch
 * @param checkpointing  gradient checkpointing
 * @param evalEvery      evaluate every N steps (0 = only at the end)
 * @param loraplusLrRatio LoRA+ (PEFT's {@code create_loraplus_optimizer}): lora_B's learning rate is this times
 *                       lr ({@link ParamGroups}); 0 = off, one learning rate for every tensor
 */
public record TrainConfig(String optimizer, float lr, float weightDecay, float beta1, float beta2, float eps,
                          String schedule, int warmupSteps, int steps, int batchSize, int gradAccum, float maxGradNorm,
                          int seqLen, long seed, boolean shuffle, boolean checkpointing, int evalEvery,
                          float loraplusLrRatio) {
    public TrainConfig {
        if (!optimizer.equals("adamw") && !optimizer.equals("sgd")) {
            throw new IllegalArgumentException("optimizer must be adamw or sgd, got '" + optimizer + "'");
        }
        if (steps < 1 || batchSize < 1 || gradAccum < 1 || seqLen < 2) {
            throw new IllegalArgumentException("steps, batch size and gradient accumulation must be >= 1, seq-len >= 2");
        }
        if (maxGradNorm < 0 || weightDecay < 0 || warmupSteps < 0 || evalEvery < 0) {
            throw new IllegalArgumentException("max-grad-norm, weight decay, warmup and eval-every must be >= 0");
        }
        if (!(loraplusLrRatio >= 0) || Float.isInfinite(loraplusLrRatio)) {
            throw new IllegalArgumentException("loraplus_lr_ratio must be a positive number (0 = LoRA+ off), got " + loraplusLrRatio);
        }
        new Schedule(schedule, lr, warmupSteps, steps); // validates
    }

    public static TrainConfig defaults(int steps) {
        return new TrainConfig("adamw", 1e-3f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, steps, 1, 1, 1f, 256, 42,
                true, false, 0, 0f);
    }

    /** These settings with LoRA+'s learning-rate ratio (0 = off). */
    public TrainConfig withLoraplusLrRatio(float ratio) {
        return new TrainConfig(optimizer, lr, weightDecay, beta1, beta2, eps, schedule, warmupSteps, steps, batchSize, gradAccum,
                maxGradNorm, seqLen, seed, shuffle, checkpointing, evalEvery, ratio);
    }

    public Schedule lrSchedule() {
        return new Schedule(schedule, lr, warmupSteps, steps);
    }
}

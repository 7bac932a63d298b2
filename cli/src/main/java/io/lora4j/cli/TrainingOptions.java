package io.lora4j.cli;

import io.lora4j.model.train.TrainConfig;
import picocli.CommandLine.Option;

/** Trainer settings as options (transformers' TrainingArguments names where they exist). */
public final class TrainingOptions {
    @Option(names = "--optimizer", defaultValue = "adamw", description = "adamw or sgd (default ${DEFAULT-VALUE}).")
    String optimizer;
    @Option(names = {"--lr", "--learning-rate"}, defaultValue = "1e-3", description = "Peak learning rate (default ${DEFAULT-VALUE}).")
    float lr;
    @Option(names = "--weight-decay", defaultValue = "0", description = "Decoupled weight decay (default ${DEFAULT-VALUE}).")
    float weightDecay;
    @Option(names = "--adam-beta1", defaultValue = "0.9", description = "AdamW beta1 (default ${DEFAULT-VALUE}).")
    float beta1;
    @Option(names = "--adam-beta2", defaultValue = "0.999", description = "AdamW beta2 (default ${DEFAULT-VALUE}).")
    float beta2;
    @Option(names = "--adam-epsilon", defaultValue = "1e-8", description = "AdamW epsilon (default ${DEFAULT-VALUE}).")
    float eps;
    @Option(names = "--momentum", defaultValue = "0", description = "SGD momentum (default ${DEFAULT-VALUE}).")
    float momentum;
    @Option(names = "--lr-scheduler", defaultValue = "constant", description = "constant, linear or cosine (default ${DEFAULT-VALUE}).")
    String schedule;
    @Option(names = "--warmup-steps", defaultValue = "0", description = "Linear warm-up steps (default ${DEFAULT-VALUE}).")
    int warmup;
    @Option(names = "--steps", defaultValue = "100", description = "Optimizer steps (default ${DEFAULT-VALUE}).")
    int steps;
    @Option(names = "--batch-size", defaultValue = "1", description = "Sequences per micro-batch (default ${DEFAULT-VALUE}).")
    int batchSize;
    @Option(names = "--grad-accum", defaultValue = "1", description = "Micro-batches per optimizer step (default ${DEFAULT-VALUE}).")
    int gradAccum;
    @Option(names = "--max-grad-norm", defaultValue = "1.0", description = "Global-norm clipping, 0 = off (default ${DEFAULT-VALUE}).")
    float maxGradNorm;
    @Option(names = "--seq-len", defaultValue = "256", description = "Tokens per sequence (default ${DEFAULT-VALUE}).")
    int seqLen;
    @Option(names = "--seed", defaultValue = "42", description = "Seeds init, data order and dropout (default ${DEFAULT-VALUE}).")
    long seed;
    @Option(names = "--no-shuffle", description = "Keep the data in file order.")
    boolean noShuffle;
    @Option(names = "--gradient-checkpointing", description = "Keep only layer inputs; recompute in backward (less memory).")
    boolean checkpointing;
    @Option(names = "--eval-every", defaultValue = "0", description = "Evaluate every N steps, 0 = at the end (default ${DEFAULT-VALUE}).")
    int evalEvery;

    @Option(names = "--loraplus-lr-ratio", paramLabel = "R", description = "LoRA+ (PEFT's create_loraplus_optimizer): "
            + "lora_B (and its bias) learn at R times --lr; --weight-decay then skips lora_B's bias. PEFT suggests R >= 1 "
            + "(the paper: 16) with an --lr about half of plain LoRA's. Default: off.")
    Float loraplusLrRatio;
    @Option(names = "--loraplus-lr-embedding", paramLabel = "LR", description = "PEFT's learning rate for LoRA layers on "
            + "embedding modules; lora4j adapts none (refused with the reason).")
    Float loraplusLrEmbedding;

    public TrainConfig config() {
        boolean sgd = optimizer.equals("sgd");
        if (loraplusLrEmbedding != null) {
            throw new IllegalArgumentException("--loraplus-lr-embedding is the learning rate PEFT gives LoRA layers on embedding "
                    + "modules (lora_embedding_A/B); lora4j adapts only the seven projections, so no tensor would take it "
                    + "(embed_tokens in --modules-to-save is trained in full and, as in PEFT, learns at --lr)");
        }
        if (loraplusLrRatio != null && !(loraplusLrRatio > 0)) {
            throw new IllegalArgumentException("--loraplus-lr-ratio must be > 0, got " + loraplusLrRatio);
        }
        return new TrainConfig(optimizer, lr, weightDecay, sgd ? momentum : beta1, beta2, eps, schedule, warmup, steps,
                batchSize, gradAccum, maxGradNorm, seqLen, seed, !noShuffle, checkpointing, evalEvery,
                loraplusLrRatio == null ? 0f : loraplusLrRatio);
    }
}

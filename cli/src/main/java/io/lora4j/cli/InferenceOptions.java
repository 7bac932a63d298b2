package io.lora4j.cli;

import picocli.CommandLine.Option;

/** Context and prompt-batch sizes for commands that run inference. */
public final class InferenceOptions {
    @Option(names = {"-c", "--ctx-size"}, defaultValue = "4096", paramLabel = "N",
            description = "Maximum context (capped by the model's), default ${DEFAULT-VALUE}.")
    int ctxSize;

    @Option(names = {"-b", "--batch-size"}, defaultValue = "128", paramLabel = "N",
            description = "Prompt tokens processed per batched forward, default ${DEFAULT-VALUE}.")
    int batchSize;

    void validate() {
        if (batchSize < 1 || ctxSize < 1) {
            throw new IllegalArgumentException("--batch-size and --ctx-size must be >= 1");
        }
    }
}

package io.lora4j.model.tokenizer;

import io.lora4j.model.format.Fuzzing;

import java.nio.file.Path;

/** Fuzz target: a llama2.c {@code tokenizer.bin} (max length, then score, length, bytes per token), then encoding with it. */
public final class Llama2cTokenizerFuzz {
    private static final Path NAME = Path.of("tokenizer.bin");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> Fuzzing.exercise(Tokenizers.fromLlama2cBin(NAME, data)));
    }
}

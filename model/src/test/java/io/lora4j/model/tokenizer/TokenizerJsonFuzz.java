package io.lora4j.model.tokenizer;

import io.lora4j.model.format.Fuzzing;

import java.nio.file.Path;

/** Fuzz target: a Hugging Face {@code tokenizer.json} (vocabulary, merges, added tokens, pre-tokenizer regex), then encoding with it. */
public final class TokenizerJsonFuzz {
    private static final Path NAME = Path.of("tokenizer.json");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> Fuzzing.exercise(Tokenizers.fromHfTokenizerJson(NAME, data, null)));
    }
}

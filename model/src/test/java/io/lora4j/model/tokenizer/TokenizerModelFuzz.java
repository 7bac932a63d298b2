package io.lora4j.model.tokenizer;

import io.lora4j.model.format.Fuzzing;

import java.nio.file.Path;

/** Fuzz target: a {@code tokenizer.model} — SentencePiece protobuf, or tiktoken text (told apart by content) — then encoding with it. */
public final class TokenizerModelFuzz {
    private static final Path NAME = Path.of("tokenizer.model");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> Fuzzing.exercise(Tokenizers.fromBytes(NAME, "tokenizer.model", data, null)));
    }
}

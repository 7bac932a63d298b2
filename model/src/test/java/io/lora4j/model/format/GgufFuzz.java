package io.lora4j.model.format;

import io.lora4j.model.Llama;
import io.lora4j.model.tokenizer.Tokenizers;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/** Fuzz target: a GGUF file — header, metadata, tensor infos, the Llama config, the tokenizer in its metadata, the model's weights. */
public final class GgufFuzz {
    private static final Path NAME = Path.of("fuzz.gguf");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> {
            try (Arena arena = Arena.ofConfined()) {
                GgufFile g = GgufFile.parse(NAME, arena, MemorySegment.ofArray(data));
                if (g.metadata().containsKey("tokenizer.ggml.tokens")) {
                    Fuzzing.exercise(Tokenizers.fromGgufMetadata(g.metadata(), NAME));
                }
                if (g.metadata().containsKey("general.architecture")) {
                    new Llama(g);
                }
            }
        });
    }
}

package io.lora4j.model.format;

import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/** Fuzz target: an Arrow model (lora4j's weight store) — footer, schema, record batches, config, metadata, embedded tokenizer. */
public final class ArrowModelFuzz {
    private static final Path NAME = Path.of("fuzz.arrow");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> {
            try (Arena arena = Arena.ofConfined()) {
                ArrowModel m = ArrowModel.parse(NAME, arena, MemorySegment.ofArray(data));
                m.metadata();
                if (m.embeddedTokenizer() != null || m.metadata().containsKey("tokenizer.ggml.tokens")) {
                    Fuzzing.exercise(LoadedModel.findTokenizer(m));
                }
                new Llama(m);
            }
        });
    }
}

package io.lora4j.model.format;

import io.lora4j.model.Llama;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/** Fuzz target: a llama2.c checkpoint — the 7-integer header against the file's size, the tensors it implies, the model. */
public final class Llama2cFuzz {
    private static final Path NAME = Path.of("fuzz.bin");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> {
            try (Arena arena = Arena.ofConfined()) {
                new Llama(Llama2cFile.parse(NAME, arena, MemorySegment.ofArray(data)));
            }
        });
    }
}

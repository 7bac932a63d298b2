package io.lora4j.model.train;

import io.lora4j.model.format.Fuzzing;

import java.nio.file.Path;

/**
 * Fuzz target: an Arrow IPC training file or stream (Hugging Face datasets' cache format): framing,
 * schema, record batches and their columns, read by Arrow Java after {@link ArrowFraming}'s checks.
 */
public final class ArrowDatasetFuzz {
    private static final Path NAME = Path.of("fuzz.arrow");

    public static void fuzzerInitialize() {
        JsonlDatasetFuzz.fuzzerInitialize();
    }

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> JsonlDatasetFuzz.check(Datasets.load(NAME, data, JsonlDatasetFuzz.TOK, 16)));
    }
}

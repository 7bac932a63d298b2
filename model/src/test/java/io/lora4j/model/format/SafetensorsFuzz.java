package io.lora4j.model.format;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Weight;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;

/** Fuzz target: a safetensors file — the length-prefixed JSON header, dtypes, shapes and offsets; every tensor decoded. */
public final class SafetensorsFuzz {
    private static final Path NAME = Path.of("fuzz.safetensors");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> {
            try (Arena arena = Arena.ofConfined()) {
                SafetensorsFile f = SafetensorsFile.parse(NAME, arena, false, MemorySegment.ofArray(data));
                for (TensorInfo t : f.tensors().values()) {
                    long n = t.elementCount();
                    if (n > 0 && n <= 1 << 16) {
                        float[] row = new float[(int) n];
                        Dequant.row(new Weight(t.name(), t.type(), t.data(), 1, (int) n), 0, row, 0);
                    }
                    f.fileShape(t.name());
                }
            }
        });
    }
}

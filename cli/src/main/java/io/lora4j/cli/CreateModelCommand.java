package io.lora4j.cli;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.format.RandomModel;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code lora4j create-model}: a random-weight Llama GGUF for benchmarks (nothing is downloaded). */
@Command(name = "create-model", mixinStandardHelpOptions = true,
        description = "Write a random-weight Llama GGUF (presets tiny, 110m, 1b) with the Llama 2 tokenizer, for benchmarks.")
final class CreateModelCommand implements Callable<Integer> {
    @Option(names = "--preset", defaultValue = "110m", description = "tiny, 110m (stories110M shapes) or 1b (TinyLlama-1.1B shapes); default ${DEFAULT-VALUE}.")
    String preset;

    @Option(names = "--type", defaultValue = "f16", description = "f32, f16, bf16, q8_0 or q4_0 (default ${DEFAULT-VALUE}).")
    String type;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "FILE", description = "Output .gguf file.")
    Path out;

    @Option(names = "--seed", defaultValue = "1", description = "Random seed (default ${DEFAULT-VALUE}).")
    long seed;

    @Option(names = "--tokenizer-from", paramLabel = "GGUF", description = "Copy the tokenizer.* metadata of this GGUF "
            + "(default: the Llama 2 vocabulary in ../shared/models/llama-2-tiny-random-gguf).")
    Path tokenizerFrom;

    @Override
    public Integer call() throws IOException {
        RandomModel.Preset p = RandomModel.Preset.of(preset);
        GgmlType t;
        try {
            t = GgmlType.valueOf(type.toUpperCase(Locale.ROOT));
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("unknown --type '" + type + "' (f32, f16, bf16, q8_0, q4_0)");
        }
        Path tokSource = tokenizerFrom;
        if (tokSource == null) {
            String home = System.getProperty("lora4j.home", ".");
            tokSource = RandomModel.defaultTokenizerGguf(Path.of(home).resolve("../shared").normalize());
        }
        long t0 = System.nanoTime();
        RandomModel.write(out, p, t, seed, RandomModel.tokenizerMetadata(tokSource));
        System.err.printf(Locale.ROOT, "wrote %s: %s %s, %.1f MiB in %.1f s%n", out, preset, t, Files.size(out) / 1048576.0,
                (System.nanoTime() - t0) / 1e9);
        return 0;
    }
}

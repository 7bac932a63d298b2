package io.lora4j.model.lora;

import io.lora4j.model.Llama;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.Fuzzing;
import io.lora4j.model.format.SafetensorsFile;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

/**
 * Fuzz target: {@code adapter_config.json} — every key PEFT's loaders read (LoRA and AdaLoRA), then
 * the adapter it describes built on a tiny base and filled from a fixed weights file (a q/v LoRA
 * of rank 2): ranks, targets, regexes, patterns, initialisations (PiSSA and OLoRA decompose the
 * base) and modules to save all reach the loader.
 */
public final class AdapterConfigFuzz {
    private static final Path CONFIG = Path.of("adapter_config.json");
    private static Llama BASE;
    private static SafetensorsFile WEIGHTS;

    /** Called once by Jazzer before the first input, outside the per-input timeout. */
    public static void fuzzerInitialize() {
        if (WEIGHTS != null) {
            return;
        }
        BASE = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 1, false));
        try {
            Path dir = Files.createTempDirectory("lora4j-fuzz-adapter");
            PeftAdapters.save(new LoraAdapter("default", LoraConfig.of(2, 4f, List.of("q_proj", "v_proj")), BASE, 1), BASE, dir);
            WEIGHTS = SafetensorsFile.open(dir.resolve(PeftAdapters.WEIGHTS));
        } catch (java.io.IOException e) {
            throw new java.io.UncheckedIOException(e);
        }
    }

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        // a fresh base each time: PiSSA/OLoRA configs replace the base's projections with their residuals
        Llama base = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 1, false));
        Fuzzing.typed(() -> PeftAdapters.load(PeftAdapters.parseConfig(CONFIG, data), CONFIG, WEIGHTS, base, "fuzz", null));
    }
}

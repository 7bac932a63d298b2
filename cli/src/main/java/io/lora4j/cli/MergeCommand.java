package io.lora4j.cli;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.MergedExport;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code lora4j merge}: merge_and_unload — the base with its adapters folded in, written as GGUF or a Hugging Face directory. */
@Command(name = "merge", mixinStandardHelpOptions = true,
        description = "Merge LoRA adapters into the base weights and export the result as GGUF (*.gguf) or a Hugging Face directory.")
final class MergeCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--adapter", required = true, paramLabel = "DIR", description = "PEFT adapter directory (repeatable; merged in order).")
    List<Path> adapters;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "PATH", description = "Output: a .gguf file, or a directory for Hugging Face safetensors.")
    Path out;

    @Option(names = "--type", defaultValue = "f32", description = "f32 or f16 for the merged matrices (default ${DEFAULT-VALUE}).")
    String type;

    @Override
    public Integer call() throws IOException {
        GgmlType t = switch (type.toLowerCase(Locale.ROOT)) {
            case "f32" -> GgmlType.F32;
            case "f16" -> GgmlType.F16;
            default -> throw new IllegalArgumentException("--type must be f32 or f16, got '" + type + "'");
        };
        try (LoadedModel lm = modelOptions.open()) {
            for (Path a : adapters) {
                LoraAdapter ad = PeftAdapters.load(a, lm.llama(), a.getFileName().toString());
                lm.llama().merge(ad);
                System.err.println("merged " + a + " (" + ad.layers().size() + " projections)");
            }
            if (out.getFileName().toString().endsWith(".gguf")) {
                MergedExport.writeGguf(lm.llama(), out, t);
            } else {
                MergedExport.writeHf(lm.llama(), out, t);
                System.err.println("note: the tokenizer is not exported to the Hugging Face directory; pass --tokenizer when loading it");
            }
            System.err.println("wrote " + out);
        }
        return 0;
    }
}

package io.lora4j.cli;

import io.lora4j.model.Llama;
import io.lora4j.model.MergedExport;
import io.lora4j.model.format.ArrowModel;
import io.lora4j.model.format.ModelFiles;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code lora4j convert}: any model lora4j reads → one Arrow IPC file that opens in place (see {@link ArrowModel}). */
@Command(name = "convert", mixinStandardHelpOptions = true,
        description = "Convert a model (GGUF, Hugging Face directory, llama2.c .bin or Arrow; optionally with LoRA adapters merged in) "
                + "to one Arrow IPC file holding every tensor, the config and the tokenizer, memory-mapped and used in place when loaded.")
final class ConvertCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "FILE", description = "Output Arrow file (e.g. model.arrow).")
    Path out;

    @Option(names = "--adapter", paramLabel = "DIR", description = "PEFT adapter directory merged into the weights first (repeatable; "
            + "merged matrices are stored as F32).")
    List<Path> adapters = List.of();

    @Override
    public Integer call() throws IOException {
        if (Files.isDirectory(out)) {
            throw new IllegalArgumentException("--out " + out + " is a directory; give a file name such as model.arrow");
        }
        long t0 = System.nanoTime();
        Path from = modelOptions.modelPath();
        try (WeightSource src = ModelFiles.open(from)) {
            Llama m = new Llama(src);
            for (Path a : adapters) {
                LoraAdapter ad = PeftAdapters.load(a, m, a.getFileName().toString());
                m.merge(ad);
                System.err.println("merged " + a + " (" + ad.layers().size() + " projections)");
            }
            MergedExport.writeArrow(m, modelOptions.tokenizer, out);
        }
        try (ArrowModel a = ArrowModel.open(out)) { // re-open: the file is checked and summarised
            String tok = a.embeddedTokenizer() != null ? "embedded " + a.embeddedTokenizer().fileName()
                    : a.metadata().containsKey("tokenizer.ggml.tokens") ? "GGUF tokenizer.ggml.* metadata"
                    : "none (pass --tokenizer when loading it)";
            System.err.printf(Locale.ROOT, "wrote %s: %d tensors from %s (%s), %.1f MiB, tokenizer: %s, in %.1f s%n", out,
                    a.tensors().size(), from, a.sourceFormat(), Files.size(out) / 1048576.0, tok, (System.nanoTime() - t0) / 1e9);
        }
        return 0;
    }
}

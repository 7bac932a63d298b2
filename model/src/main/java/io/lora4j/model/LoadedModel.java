package io.lora4j.model;

import io.lora4j.model.format.ModelFiles;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.tokenizer.Tokenizers;

import java.nio.file.Files;
import java.nio.file.Path;

/** A model file opened with its tokenizer. Closing unmaps the weights. */
public record LoadedModel(WeightSource source, Llama llama, Tokenizer tokenizer) implements AutoCloseable {

    /**
     * Opens {@code model} (GGUF, HF directory or llama2.c .bin). The tokenizer is {@code tokenizer}
     * when given, else the GGUF's own, else {@code tokenizer.json} / {@code tokenizer.model} in an HF
     * directory, else {@code tokenizer.bin} or {@code tok<V>.bin} beside a llama2.c checkpoint.
     */
    public static LoadedModel open(Path model, Path tokenizer) {
        return open(model, tokenizer, Quantization.NONE);
    }

    /** As {@link #open(Path, Path)}, the block projections quantized on load with {@code quant}. */
    public static LoadedModel open(Path model, Path tokenizer, Quantization quant) {
        WeightSource src = ModelFiles.open(model);
        try {
            Llama llama = new Llama(src, quant);
            Tokenizer tok = tokenizer != null ? Tokenizers.load(tokenizer) : findTokenizer(src);
            if (tok.vocabSize() > llama.config().vocabSize()) {
                throw new ModelFormatException(model, "tokenizer has " + tok.vocabSize()
                        + " tokens but the model's vocabulary is " + llama.config().vocabSize());
            }
            return new LoadedModel(src, llama, tok);
        } catch (RuntimeException e) {
            src.close();
            throw e;
        }
    }

    private static Tokenizer findTokenizer(WeightSource src) {
        if (src.format().equals("gguf")) {
            return Tokenizers.fromGgufMetadata(src.metadata(), src.path());
        }
        Path dir = Files.isDirectory(src.path()) ? src.path() : src.path().toAbsolutePath().getParent();
        String[] candidates = src.format().equals("llama2c")
                ? new String[]{"tok" + src.config().vocabSize() + ".bin", "tokenizer.bin"}
                : new String[]{"tokenizer.json", "tokenizer.model"};
        for (String name : candidates) {
            Path p = dir.resolve(name);
            if (Files.isRegularFile(p)) {
                return Tokenizers.load(p);
            }
        }
        throw new ModelFormatException(src.path(), "no tokenizer found beside the model (looked for "
                + String.join(", ", candidates) + "); pass one with --tokenizer");
    }

    @Override
    public void close() {
        source.close();
    }
}

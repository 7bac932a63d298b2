package io.lora4j.model;

import io.lora4j.model.format.ArrowModel;
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
     * Opens {@code model} (GGUF, HF directory, llama2.c .bin or Arrow). The tokenizer is
     * {@code tokenizer} when given, else the one inside the file (GGUF metadata, or an Arrow model's
     * embedded tokenizer), else {@link #tokenizerFile}.
     */
    public static LoadedModel open(Path model, Path tokenizer) {
        return open(model, tokenizer, Quantization.NONE);
    }

    /** As {@link #open(Path, Path)}, the block projections quantized on load with {@code quant}. */
    public static LoadedModel open(Path model, Path tokenizer, Quantization quant) {
        return open(model, model.toString(), tokenizer, quant);
    }

    /**
     * As {@link #open(Path, Path, Quantization)}; {@code name} is how the user named the model (what
     * adapters record as {@code base_model_name_or_path}), e.g. the path as typed.
     */
    public static LoadedModel open(Path model, String name, Path tokenizer, Quantization quant) {
        WeightSource src = ModelFiles.open(model);
        try {
            Llama llama = new Llama(src, quant, name);
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

    /**
     * The tokenizer of {@code model} alone, without building the model: a GGUF's {@code tokenizer.*}
     * metadata (a vocabulary-only GGUF such as llama.cpp's {@code ggml-vocab-*.gguf} included), an
     * Arrow model's, or the tokenizer file beside an HF directory or llama2.c checkpoint.
     */
    public static Tokenizer tokenizerOf(Path model) {
        try (WeightSource src = ModelFiles.open(model)) {
            return findTokenizer(src);
        }
    }

    /** The tokenizer that comes with {@code src}: inside the file, else {@link #tokenizerFile}; a ModelFormatException if none. */
    public static Tokenizer findTokenizer(WeightSource src) {
        if (src instanceof ArrowModel a && a.embeddedTokenizer() != null) {
            ArrowModel.EmbeddedTokenizer e = a.embeddedTokenizer();
            return Tokenizers.fromBytes(src.path(), e.fileName(), e.data(), e.config());
        }
        if (src.format().equals("gguf") || src.format().equals("arrow") && src.metadata().containsKey("tokenizer.ggml.tokens")) {
            return Tokenizers.fromGgufMetadata(src.metadata(), src.path());
        }
        Path p = tokenizerFile(src);
        if (p == null) {
            throw new ModelFormatException(src.path(), "no tokenizer found beside the model (looked for "
                    + String.join(", ", tokenizerCandidates(src)) + "); pass one with --tokenizer");
        }
        return Tokenizers.load(p);
    }

    /**
     * The tokenizer file that belongs to a model without a built-in tokenizer: {@code tokenizer.json}
     * or {@code tokenizer.model} in (or beside) an HF directory or Arrow file, {@code tok<V>.bin} or
     * {@code tokenizer.bin} beside a llama2.c checkpoint; null when there is none.
     */
    public static Path tokenizerFile(WeightSource src) {
        Path dir = Files.isDirectory(src.path()) ? src.path() : src.path().toAbsolutePath().getParent();
        for (String name : tokenizerCandidates(src)) {
            Path p = dir.resolve(name);
            if (Files.isRegularFile(p)) {
                return p;
            }
        }
        return null;
    }

    private static String[] tokenizerCandidates(WeightSource src) {
        return src.format().equals("llama2c")
                ? new String[]{"tok" + src.config().vocabSize() + ".bin", "tokenizer.bin"}
                : new String[]{"tokenizer.json", "tokenizer.model"};
    }

    @Override
    public void close() {
        source.close();
    }
}

package io.lora4j.model.train;

import io.lora4j.model.format.Fuzzing;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.tokenizer.Tokenizers;

import java.nio.file.Path;

/** Fuzz target: a JSONL training file — {"text"}, {"prompt","completion"} or {"messages"} records — tokenized into examples. */
public final class JsonlDatasetFuzz {
    static Tokenizer TOK;

    /** Called once by Jazzer before the first input, outside the per-input timeout. */
    public static void fuzzerInitialize() {
        if (TOK == null) {
            TOK = Tokenizers.load(Path.of(System.getProperty("lora4j.shared", "../shared"), "models/stories260K/tok512.bin"));
        }
    }
    private static final Path NAME = Path.of("fuzz.jsonl");

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        Fuzzing.typed(() -> check(Datasets.load(NAME, data, TOK, 16)));
    }

    /** Every example is well formed: inputs and targets of one length, at most a window, ids in the vocabulary. */
    static void check(Datasets.Loaded l) {
        for (Example e : l.examples()) {
            if (e.tokens().length != e.targets().length || e.tokens().length < 1 || e.tokens().length > 16) {
                throw new AssertionError("example of " + e.tokens().length + " tokens, " + e.targets().length + " targets");
            }
            for (int i = 0; i < e.tokens().length; i++) {
                if (e.tokens()[i] < 0 || e.tokens()[i] >= TOK.vocabSize() || e.targets()[i] < -1 || e.targets()[i] >= TOK.vocabSize()) {
                    throw new AssertionError("id out of range at " + i);
                }
            }
        }
    }
}

package io.lora4j.model.format;

import io.lora4j.model.tokenizer.ChatTemplate;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.tokenizer.TokenizerException;

/**
 * What every fuzz target shares: the errors a parser of untrusted input may throw (its typed
 * errors, each with a message for the user), and a workout for a tokenizer it produced. Anything
 * else escaping a target (an IndexOutOfBoundsException, a NullPointerException, an
 * OutOfMemoryError, a StackOverflowError, an input that takes too long) is a finding.
 */
public final class Fuzzing {
    private Fuzzing() {
    }

    /** Runs {@code body}; returns normally on success or on a typed error, rethrows anything else. */
    public static void typed(Body body) throws Exception {
        try {
            body.run();
        } catch (ModelFormatException | TokenizerException | ChatTemplate.InvalidConversationException e) {
            if (e.getMessage() == null || e.getMessage().isBlank()) {
                throw new AssertionError("a typed error without a message", e);
            }
        }
    }

    /** A target's work. */
    @FunctionalInterface
    public interface Body {
        void run() throws Exception;
    }

    /** Encodes and decodes texts that reach the tokenizer's special cases (spaces, digits, bytes outside ASCII, specials). */
    public static void exercise(Tokenizer tok) {
        for (String text : new String[]{"Hello world", " 12345  x\n\ny", "naïve 日本 🦙", "<s>a</s><|eot_id|>b<|im_start|>", ""}) {
            int[] ids = tok.encode(text);
            tok.decode(ids);
            for (int id : tok.encodeWithSpecial(text)) {
                if (id < 0 || id >= tok.vocabSize()) {
                    throw new AssertionError("id " + id + " outside the vocabulary of " + tok.vocabSize() + " for '" + text + "'");
                }
                tok.tokenText(id);
                tok.tokenBytes(id);
            }
        }
        if (tok.bos() >= tok.vocabSize() || tok.eos() >= tok.vocabSize()) {
            throw new AssertionError("bos " + tok.bos() + " / eos " + tok.eos() + " outside the vocabulary of " + tok.vocabSize());
        }
    }
}

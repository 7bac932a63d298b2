package io.lora4j.model.tokenizer;

import java.util.Set;

/** Text ↔ token ids. */
public interface Tokenizer {
    int vocabSize();

    int bos();

    /** -1 when none. */
    int eos();

    /** Whether a BOS is prepended by default. */
    boolean addBos();

    /** Tokens that end generation. */
    Set<Integer> stopTokens();

    /** Plain text, no BOS; special-token strings are ordinary text. */
    int[] encode(String text);

    /** Like {@link #encode} but literal special tokens become their ids. */
    int[] encodeWithSpecial(String text);

    /** The bytes this token contributes to decoded text (empty for control tokens). */
    byte[] tokenBytes(int id);

    String decode(int[] ids);

    String tokenText(int id);

    /** -1 if absent. */
    int tokenId(String piece);
}

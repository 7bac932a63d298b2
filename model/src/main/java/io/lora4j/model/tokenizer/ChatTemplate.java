package io.lora4j.model.tokenizer;

import java.util.List;

/** Chat formatting (placeholder until the full templates land). */
public final class ChatTemplate {
    public record Message(String role, String content) {
    }

    public record Encoded(int[] ids, boolean[] assistantMask) {
    }

    private final Tokenizer tok;

    private ChatTemplate(Tokenizer tok) {
        this.tok = tok;
    }

    public static ChatTemplate forTokenizer(Tokenizer tok) {
        return new ChatTemplate(tok);
    }

    public Encoded encode(List<Message> messages, boolean addGenerationPrompt) {
        throw new UnsupportedOperationException("chat templates not yet available");
    }
}

package io.lora4j.model.tokenizer;

/** A text this tokenizer cannot encode (a byte its byte-level vocabulary has no token for); the CLI prints the message. */
public final class TokenizerException extends IllegalArgumentException {
    public TokenizerException(String message) {
        super(message);
    }
}

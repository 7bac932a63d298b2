package io.lora4j.model.format;

import java.nio.file.Path;

/**
 * A weight, tokenizer or config file that cannot be used: the message names the file and, where
 * there is one, the tensor or key, and says what is wrong. The CLI prints it without a stack trace.
 */
public class ModelFormatException extends RuntimeException {
    public ModelFormatException(Path file, String problem) {
        super(file + ": " + problem);
    }

    public ModelFormatException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
    }
}

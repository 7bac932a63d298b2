package io.lora4j.tests;

import io.lora4j.cli.Main;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Paths to ../shared/models and an in-process runner for the CLI. */
final class Shared {
    private Shared() {
    }

    static Path models() {
        String s = System.getProperty("lora4j.shared");
        Path p = Path.of(s == null ? "../shared" : s, "models");
        assertTrue(Files.isDirectory(p), "shared models not found at " + p.toAbsolutePath());
        return p;
    }

    static Path stories() {
        return models().resolve("stories260K/stories260K.gguf");
    }

    /** Exit code, standard output and standard error of one CLI invocation. */
    record Run(int code, String out, String err) {
    }

    static synchronized Run cli(String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }
}

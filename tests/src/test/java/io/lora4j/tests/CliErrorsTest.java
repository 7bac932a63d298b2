package io.lora4j.tests;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Bad input gives one clear line naming the file and the problem, never a stack trace. */
class CliErrorsTest {

    static void assertCleanError(Shared.Run r, int code, String... mustContain) {
        assertEquals(code, r.code(), "exit code; stderr: " + r.err());
        for (String s : mustContain) {
            assertTrue(r.err().contains(s), "stderr should mention '" + s + "': " + r.err());
        }
        assertFalse(r.err().contains("\tat "), "no stack trace: " + r.err());
        assertFalse(r.err().contains("Exception"), "no exception class names: " + r.err());
    }

    @Test
    void missingModelFile(@TempDir Path dir) {
        Path p = dir.resolve("nope.gguf");
        assertCleanError(Shared.cli("generate", "--model", p.toString(), "--max-tokens", "1"), 1, "nope.gguf");
    }

    @Test
    void truncatedGguf(@TempDir Path dir) throws Exception {
        byte[] all = Files.readAllBytes(Shared.stories());
        Path p = dir.resolve("cut.gguf");
        Files.write(p, Arrays.copyOf(all, all.length / 2));
        assertCleanError(Shared.cli("generate", "--model", p.toString(), "--max-tokens", "1"), 1, "cut.gguf");
        assertCleanError(Shared.cli("inspect", "--model", p.toString()), 1, "cut.gguf");
    }

    @Test
    void notAModel(@TempDir Path dir) throws Exception {
        Path p = dir.resolve("notes.txt");
        Files.writeString(p, "hello");
        assertCleanError(Shared.cli("inspect", "--model", p.toString()), 1, "notes.txt");
    }

    @Test
    void unknownBackendAndBadOptions() {
        assertCleanError(Shared.cli("generate", "--model", Shared.stories().toString(), "--backend", "cuda"), 1,
                "unknown backend 'cuda'");
        // this module's tests never run with TornadoVM's JVM options
        assertCleanError(Shared.cli("train", "--model", Shared.stories().toString(), "--backend", "tornado", "--steps", "1"), 1,
                "backend 'tornado' is not available: this JVM was not started with TornadoVM's options");
        assertCleanError(Shared.cli("generate", "--model", Shared.stories().toString(), "--device", "0"), 1,
                "--device selects a TornadoVM device");
        assertCleanError(Shared.cli("generate", "--model", Shared.stories().toString(), "--temperature", "-1"), 1,
                "temperature");
        Shared.Run r = Shared.cli("generate", "--max-tokens", "many");
        assertEquals(2, r.code());
        assertTrue(r.err().contains("--max-tokens"), r.err());
        assertEquals(2, Shared.cli("frobnicate").code());
    }

    @Test
    void tokenIdsOutsideTheVocabulary() {
        assertCleanError(Shared.cli("tokenize", "--model", Shared.stories().toString(), "--decode", "1 99999"), 1,
                "99999");
    }

    /** A file-system error names the file and what went wrong (NoSuchFileException's message is the bare path). */
    @Test
    void fileSystemErrorsNameTheFileAndTheProblem(@TempDir Path dir) throws Exception {
        Path missing = dir.resolve("no-such-dir").resolve("model.arrow");
        assertCleanError(Shared.cli("convert", "--model", Shared.stories().toString(), "-o", missing.toString()), 1,
                missing.toString(), "no such file or directory");
        Path file = Files.writeString(dir.resolve("a-file"), "x");
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            LoraAdapter ada = new LoraAdapter("default", AdaLoraConfig.defaults(8f, List.of("q_proj"), 10), lm.llama(), 1);
            PeftAdapters.save(ada, lm.llama(), dir.resolve("ada"));
        }
        // an UncheckedIOException from the library: its own message, no exception class name
        assertCleanError(Shared.cli("adapters", "export-lora", dir.resolve("ada").toString(), "-o", file.resolve("sub").toString()), 1,
                "cannot write adapter to " + file.resolve("sub"), "Not a directory");
    }
}

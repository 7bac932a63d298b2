package io.lora4j.tests;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** inspect, tokenize and bench on the embedded default model. */
class CliCommandsTest {

    @Test
    void inspectShowsFormatConfigTensorsAndCounts() {
        Shared.Run r = Shared.cli("inspect", "--model", Shared.stories().toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("format:  gguf"), r.out());
        assertTrue(r.out().contains("general.architecture = \"llama\""), r.out());
        assertTrue(r.out().contains("tensors (48)"), r.out());
        assertTrue(r.out().contains("blk.4.ffn_down.weight"), r.out());
        // 512·64 ·2 (embedding + output) + 64 + 5·(64·64·2 + 64·32·2 + 3·64·172 + 2·64) = 292,800
        assertTrue(r.out().contains("parameters: 292,800"), r.out());
    }

    @Test
    void tokenizeAndDecodeRoundTrip() {
        Shared.Run r = Shared.cli("tokenize", "--model", Shared.stories().toString(), "--bos", "Once upon a time");
        assertEquals(0, r.code(), r.err());
        assertEquals("[1, 403, 407, 261, 378]", r.out().strip());
        Shared.Run d = Shared.cli("tokenize", "--model", Shared.stories().toString(), "--decode", "403 407 261 378");
        assertEquals(0, d.code(), d.err());
        assertEquals("Once upon a time", d.out().strip());
    }

    @Test
    void benchPrintsAMarkdownTable() {
        Shared.Run r = Shared.cli("bench", "--model", Shared.stories().toString(), "-p", "16", "-n", "8", "-r", "2");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("| pp16 |") || r.out().contains(" pp16 |"), r.out());
        assertTrue(r.out().contains(" tg8 |"), r.out());
        assertTrue(r.out().matches("(?s).*tg8 \\| [0-9.]+ ± [0-9.]+ \\|.*"), r.out());
    }

    @Test
    void seededSamplingIsReproducible() {
        String[] args = {"generate", "--model", Shared.stories().toString(), "--prompt", "Lily", "--temperature", "1",
                "--seed", "42", "--max-tokens", "40"};
        Shared.Run a = Shared.cli(args), b = Shared.cli(args);
        assertEquals(0, a.code(), a.err());
        assertEquals(a.out(), b.out());
        assertTrue(a.out().startsWith("Lily"), a.out());
    }
}

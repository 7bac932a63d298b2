package io.lora4j.tests;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** inspect, tokenize, bench and generate on stories260K. */
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

    /** bench --train: a row per sequence length with tokens/s (mean ± sd), the memory held and the peak RSS; bad sizes refused. */
    @Test
    void benchTrainMeasuresTrainingSteps() {
        Shared.Run r = Shared.cli("bench", "--train", "--model", Shared.stories().toString(), "--seq-len", "16,32", "-r", "2",
                "--warmup-steps", "1", "--r", "4", "--target-modules", "q_proj,v_proj");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("| held MiB | peak RSS MiB |"), r.out());
        // stories260K's base is 1.12 MiB of F32, so the held memory is a few MiB; the process's peak RSS is more
        assertTrue(r.out().matches("(?s).*\\| train seq16 r4 q,v \\| [0-9.]+ ± [0-9.]+ \\| [1-9][0-9]?\\.[0-9] \\| [0-9]{2,}\\.[0-9] \\|.*"),
                r.out());
        assertTrue(r.out().contains("| train seq32 r4 q,v |"), r.out());
        CliErrorsTest.assertCleanError(Shared.cli("bench", "--train", "--model", Shared.stories().toString(), "--seq-len", "1"), 1,
                "--seq-len 1");
        CliErrorsTest.assertCleanError(Shared.cli("bench", "--train", "--load-only", "--model", Shared.stories().toString()), 1,
                "drop --load-only");
    }

    /**
     * bench-serve against its in-process server: every request over the two adapters completes (after the untimed
     * warm-up, which loads both), each with the tokens asked for, and the figures are printed.
     */
    @Test
    void benchServeRunsStreamingRequestsOverAdapters() {
        Shared.Run r = Shared.cli("bench-serve", "--model", Shared.stories().toString(), "--requests", "6", "--concurrency", "3",
                "--adapters", "2", "--max-tokens", "5", "--prompt", "Lily");
        assertEquals(0, r.code(), r.err());
        assertTrue(r.out().contains("| 6 requests (0 failed), concurrency 3, 2 adapters, 5 tokens each"), r.out());
        assertTrue(r.out().matches("(?s).*requests/s [0-9.]+ \\| output tokens/s [0-9.]+ \\| wall [0-9.]+ s.*"), r.out());
        assertTrue(r.out().matches("(?s).*time to first token ms: p50 [0-9.]+ +p99 [0-9.]+ \\| time per output token ms: p50 [0-9.]+.*"), r.out());
    }

    /** Greedy generate prints the prompt and llama.cpp's continuation of it. */
    @Test
    void greedyGenerateContinuesAsLlamaCpp() {
        Shared.Run r = Shared.cli("generate", "--model", Shared.stories().toString(), "--prompt", "Once upon a time",
                "--temperature", "0", "--max-tokens", "64");
        assertEquals(0, r.code(), r.err());
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            assertEquals("Once upon a time" + lm.tokenizer().decode(GoldenGenerationTest.LLAMA_CPP_64) + "\n", r.out());
        }
    }

    /** A seed gives the same text on every run: the text the library's sampler draws with that seed, and another seed's differs. */
    @Test
    void seededSamplingIsReproducible() {
        String[] args = {"generate", "--model", Shared.stories().toString(), "--prompt", "Lily", "--temperature", "1",
                "--seed", "42", "--max-tokens", "40"};
        Shared.Run a = Shared.cli(args), b = Shared.cli(args);
        assertEquals(0, a.code(), a.err());
        assertEquals(a.out(), b.out());
        args[args.length - 3] = "43";
        Shared.Run other = Shared.cli(args);
        assertEquals(0, other.code(), other.err());
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            assertEquals(Shared.apiGenerate(lm, "Lily", Shared.cliSampling(1f, 42), 40), a.out(), "seed 42");
            assertEquals(Shared.apiGenerate(lm, "Lily", Shared.cliSampling(1f, 43), 40), other.out(), "seed 43");
            assertNotEquals(Shared.apiGenerate(lm, "Lily", Sampler.Params.greedy(), 40), a.out(), "temperature 1 samples, not argmax");
        }
        assertNotEquals(a.out(), other.out(), "the seed is used");
    }
}

package io.lora4j.tests;

import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.State;
import org.junit.jupiter.api.Test;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** stories260K against llama2.c's and llama.cpp's references, through the CLI and the API. */
class GoldenGenerationTest {
    static final int[] ONCE_UPON_A_TIME = {1, 403, 407, 261, 378};
    static final int[] LLAMA_CPP_64 = {432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
            410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394, 261, 370, 432, 352, 266, 268,
            388, 426, 338, 391, 266, 267, 337, 335, 312, 432, 398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310,
            439, 419, 357, 336};

    @Test
    void greedyFromBosMatchesLlama2cByteForByte() throws Exception {
        String expected = Files.readString(Shared.models().resolve("stories260K/expected_greedy_t0_n200.txt"));
        Shared.Run r = Shared.cli("generate", "--model", Shared.stories().toString(), "--prompt", "",
                "--temperature", "0", "--max-tokens", "200");
        assertEquals(0, r.code(), r.err());
        assertEquals(expected, r.out().stripTrailing(), "greedy 200 tokens from BOS");
    }

    @Test
    void onceUponATimeEncodesAndContinuesAsLlamaCpp() {
        int[] got = greedy(Shared.stories(), null, "Once upon a time", 64);
        assertArrayEquals(LLAMA_CPP_64, got);
    }

    /** The llama2.c checkpoint of the same model gives the same tokens (a second loader, same math). */
    @Test
    void llama2cCheckpointGivesTheSameTokens() {
        Path dir = Shared.models().resolve("stories260K");
        int[] got = greedy(dir.resolve("stories260K.bin"), dir.resolve("tok512.bin"), "Once upon a time", 64);
        assertArrayEquals(LLAMA_CPP_64, got);
    }

    /** Prefill in chunks of any size gives the logits of token-by-token decoding. */
    @Test
    void batchedPrefillEqualsTokenByToken() {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null); Backend b = Backend.named("jvm")) {
            int[] ids = new int[40];
            ids[0] = 1;
            int[] body = lm.tokenizer().encode("Once upon a time, there was a little girl named Lily. She loved");
            System.arraycopy(body, 0, ids, 1, Math.min(39, body.length));
            int n = 1 + Math.min(39, body.length);
            int V = lm.llama().config().vocabSize();
            State one = lm.llama().newState(1, 512);
            float[] ref = null;
            for (int i = 0; i < n; i++) {
                ref = lm.llama().forward(b, one, ids, i, 1, i).clone();
            }
            for (int chunk : new int[]{3, 16, 64}) {
                State s = lm.llama().newState(chunk, 512);
                float[] got = lm.llama().forward(b, s, ids, 0, n, 0);
                for (int v = 0; v < V; v++) {
                    assertEquals(ref[v], got[v], 1e-4f * Math.max(1f, Math.abs(ref[v])), "chunk " + chunk + " logit " + v);
                }
            }
        }
    }

    static int[] greedy(Path model, Path tokenizer, String prompt, int n) {
        try (LoadedModel lm = LoadedModel.open(model, tokenizer); Backend b = Backend.named("jvm")) {
            int[] body = lm.tokenizer().encode(prompt);
            int[] ids = new int[body.length + 1];
            ids[0] = lm.tokenizer().bos();
            System.arraycopy(body, 0, ids, 1, body.length);
            assertArrayEquals(ONCE_UPON_A_TIME, ids, "prompt ids");
            State s = lm.llama().newState(32, 256);
            Generator.Result r = Generator.generate(lm.llama(), b, s, ids, 0, n,
                    new Sampler(Sampler.Params.greedy(), lm.llama().config().vocabSize()), Set.of(), t -> { });
            assertTrue(r.tokens().length == n, "generated " + r.tokens().length);
            return r.tokens();
        }
    }
}

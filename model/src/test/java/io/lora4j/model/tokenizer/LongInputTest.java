package io.lora4j.model.tokenizer;

import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Inputs that made the encoders quadratic: one repeated letter is a single pre-token (byte-level
 * BPE) or one long run of symbols (SentencePiece), and rescanning all pairs after every merge took
 * 30 s for 10 KB. Merging through a heap (MergeQueue) is O(n log n): a megabyte takes about a
 * second (docs/BENCHMARKS.md has the figures up to 10 MB); the timeouts only stop a quadratic encoder
 * from hanging the build, they measure nothing. The results are checked, not just the time: a
 * repeated letter gives a periodic id sequence, random bytes decode back to themselves.
 */
class LongInputTest {
    static final Path MODELS = Path.of(System.getProperty("lora4j.shared", "../shared"), "models");

    static List<Tokenizer> tokenizers() {
        return List.of(Tokenizers.load(MODELS.resolve("llama2-tokenizer/tokenizer.model")),
                Tokenizers.load(MODELS.resolve("llama3-tokenizer/tokenizer.model")),
                Tokenizers.load(MODELS.resolve("peft-lora-smollm-135m/tokenizer.json")));
    }

    @Test
    @Timeout(value = 300, unit = TimeUnit.SECONDS)
    void aMegabyteOfOneLetterOrOfRandomBytes() {
        check(1 << 20);
    }

    @Test
    @Tag("slow")
    @Timeout(value = 1200, unit = TimeUnit.SECONDS)
    void tenMegabytes() {
        check(10 << 20);
    }

    static void check(int n) {
        String letters = "a".repeat(n);
        byte[] bytes = new byte[n];
        new SplittableRandom(7).nextBytes(bytes);
        String random = new String(bytes, StandardCharsets.UTF_8); // invalid sequences become U+FFFD
        List<Tokenizer> toks = tokenizers();
        for (Tokenizer tok : toks) {
            String name = tok.getClass().getSimpleName() + " " + tok.vocabSize();
            int[] ids = tok.encode(letters);
            int[] head = tok.encode("a".repeat(4096));
            // away from the ends the ids repeat with the period of the shorter text's
            int period = period(head);
            assertTrue(period > 0 && period < 64, name + ": a repeated letter gives a periodic sequence");
            for (int i = 64; i < ids.length - 64; i++) {
                assertEquals(ids[i - period], ids[i], name + " id " + i);
            }
            assertTrue(ids.length > n / 64 && ids.length < n, name + ": " + ids.length + " ids");
            if (tok.vocabSize() == 49152) {
                continue; // SmolLM's byte-level vocabulary lacks a few bytes (0x04, 0xf2, …) that random text has
            }
            String back = tok.decode(tok.encode(random));
            if (tok instanceof SentencePieceTokenizer) {
                back = back.substring(1); // the dummy prefix
            }
            assertEquals(random, back, name + ": random bytes round trip");
        }
        // literal special tokens: 10^6 "<|" that almost start one, and real ones in between
        Tokenizer llama3 = toks.get(1);
        String text = "<|".repeat(n / 4) + "<|eot_id|>" + "<|".repeat(n / 4);
        int[] ids = llama3.encodeWithSpecial(text);
        int eot = llama3.tokenId("<|eot_id|>");
        assertEquals(1, java.util.Arrays.stream(ids).filter(x -> x == eot).count());
        assertArrayEquals(llama3.encode("<|".repeat(n / 4)), java.util.Arrays.copyOf(ids, indexOf(ids, eot)));
    }

    private static int period(int[] ids) {
        for (int p = 1; p < 64; p++) {
            boolean ok = true;
            for (int i = 64; i < ids.length - 64 && ok; i++) {
                ok = ids[i] == ids[i - p];
            }
            if (ok) {
                return p;
            }
        }
        return -1;
    }

    private static int indexOf(int[] a, int x) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == x) {
                return i;
            }
        }
        return -1;
    }
}

package io.lora4j.tests;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * train --save-every, a lost tail of work, train --resume: it resumes at the checkpoint's step, logs the
 * uninterrupted run's losses for the remaining steps, and the adapter file equals that run's byte for byte.
 */
class CliResumeTest {
    @Test
    void resumedRunWritesTheSameAdapter(@TempDir Path dir) throws Exception {
        String[] common = {"--model", Shared.stories().toString(), "--steps", "12", "--seq-len", "48", "--lora-dropout", "0.1",
                "--target-modules", "q_proj,v_proj,down_proj", "--lr-scheduler", "cosine", "--warmup-steps", "2", "--save-every", "4"};
        Path full = dir.resolve("full"), cut = dir.resolve("cut");
        assertEquals(0, Shared.cli(concat(new String[]{"train", "-o", full.toString()}, common)).code());
        assertEquals(0, Shared.cli(concat(new String[]{"train", "-o", cut.toString()}, common)).code());
        // the "crash": everything after checkpoint-4 is lost
        for (String gone : new String[]{"checkpoint-8", "checkpoint-12", "adapter_model.safetensors"}) {
            try (Stream<Path> s = Files.walk(cut.resolve(gone))) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        Shared.Run r = Shared.cli("train", "--model", Shared.stories().toString(), "--resume", cut.toString(), "-o", cut.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("resuming from " + cut.resolve("checkpoint-4") + " at step 4 of 12"), r.err());
        assertArrayEquals(Files.readAllBytes(full.resolve("adapter_model.safetensors")),
                Files.readAllBytes(cut.resolve("adapter_model.safetensors")));
        // equal bytes alone would also come from a silent restart at step 0 (same seed): the resumed run ran steps 5..12 only
        assertResumedRows(full, cut, 4);
    }

    /**
     * The rows the resumed run appended to {@code cut}'s metrics.csv are those of the uninterrupted
     * run after step {@code from}, the same losses, learning rates and gradient norms (timing aside).
     */
    static void assertResumedRows(Path full, Path cut, int from) throws Exception {
        List<String> f = Files.readAllLines(full.resolve("metrics.csv")), c = Files.readAllLines(cut.resolve("metrics.csv"));
        assertTrue(c.size() > f.size(), "the resumed run appended rows: " + c);
        assertEquals(f.stream().map(CliResumeTest::untimed).toList(), c.subList(0, f.size()).stream().map(CliResumeTest::untimed).toList(),
                "the interrupted run's own rows stay");
        List<String> expected = f.stream().skip(1).filter(l -> Integer.parseInt(l.split(",")[0]) > from)
                .map(CliResumeTest::untimed).toList();
        List<String> appended = c.subList(f.size(), c.size()).stream().map(CliResumeTest::untimed).toList();
        assertTrue(expected.size() > 1, "rows after step " + from + ": " + f);
        assertEquals(expected, appended, "metrics.csv rows appended by the resumed run");
    }

    /** A metrics.csv row without its tokens_per_s column. */
    static String untimed(String row) {
        String[] f = row.split(",", -1);
        f[7] = "";
        return String.join(",", f);
    }

    static String[] concat(String[] a, String[] b) {
        String[] c = new String[a.length + b.length];
        System.arraycopy(a, 0, c, 0, a.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}

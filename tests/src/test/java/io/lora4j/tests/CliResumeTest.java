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
        List<String> interrupted = Files.readAllLines(cut.resolve("metrics.csv"));
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
        assertResumedRows(interrupted, full, cut, 4);
    }

    /**
     * After resuming from the checkpoint of step {@code from}, {@code cut}'s metrics.csv reads as the
     * uninterrupted run's (timing aside): the rows up to the checkpoint are the interrupted run's
     * own, copied from the checkpoint with their timings (so they were not recomputed), and the
     * steps the interrupted run logged after it are not repeated.
     */
    static void assertResumedRows(List<String> interrupted, Path full, Path cut, int from) throws Exception {
        List<String> f = Files.readAllLines(full.resolve("metrics.csv")), c = Files.readAllLines(cut.resolve("metrics.csv"));
        assertEquals(f.stream().map(CliResumeTest::untimed).toList(), c.stream().map(CliResumeTest::untimed).toList(),
                "the resumed run's metrics.csv is the uninterrupted run's");
        List<String> kept = interrupted.stream().skip(1).filter(l -> Integer.parseInt(l.split(",")[0]) <= from).toList();
        assertTrue(kept.size() >= from, "rows up to step " + from + ": " + interrupted);
        assertEquals(kept, c.subList(1, 1 + kept.size()), "the rows up to the checkpoint, timings included, are the interrupted run's");
        assertTrue(c.size() > 1 + kept.size() + 1, "the resumed run logged steps after " + from + ": " + c);
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

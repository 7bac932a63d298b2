package io.lora4j.tests;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Comparator;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/** train --save-every, a lost tail of work, train --resume: the adapter file equals the uninterrupted run's byte for byte. */
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
        assertArrayEquals(Files.readAllBytes(full.resolve("adapter_model.safetensors")),
                Files.readAllBytes(cut.resolve("adapter_model.safetensors")));
    }

    static String[] concat(String[] a, String[] b) {
        String[] c = new String[a.length + b.length];
        System.arraycopy(a, 0, c, 0, a.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }
}

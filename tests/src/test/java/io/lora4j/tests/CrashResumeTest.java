package io.lora4j.tests;

import io.lora4j.model.train.Checkpoints;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.TestFactory;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code lora4j train} killed with SIGKILL at random moments, checkpoints among them (a checkpoint
 * every step, so most kills land in one being written), then resumed from what the kill left, again
 * and again: the finished adapter is byte for byte the uninterrupted run's. Each training runs in a
 * JVM of its own ({@code io.lora4j.cli.Main} on this test's class path); ten repetitions, each with
 * its own random kill times (seeded, printed).
 */
@Tag("slow")
class CrashResumeTest {
    static final List<String> TRAIN = List.of("train", "--model", Shared.stories().toString(), "--steps", "24", "--seq-len", "32",
            "--save-every", "1", "--save-total-limit", "2", "--lora-dropout", "0.1", "--target-modules", "q_proj,v_proj,down_proj",
            "--lr-scheduler", "cosine", "--warmup-steps", "3", "--threads", "2");
    static final String[] OUTPUTS = {"adapter_model.safetensors", "adapter_config.json"};
    private static Path reference;

    /** Ten repetitions (-Dlora4j.crash.repetitions=N for another number), one after the other. */
    @TestFactory
    Stream<DynamicTest> killedAtRandomAndResumedEndsWithTheUninterruptedAdapter(@TempDir Path dir) {
        int n = Integer.getInteger("lora4j.crash.repetitions", 10);
        return java.util.stream.IntStream.rangeClosed(1, n).mapToObj(i -> DynamicTest.dynamicTest("repetition " + i + " of " + n,
                () -> repetition(i, dir.resolve("rep-" + i))));
    }

    static void repetition(int rep, Path dir) throws Exception {
        Files.createDirectories(dir);
        Path ref = reference(dir);
        Random rnd = new Random(20_261_206L + rep);
        Path out = dir.resolve("run");
        int kills = 0, duringCheckpoint = 0, launches = 0;
        List<String> log = new ArrayList<>();
        while (kills < 3 || duringCheckpoint == 0) {
            assertTrue(kills < 12, "no kill landed inside a checkpoint write in 12 tries: " + log);
            int before = newestStep(out);
            Process p = launch(out, dir.resolve("launch-" + launches++ + ".log"));
            // wait until this launch has written a checkpoint of its own, then let it run a random while longer
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(120);
            while (p.isAlive() && newestStep(out) <= before && System.nanoTime() < deadline) {
                Thread.sleep(5);
            }
            Thread.sleep(rnd.nextInt(2000));
            if (!p.isAlive()) {
                break; // it finished before the kill: resume what is left below (nothing)
            }
            p.destroyForcibly(); // SIGKILL
            assertTrue(p.waitFor(30, TimeUnit.SECONDS));
            boolean inCheckpoint = temporaries(out) > 0;
            duringCheckpoint += inCheckpoint ? 1 : 0;
            kills++;
            log.add("kill " + kills + " after step " + newestStep(out) + (inCheckpoint ? " (inside a checkpoint write)" : ""));
        }
        Process last = launch(out, dir.resolve("final.log"));
        assertTrue(last.waitFor(300, TimeUnit.SECONDS), "the last run finishes");
        String err = Files.readString(dir.resolve("final.log"));
        assertEquals(0, last.exitValue(), err);
        System.out.println("repetition " + rep + ": " + log);
        for (String f : OUTPUTS) {
            assertArrayEquals(Files.readAllBytes(ref.resolve(f)), Files.readAllBytes(out.resolve(f)), f + " after " + log);
        }
        assertEquals(0, temporaries(out), "no temporaries left");
        assertTrue(Checkpoints.list(out).size() <= 2, "--save-total-limit 2: " + Checkpoints.list(out));
    }

    /** The uninterrupted run (once for all repetitions). */
    static synchronized Path reference(Path dir) throws Exception {
        if (reference == null) {
            Path ref = Files.createTempDirectory("lora4j-crash-reference");
            Process p = launch(ref.resolve("out"), ref.resolve("log"));
            assertTrue(p.waitFor(600, TimeUnit.SECONDS));
            assertEquals(0, p.exitValue(), Files.readString(ref.resolve("log")));
            reference = ref.resolve("out");
        }
        return reference;
    }

    /** {@code train} into {@code out} in a new JVM: resuming when a checkpoint exists, else from the start. */
    static Process launch(Path out, Path log) throws IOException {
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-Dslf4j.internal.verbosity=ERROR", "-cp", System.getProperty("java.class.path"),
                "io.lora4j.cli.Main"));
        cmd.addAll(TRAIN);
        cmd.addAll(List.of("-o", out.toString()));
        if (!Checkpoints.list(out).isEmpty()) {
            cmd.addAll(List.of("--resume", out.toString()));
        }
        return new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
    }

    private static int newestStep(Path out) {
        List<Path> c = Checkpoints.list(out);
        return c.isEmpty() ? 0 : Integer.parseInt(c.getFirst().getFileName().toString().substring("checkpoint-".length()));
    }

    /** Temporary files and directories in {@code out}: what a kill inside a write leaves. */
    private static long temporaries(Path out) throws IOException {
        if (!Files.isDirectory(out)) {
            return 0;
        }
        try (Stream<Path> s = Files.list(out)) {
            return s.filter(p -> p.getFileName().toString().endsWith(".tmp")).count();
        }
    }
}

package io.lora4j.model.fuzz;

import io.lora4j.model.format.ArrowModelFuzz;
import io.lora4j.model.format.GgufFuzz;
import io.lora4j.model.format.Llama2cFuzz;
import io.lora4j.model.format.SafetensorsFuzz;
import io.lora4j.model.lora.AdapterConfigFuzz;
import io.lora4j.model.tokenizer.ChatTemplateFuzz;
import io.lora4j.model.tokenizer.Llama2cTokenizerFuzz;
import io.lora4j.model.tokenizer.TokenizerJsonFuzz;
import io.lora4j.model.tokenizer.TokenizerModelFuzz;
import io.lora4j.model.train.ArrowDatasetFuzz;
import io.lora4j.model.train.JsonlDatasetFuzz;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.TestFactory;

import java.io.IOException;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * The fuzz targets of every parser of untrusted input, two ways:
 * <ul>
 *   <li>their committed corpus ({@code src/test/fuzz/<Target>/}: seeds from {@link FuzzSeeds}, the
 *       corpus the campaigns grew, and every input that once was a finding), run in this JVM, so a
 *       fixed finding stays fixed without Jazzer;</li>
 *   <li>a Jazzer campaign per target, in a JVM of its own (Jazzer fuzzes one target per process),
 *       with coverage feedback from lora4j's classes (and Arrow Java's for Arrow datasets), a 768 MB heap (an input that
 *       makes a parser allocate what its header declares ends as an OutOfMemoryError: a finding) and a
 *       per-input timeout of 20 s. {@code -Dlora4j.fuzz.seconds=N} (default 3) bounds each campaign's
 *       time, {@code -Dlora4j.fuzz.runs=N} its executions (the {@code fuzz} profile: 1,000,000 each).
 *       Figures go to {@code target/fuzz/summary.txt}; a finding to {@code target/fuzz/<Target>/}.</li>
 * </ul>
 */
class FuzzTargetsTest {
    static final List<Class<?>> TARGETS = List.of(GgufFuzz.class, SafetensorsFuzz.class, ArrowModelFuzz.class, Llama2cFuzz.class,
            TokenizerModelFuzz.class, TokenizerJsonFuzz.class, Llama2cTokenizerFuzz.class, AdapterConfigFuzz.class,
            JsonlDatasetFuzz.class, ArrowDatasetFuzz.class, ChatTemplateFuzz.class);
    static final Path CORPUS = Path.of("src/test/fuzz");
    static final Path WORK = Path.of("target/fuzz");

    @TestFactory
    Stream<DynamicTest> committedCorpus() {
        return TARGETS.stream().map(t -> DynamicTest.dynamicTest(t.getSimpleName(), () -> {
            List<Path> inputs = inputs(t);
            assertTrue(inputs.stream().anyMatch(p -> p.getFileName().toString().startsWith("seed-")), "seeds of " + t.getSimpleName());
            Method m = entry(t);
            try {
                t.getMethod("fuzzerInitialize").invoke(null);
            } catch (NoSuchMethodException e) {
                // nothing to set up
            }
            for (Path p : inputs) {
                byte[] data = Files.readAllBytes(p);
                try {
                    m.invoke(null, (Object) data);
                } catch (InvocationTargetException e) {
                    throw new AssertionError(t.getSimpleName() + " on " + p + ": " + e.getCause(), e.getCause());
                }
            }
        }));
    }

    @TestFactory
    Stream<DynamicTest> jazzerCampaigns() throws IOException {
        Files.createDirectories(WORK);
        return TARGETS.stream().map(t -> DynamicTest.dynamicTest(t.getSimpleName(), () -> campaign(t)));
    }

    static List<Path> inputs(Class<?> target) throws IOException {
        Path dir = CORPUS.resolve(target.getSimpleName());
        if (!Files.isDirectory(dir)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(dir)) {
            return s.filter(Files::isRegularFile).sorted().toList();
        }
    }

    static Method entry(Class<?> target) throws NoSuchMethodException {
        return target.getMethod("fuzzerTestOneInput", byte[].class);
    }

    /** One Jazzer campaign; fails with the finding's report and the path of the input that caused it. */
    static void campaign(Class<?> target) throws Exception {
        String name = target.getSimpleName();
        long seconds = Long.getLong("lora4j.fuzz.seconds", 3);
        long runs = Long.getLong("lora4j.fuzz.runs", 0);
        Path work = WORK.resolve(name);
        Path corpus = work.resolve("corpus");
        Files.createDirectories(corpus);
        Path log = work.resolve("log.txt");
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-Xmx768m", "-Xss4m", "-XX:+UseSerialGC", "-XX:ActiveProcessorCount=1", "-XX:+EnableDynamicAgentLoading",
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "--add-opens=java.base/java.nio=ALL-UNNAMED",
                "--sun-misc-unsafe-memory-access=allow", "-Dslf4j.internal.verbosity=ERROR",
                "-Dlora4j.shared=" + System.getProperty("lora4j.shared", "../shared"),
                "-cp", System.getProperty("java.class.path"), "com.code_intelligence.jazzer.Jazzer",
                "--target_class=" + target.getName(), "--instrumentation_includes=io.lora4j.**"
                        + (target == ArrowDatasetFuzz.class ? ":org.apache.arrow.vector.**:org.apache.arrow.memory.**" : ""),
                "--disabled_hooks=com.code_intelligence.jazzer.sanitizers.RegexInjection", // regexes in config files are the format's
                "-timeout=20", "-rss_limit_mb=4096", "-max_len=" + Math.max(4096, maxSeed(target)), "-print_final_stats=1",
                "--reproducer_path=" + work.toAbsolutePath(), "-artifact_prefix=" + work.toAbsolutePath() + "/"));
        if (runs > 0) {
            cmd.add("-runs=" + runs);
        } else {
            cmd.add("-max_total_time=" + seconds);
        }
        cmd.add(corpus.toString());
        cmd.add(CORPUS.resolve(name).toString());
        long t0 = System.nanoTime();
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).redirectOutput(log.toFile()).start();
        long limit = runs > 0 ? TimeUnit.HOURS.toSeconds(12) : seconds + 120;
        if (!p.waitFor(limit, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail(name + ": the campaign did not end within " + limit + " s; see " + log);
        }
        double wall = (System.nanoTime() - t0) / 1e9;
        String out = Files.readString(log, StandardCharsets.UTF_8);
        Matcher done = Pattern.compile("Done (\\d+) runs in (\\d+) second").matcher(out);
        Matcher cov = Pattern.compile("#\\d+\\s+DONE\\s+cov: (\\d+) ft: (\\d+) corp: (\\d+)/").matcher(out);
        String stats = done.find() ? done.group(1) + " runs in " + done.group(2) + " s" : "no final stats";
        String coverage = cov.find() ? "cov " + cov.group(1) + ", ft " + cov.group(2) + ", corpus " + cov.group(3) : "";
        String line = String.format(Locale.ROOT, "%-22s exit %d, %s, %s, %.0f s wall%n", name, p.exitValue(), stats, coverage, wall);
        Files.writeString(WORK.resolve("summary.txt"), line, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
        System.out.print("fuzz: " + line);
        if (p.exitValue() != 0) {
            int at = Math.max(0, out.indexOf("== Java Exception"));
            fail(name + ": a finding (exit " + p.exitValue() + "); the input is in " + work + "; report:\n"
                    + out.substring(at, Math.min(out.length(), at + 6000)));
        }
        assertTrue(done.hitEnd() || stats.contains("runs"), name + ": no final statistics in " + log);
        if (runs > 0) {
            assertEquals(runs, Long.parseLong(stats.split(" ")[0]), name + ": executions");
        }
    }

    private static int maxSeed(Class<?> target) throws IOException {
        int max = 0;
        for (Path p : inputs(target)) {
            max = (int) Math.max(max, Files.size(p));
        }
        return max;
    }
}

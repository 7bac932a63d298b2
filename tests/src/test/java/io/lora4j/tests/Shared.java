package io.lora4j.tests;

import io.lora4j.cli.Main;
import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.State;
import io.lora4j.model.lora.PeftAdapters;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertTrue;

/** Paths to ../shared/models, an in-process runner for the CLI, and the library-API generation the CLI's output is checked against. */
final class Shared {
    private Shared() {
    }

    static Path models() {
        String s = System.getProperty("lora4j.shared");
        Path p = Path.of(s == null ? "../shared" : s, "models");
        assertTrue(Files.isDirectory(p), "shared models not found at " + p.toAbsolutePath());
        return p;
    }

    static Path stories() {
        return models().resolve("stories260K/stories260K.gguf");
    }

    /** Exit code, standard output and standard error of one CLI invocation. */
    record Run(int code, String out, String err) {
    }

    static synchronized Run cli(String... args) {
        PrintStream oldOut = System.out, oldErr = System.err;
        ByteArrayOutputStream out = new ByteArrayOutputStream(), err = new ByteArrayOutputStream();
        try {
            System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            int code = Main.run(args);
            return new Run(code, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setOut(oldOut);
            System.setErr(oldErr);
        }
    }

    /** The sampler settings of {@code generate}/{@code chat} given only --temperature and --seed (the other options at their defaults). */
    static Sampler.Params cliSampling(float temperature, long seed) {
        return new Sampler.Params(temperature, 40, 0.95f, 0.05f, 1.0f, 64, seed);
    }

    /** The tokens {@link Generator} produces from {@code prompt} (ids, BOS included), in a state sized as the CLI's defaults size it. */
    static int[] apiTokens(LoadedModel lm, int[] prompt, Sampler.Params p, int maxNew) {
        try (Backend b = Backend.named("jvm")) {
            State s = lm.llama().newState(128, 4096);
            return Generator.generate(lm.llama(), b, s, prompt, 0, maxNew, new Sampler(p, lm.llama().config().vocabSize()),
                    lm.tokenizer().stopTokens(), t -> { }).tokens();
        }
    }

    /** BOS followed by the prompt's tokens, as {@code generate --prompt} encodes it. */
    static int[] withBos(LoadedModel lm, String prompt) {
        int[] body = lm.tokenizer().encode(prompt);
        int[] ids = new int[body.length + 1];
        ids[0] = lm.tokenizer().bos();
        System.arraycopy(body, 0, ids, 1, body.length);
        return ids;
    }

    /**
     * What {@code generate --prompt prompt} prints on standard output, computed with the library API:
     * the prompt, the decoded continuation, a newline.
     */
    static String apiGenerate(LoadedModel lm, String prompt, Sampler.Params p, int maxNew) {
        int[] tokens = apiTokens(lm, withBos(lm, prompt), p, maxNew);
        assertTrue(tokens.length > 0, "the API generated nothing");
        return prompt + lm.tokenizer().decode(tokens) + "\n";
    }

    /** Loads {@code adapterDirs} (PEFT directories) into the model and activates them all at scale 1, as {@code --adapter} does. */
    static LoadedModel withAdapters(LoadedModel lm, Path... adapterDirs) {
        Map<String, Float> scales = new LinkedHashMap<>();
        for (Path d : adapterDirs) {
            String name = d.getFileName().toString();
            lm.llama().adapters().add(PeftAdapters.load(d, lm.llama(), name));
            scales.put(name, 1f);
        }
        lm.llama().adapters().activate(scales);
        return lm;
    }
}

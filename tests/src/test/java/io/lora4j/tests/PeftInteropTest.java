package io.lora4j.tests;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.MergedExport;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.TimeUnit;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * All-linear adapters between lora4j and real PEFT (0.21, transformers 5.17, torch 2.13 CPU): an
 * adapter lora4j trains with {@code --target-modules all-linear} loads with
 * {@code PeftModel.from_pretrained} (PEFT rejected the list {@code ["all-linear"]} lora4j used to
 * write) and gives lora4j's greedy tokens on the same model (the HF export of stories260K for PEFT,
 * the GGUF itself for lora4j); an all-linear adapter PEFT makes loads in lora4j and gives PEFT's
 * tokens. Needs a Python with those packages: {@code -Dlora4j.peft.python=…} (default
 * {@code /tmp/peftenv/bin/python}, set up as ../shared/tools/README.md says); skipped, with the
 * reason, without one.
 */
@Tag("slow")
class PeftInteropTest {
    static final int N = 24;

    @Test
    void allLinearAdaptersGoBothWays(@TempDir Path dir) throws Exception {
        String python = System.getProperty("lora4j.peft.python", "/tmp/peftenv/bin/python");
        Assumptions.assumeTrue(Files.isExecutable(Path.of(python)) && run(List.of(python, "-c", "import peft, transformers, torch"), 120)
                .startsWith("ok"), "no Python with peft, transformers and torch at " + python + " (-Dlora4j.peft.python)");
        Path hf = dir.resolve("stories-hf"), ours = dir.resolve("lora4j-adapter"), theirs = dir.resolve("peft-adapter");
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            MergedExport.writeHf(lm.llama(), hf, GgmlType.F32); // nothing merged: the base in HF layout
        }
        Shared.Run t = Shared.cli("train", "--model", Shared.stories().toString(), "--target-modules", "all-linear", "--steps", "30",
                "--lr", "1e-2", "--seq-len", "64", "-o", ours.toString());
        assertEquals(0, t.code(), t.err());
        Path script = Path.of("src/test/python/peft_all_linear.py");
        String out = run(List.of(python, script.toString(), hf.toString(), ours.toString(), theirs.toString(), Integer.toString(N)), 600);
        JsonNode res = new ObjectMapper().readTree(out.substring(out.lastIndexOf("\n{") + 1));

        List<Integer> base = greedy(null, "base");
        List<Integer> lora4jInLora4j = greedy(ours, "ours");
        assertNotEquals(base, lora4jInLora4j, "the trained adapter changes the output");
        assertEquals(lora4jInLora4j, ints(res.get("lora4j_in_peft")), "lora4j's all-linear adapter in PEFT");
        Set<String> targets = new TreeSet<>();
        res.get("peft_target_modules").forEach(x -> targets.add(x.asText()));
        assertEquals(new TreeSet<>(LoraConfig.ALL_LINEAR), targets, "PEFT's own all-linear file");
        List<Integer> peftInLora4j = greedy(theirs, "theirs");
        assertNotEquals(base, peftInLora4j, "PEFT's random adapter changes the output");
        assertEquals(ints(res.get("peft")), peftInLora4j, "PEFT's all-linear adapter in lora4j");
    }

    /** N greedy tokens after BOS on stories260K.gguf, with the adapter in {@code adapter} (or none), no stop token. */
    static List<Integer> greedy(Path adapter, String name) {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null); Backend b = Backend.named("jvm")) {
            Llama m = lm.llama();
            if (adapter != null) {
                m.adapters().add(PeftAdapters.load(adapter, m, name));
                m.adapters().activate(Map.of(name, 1f));
            }
            int[] gen = Generator.generate(m, b, m.newState(8, N + 1), new int[]{1}, 0, N,
                    new Sampler(Sampler.Params.greedy(), m.config().vocabSize()), Set.of(), x -> { }).tokens();
            List<Integer> l = new ArrayList<>();
            for (int x : gen) {
                l.add(x);
            }
            return l;
        }
    }

    static List<Integer> ints(JsonNode a) {
        List<Integer> l = new ArrayList<>();
        a.forEach(x -> l.add(x.asInt()));
        return l;
    }

    /** Runs a command; returns "ok" + its output when it exits 0, else its output (a failed run fails the test). */
    static String run(List<String> cmd, int seconds) throws Exception {
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        byte[] out = p.getInputStream().readAllBytes();
        assertTrue(p.waitFor(seconds, TimeUnit.SECONDS), "timed out: " + cmd);
        String s = new String(out, StandardCharsets.UTF_8);
        if (cmd.contains("-c")) {
            return p.exitValue() == 0 ? "ok" + s : s;
        }
        assertEquals(0, p.exitValue(), cmd + ":\n" + s);
        return s;
    }
}

package io.lora4j.tests;

import com.fasterxml.jackson.databind.JsonNode;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code train --loraplus-lr-ratio}, {@code train --init-lora-weights pissa|olora} and {@code adapters combine} end to end. */
class CliPeftVariantsTest {

    static Shared.Run train(Path dir, String out, String... extra) throws Exception {
        Path data = dir.resolve("data.jsonl");
        if (!Files.exists(data)) {
            Files.writeString(data, CliTrainTest.DATA);
        }
        String[] base = {"train", "--model", Shared.stories().toString(), "--data", data.toString(), "--steps", "4", "--seq-len",
                "32", "--eval-split", "0.3", "--r", "4", "--target-modules", "q_proj,v_proj", "-o", dir.resolve(out).toString()};
        String[] args = new String[base.length + extra.length];
        System.arraycopy(base, 0, args, 0, base.length);
        System.arraycopy(extra, 0, args, base.length, extra.length);
        return Shared.cli(args);
    }

    @Test
    void loraPlusTrainsAndItsRatioIsInTheCheckpoint(@TempDir Path dir) throws Exception {
        Shared.Run r = train(dir, "plus", "--loraplus-lr-ratio", "16", "--save-every", "2", "--lr", "5e-3");
        assertEquals(0, r.code(), r.err());
        JsonNode state = PeftReference.json(dir.resolve("plus/checkpoint-2/trainer_state.json"));
        assertEquals(16.0, state.path("config").path("loraplusLrRatio").asDouble());
        Shared.Run plain = train(dir, "plain", "--lr", "5e-3");
        assertEquals(0, plain.code(), plain.err());
        assertNotEquals(CliTrainTest.evals(CliTrainTest.metrics(dir.resolve("plus"))),
                CliTrainTest.evals(CliTrainTest.metrics(dir.resolve("plain"))), "LoRA+ changes the run");
        Shared.Run emb = train(dir, "emb", "--loraplus-lr-ratio", "16", "--loraplus-lr-embedding", "1e-6");
        assertEquals(1, emb.code());
        assertTrue(emb.err().contains("--loraplus-lr-embedding") && emb.err().contains("embedding"), emb.err());
        assertFalse(emb.err().contains("Exception"), emb.err());
        Shared.Run zero = train(dir, "zero", "--loraplus-lr-ratio", "0");
        assertEquals(1, zero.code());
        assertTrue(zero.err().contains("--loraplus-lr-ratio must be > 0"), zero.err());
    }

    /**
     * {@code train --use-dora}: the adapter has PEFT's magnitude vectors and use_dora; generate with it equals the
     * library's generation with it loaded; the merged model generates the same text; a checkpoint resumes it;
     * what DoRA does not take is refused cleanly.
     */
    @Test
    void doraTrainsGeneratesMergesAndResumes(@TempDir Path dir) throws Exception {
        Shared.Run r = train(dir, "dora", "--use-dora", "--lr", "2e-2", "--save-every", "2");
        assertEquals(0, r.code(), r.err());
        Path out = dir.resolve("dora");
        assertTrue(PeftAdapters.readConfig(out).lora().useDora());
        assertTrue(PeftReference.tensors(out.resolve(PeftAdapters.WEIGHTS)).keySet().stream()
                .anyMatch(k -> k.endsWith("q_proj.lora_magnitude_vector")));
        Shared.Run i = Shared.cli("adapters", "inspect", out.toString());
        assertEquals(0, i.code(), i.err());
        assertTrue(i.out().contains("use_dora=true"), i.out());
        Shared.Run g = Shared.cli("generate", "--model", Shared.stories().toString(), "--adapter", out.toString(), "--prompt",
                "Once upon a time", "--temperature", "0", "--max-tokens", "24");
        assertEquals(0, g.code(), g.err());
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            String adapted = Shared.apiGenerate(Shared.withAdapters(lm, out), "Once upon a time",
                    io.lora4j.model.Sampler.Params.greedy(), 24);
            assertEquals(adapted, g.out(), "generate --adapter = Generator with the DoRA adapter loaded");
        }
        Shared.Run mg = Shared.cli("merge", "--model", Shared.stories().toString(), "--adapter", out.toString(), "-o",
                dir.resolve("merged.gguf").toString());
        assertEquals(0, mg.code(), mg.err());
        Shared.Run gm = Shared.cli("generate", "--model", dir.resolve("merged.gguf").toString(), "--prompt", "Once upon a time",
                "--temperature", "0", "--max-tokens", "24");
        assertEquals(g.out(), gm.out(), "the merged model generates as the DoRA adapter unmerged");
        Shared.Run resumed = train(dir, "dora", "--use-dora", "--lr", "2e-2", "--resume", out.toString());
        assertEquals(0, resumed.code(), resumed.err());
        CliErrorsTest.assertCleanError(train(dir, "x", "--use-dora", "--bias", "lora_only"), 1, "DoRA");
        CliErrorsTest.assertCleanError(train(dir, "y", "--use-dora", "--init-lora-weights", "olora"), 1, "magnitude vector");
        CliErrorsTest.assertCleanError(train(dir, "z", "--use-dora", "--method", "adalora"), 1, "ADALORA does not support DoRA");
    }

    @Test
    void pissaAndOloraTrainAndSaveAnAdapterForTheOriginalBase(@TempDir Path dir) throws Exception {
        for (String init : new String[]{"pissa_niter_2", "olora"}) {
            Shared.Run r = train(dir, init, "--init-lora-weights", init, "--lr", "5e-3");
            assertEquals(0, r.code(), r.err());
            assertTrue(r.err().contains("10 projections decomposed"), r.err());
            assertTrue(r.err().contains("converted for the original base: r 8"), r.err());
            PeftAdapters.Config c = PeftAdapters.readConfig(dir.resolve(init));
            assertEquals(8, c.lora().r());
            assertEquals(32f, c.lora().loraAlpha());
            assertEquals("true", c.lora().initLoraWeights());
            Shared.Run g = Shared.cli("generate", "--model", Shared.stories().toString(), "--adapter", dir.resolve(init).toString(),
                    "--prompt", "Once upon a time", "--temperature", "0", "-n", "8");
            assertEquals(0, g.code(), g.err());
        }
        Shared.Run q = train(dir, "q", "--init-lora-weights", "pissa", "--quantize", "nf4");
        assertEquals(1, q.code());
        assertTrue(q.err().contains("Please initialize PiSSA under float32, float16, or bfloat16"), q.err());
        assertFalse(q.err().contains("Exception"), q.err());
        Shared.Run bad = train(dir, "bad", "--init-lora-weights", "pissa_niter_x");
        assertEquals(1, bad.code());
        assertTrue(bad.err().contains("pissa_niter_[number of iters]"), bad.err());
    }

    @Test
    void combineWritesAPeftAdapterOfEveryType(@TempDir Path dir) throws Exception {
        assertEquals(0, train(dir, "a", "--seed", "1").code());
        assertEquals(0, train(dir, "b", "--seed", "2").code());
        String a = dir.resolve("a").toString(), b = dir.resolve("b").toString();
        for (String type : io.lora4j.model.lora.WeightedAdapters.TYPES) {
            Path out = dir.resolve("c-" + type);
            Shared.Run r = Shared.cli("adapters", "combine", "--model", Shared.stories().toString(), a, b, "--weights", "0.7,-0.3",
                    "--type", type, "--density", "0.5", "--seed", "3", "-o", out.toString());
            assertEquals(0, r.code(), type + ": " + r.err());
            PeftAdapters.Config c = PeftAdapters.readConfig(out);
            assertEquals(type.equals("cat") ? 8 : 4, c.lora().r(), type);
            assertEquals(c.lora().r(), c.lora().loraAlpha(), 0, type);
            try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
                assertEquals(10, PeftAdapters.load(out, lm.llama(), "c").layers().size(), type);
            }
        }
        Shared.Run noDensity = Shared.cli("adapters", "combine", "--model", Shared.stories().toString(), a, b, "--weights", "0.7,0.3", "--type", "ties", "-o",
                dir.resolve("x").toString());
        assertEquals(1, noDensity.code());
        assertTrue(noDensity.err().contains("ties needs a density"), noDensity.err());
        Shared.Run count = Shared.cli("adapters", "combine", "--model", Shared.stories().toString(), a, b, "--weights", "0.7", "-o", dir.resolve("y").toString());
        assertEquals(1, count.code());
        assertTrue(count.err().contains("--weights has 1 value(s) for 2 adapter(s)"), count.err());
        Shared.Run type = Shared.cli("adapters", "combine", "--model", Shared.stories().toString(), a, b, "--weights", "1,1", "--type", "average", "-o",
                dir.resolve("z").toString());
        assertEquals(1, type.code());
        assertTrue(type.err().contains("combination type must be one of"), type.err());
    }
}

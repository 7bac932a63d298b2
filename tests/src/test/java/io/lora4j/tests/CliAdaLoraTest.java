package io.lora4j.tests;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code train --method adalora}, {@code adapters inspect} / {@code export-lora}, generation with both, and the errors. */
class CliAdaLoraTest {

    /** A short AdaLoRA run (q, v of 5 layers: 10 modules, 60 → 20 triplets); {@code options} (name, value pairs) override. */
    static List<String> train(Path out, String... options) {
        Map<String, String> o = new LinkedHashMap<>();
        String[] defaults = {"--model", Shared.stories().toString(), "--method", "adalora", "--steps", "8", "--seq-len", "32",
                "--lr", "5e-3", "--init-r", "6", "--target-r", "2", "--tinit", "2", "--tfinal", "2",
                "--target-modules", "q_proj,v_proj", "-o", out.toString()};
        for (String[] kv : new String[][]{defaults, options}) {
            for (int i = 0; i < kv.length; i += 2) {
                o.put(kv[i], kv[i + 1]);
            }
        }
        List<String> a = new ArrayList<>(List.of("train"));
        o.forEach((k, v) -> {
            a.add(k);
            a.add(v);
        });
        return a;
    }

    @Test
    void trainInspectExportAndGenerate(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("ada");
        // a higher --lr than the other runs here: enough to change the greedy text checked below
        Shared.Run r = Shared.cli(train(out, "--lr", "2e-2").toArray(String[]::new));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("budget 60") && r.err().contains("budget 20") && r.err().contains("orth "), r.err());
        assertTrue(r.err().contains("adalora: kept 20 of 60 triplets (target 20)"), r.err());
        String cfg = Files.readString(out.resolve("adapter_config.json"));
        assertTrue(cfg.contains("\"peft_type\" : \"ADALORA\"") && cfg.contains("\"total_step\" : 8"), cfg);
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertTrue(csv.get(0).endsWith(",orth_reg_loss,budget"), csv.get(0));
        assertTrue(csv.stream().filter(l -> l.startsWith("8,train,")).allMatch(l -> l.endsWith(",20")), csv.toString());
        Map<Integer, Double> eval = CliTrainTest.evals(CliTrainTest.metrics(out));
        assertEquals(List.of(0, 8), List.copyOf(eval.keySet()), eval.toString());
        assertTrue(eval.get(8) < eval.get(0) - 0.03, "held-out loss falls: " + eval);

        Shared.Run i = Shared.cli("adapters", "inspect", out.toString());
        assertEquals(0, i.code(), i.err());
        assertTrue(i.out().contains("type:     ADALORA") && i.out().contains("init_r=6 target_r=2")
                && i.out().contains("total 20") && i.out().contains("10 modules, 20 triplets kept of 60"), i.out());

        Path lora = dir.resolve("lora");
        Shared.Run x = Shared.cli("adapters", "export-lora", out.toString(), "-o", lora.toString());
        assertEquals(0, x.code(), x.err());
        Shared.Run li = Shared.cli("adapters", "inspect", lora.toString());
        assertTrue(li.out().contains("type:     LORA") && li.out().contains("total 20"), li.out());

        String[] gen = {"generate", "--model", Shared.stories().toString(), "--prompt", "Once upon a time", "--temperature", "0",
                "--max-tokens", "32", "--adapter", ""};
        gen[gen.length - 1] = out.toString();
        Shared.Run ga = Shared.cli(gen);
        gen[gen.length - 1] = lora.toString();
        Shared.Run gl = Shared.cli(gen);
        assertEquals(0, ga.code(), ga.err());
        assertEquals(0, gl.code(), gl.err());
        assertEquals(ga.out(), gl.out(), "AdaLoRA and its LoRA export generate the same text");
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            String base = Shared.apiGenerate(lm, "Once upon a time", Sampler.Params.greedy(), 32);
            String adapted = Shared.apiGenerate(Shared.withAdapters(lm, out), "Once upon a time", Sampler.Params.greedy(), 32);
            assertEquals(adapted, ga.out(), "generate --adapter = Generator with the AdaLoRA adapter loaded");
            assertNotEquals(base, adapted, "the trained adapter changes the greedy continuation");
        }

        // an AdaLoRA adapter is already pruned: continuing it is refused, merging it works
        CliErrorsTest.assertCleanError(Shared.cli(train(dir.resolve("again"), "--adapter", out.toString())
                .toArray(String[]::new)), 1, "already pruned", "export-lora");
        Shared.Run mg = Shared.cli("merge", "--model", Shared.stories().toString(), "--adapter", out.toString(), "-o",
                dir.resolve("merged.gguf").toString());
        assertEquals(0, mg.code(), mg.err());
        Shared.Run gm = Shared.cli("generate", "--model", dir.resolve("merged.gguf").toString(), "--prompt", "Once upon a time",
                "--temperature", "0", "--max-tokens", "32");
        assertEquals(0, gm.code(), gm.err());
        assertEquals(ga.out(), gm.out(), "the merged model generates as the AdaLoRA adapter unmerged");
        CliErrorsTest.assertCleanError(Shared.cli("adapters", "export-lora", lora.toString(), "-o", dir.resolve("x").toString()),
                1, "LoRA already");
    }

    @Test
    void resumedAdaLoraRunWritesTheSameAdapter(@TempDir Path dir) throws Exception {
        Path full = dir.resolve("full"), cut = dir.resolve("cut");
        assertEquals(0, Shared.cli(train(full).toArray(String[]::new)).code());
        Shared.Run first = Shared.cli(train(cut, "--save-every", "3").toArray(String[]::new));
        assertEquals(0, first.code(), first.err());
        List<String> interrupted = Files.readAllLines(cut.resolve("metrics.csv"));
        // lose everything after the checkpoint at step 6, then resume from it
        for (String f : new String[]{"adapter_model.safetensors", "adapter_config.json"}) {
            Files.delete(cut.resolve(f));
        }
        Shared.Run res = Shared.cli("train", "--model", Shared.stories().toString(), "--resume", cut.resolve("checkpoint-6").toString(),
                "-o", cut.toString());
        assertEquals(0, res.code(), res.err());
        assertTrue(res.err().contains("at step 6 of 8"), res.err());
        for (String f : new String[]{"adapter_model.safetensors", "adapter_config.json"}) {
            byte[] a = Files.readAllBytes(full.resolve(f)), b = Files.readAllBytes(cut.resolve(f));
            assertArrayEquals(a, b, f);
        }
        CliResumeTest.assertResumedRows(interrupted, full, cut, 6);
    }

    @Test
    void misconfigurationsAreRejectedWithClearMessages(@TempDir Path dir) {
        Path o = dir.resolve("o");
        CliErrorsTest.assertCleanError(Shared.cli(train(o, "--tinit", "6").toArray(String[]::new)), 1,
                "tinit (6) must be < total_step - tfinal (8 - 2 = 6)");
        CliErrorsTest.assertCleanError(Shared.cli(train(o, "--target-r", "9").toArray(String[]::new)), 1,
                "target_r (9) is larger than init_r (6)");
        CliErrorsTest.assertCleanError(Shared.cli(train(o, "--total-step", "0").toArray(String[]::new)), 1,
                "total_step > 0");
        CliErrorsTest.assertCleanError(Shared.cli(train(o, "--rank-pattern", "v_proj=2").toArray(String[]::new)), 1,
                "do not apply to AdaLoRA");
        CliErrorsTest.assertCleanError(Shared.cli(train(o, "--method", "dora").toArray(String[]::new)), 1,
                "--method must be lora, adalora or bottleneck");
    }

    /** AdaLoRA options without --method adalora, or a --method that the continued --adapter is not, would be ignored. */
    @Test
    void optionsThatWouldBeIgnoredAreRejected(@TempDir Path dir) throws Exception {
        Path o = dir.resolve("o");
        CliErrorsTest.assertCleanError(Shared.cli(train(o, "--method", "lora").toArray(String[]::new)), 1,
                "--init-r, --target-r, --tinit, --tfinal apply only to --method adalora");
        Path lora = dir.resolve("lora");
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            PeftAdapters.save(new LoraAdapter("default", LoraConfig.of(4, 8f, List.of("q_proj")), lm.llama(), 1), lm.llama(), lora);
        }
        CliErrorsTest.assertCleanError(Shared.cli("train", "--model", Shared.stories().toString(), "--method", "adalora",
                "--adapter", lora.toString(), "--steps", "1", "-o", o.toString()), 1, "is a LORA adapter", "--method adalora");
        assertTrue(Files.notExists(o), "nothing was trained");
    }
}

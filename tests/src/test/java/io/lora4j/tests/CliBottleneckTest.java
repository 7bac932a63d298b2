package io.lora4j.tests;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.lora.BottleneckLayer;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static io.lora4j.tests.CliTrainTest.evalBeforeTraining;
import static io.lora4j.tests.CliTrainTest.evals;
import static io.lora4j.tests.CliTrainTest.metrics;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code train --method bottleneck} on stories260K end to end: the held-out loss falls, the adapter is written in
 * AdapterHub's format and is the trained one, {@code generate --adapter} runs it, {@code bench --compare-adapters}
 * prints the four latencies, and what does not apply is refused with a message.
 */
class CliBottleneckTest {

    @Test
    void bottleneckTrainingLowersTheHeldOutLossAndGenerateRunsTheAdapter(@TempDir Path dir) throws Exception {
        Path data = Files.writeString(dir.resolve("data.jsonl"), CliTrainTest.DATA);
        String model = Shared.stories().toString();
        Path out = dir.resolve("bn");
        Shared.Run r = Shared.cli("train", "--model", model, "--data", data.toString(), "--method", "bottleneck",
                "--reduction-factor", "4", "--lr", "2e-2", "--steps", "10", "--seq-len", "32", "--eval-split", "0.3",
                "--eval-every", "5", "--save-every", "5", "-o", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("trainable params: 21,280 "), "5 layers x 2 x (2*64*16 + 16 + 64): " + r.err());
        for (String f : new String[]{"adapter_config.json", "adapter.safetensors", "metrics.csv", "loss.png",
                "checkpoint-10/adapter.safetensors"}) {
            assertTrue(Files.size(out.resolve(f)) > 0, f);
        }
        assertFalse(Files.exists(out.resolve(PeftAdapters.WEIGHTS)), "no PEFT weights file");
        Map<Integer, Double> eval = evals(metrics(out));
        double start = eval.get(0), end = eval.get(10);
        assertEquals(start, evalBeforeTraining(r.err()), 1e-4);
        assertTrue(eval.get(5) < start && end < eval.get(5), "held-out loss falls: " + eval);
        assertTrue(end < start - 1.0, "held-out loss " + start + " -> " + end);

        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            LoraAdapter a = PeftAdapters.load(out, lm.llama(), "t");
            assertEquals(10, a.bottlenecks().size());
            BottleneckLayer b = a.bottleneck(4, Sublayer.FFN);
            assertEquals(16, b.d);
            float bias = 0;
            for (float v : b.upBias.toArray()) {
                bias = Math.max(bias, Math.abs(v));
            }
            assertTrue(bias > 0, "adapter_up.bias starts at zero and was trained");
        }

        Shared.Run inspect = Shared.cli("adapters", "inspect", out.toString());
        assertEquals(0, inspect.code(), inspect.err());
        assertTrue(inspect.out().contains("type:     BOTTLENECK (AdapterHub, name default)")
                && inspect.out().contains("modules:  10 (40 tensors)") && inspect.out().contains("params:   21,280"), inspect.out());

        // a checkpoint resumes (its AdapterHub weights are hashed and loaded)
        Path resumed = dir.resolve("resumed");
        Shared.Run c = Shared.cli("train", "--model", model, "--data", data.toString(), "--eval-split", "0.3",
                "--resume", out.resolve("checkpoint-5").toString(), "-o", resumed.toString());
        assertEquals(0, c.code(), c.err());
        assertTrue(c.err().contains("resuming from") && c.err().contains("at step 5 of 10"), c.err());
        assertEquals(end, evals(metrics(resumed)).get(10), 1e-5, "resumed from step 5: the same adapter at step 10");

        CliTrainTest.generateWithAdapter(out);

        Shared.Run merge = Shared.cli("bench", "--model", model, "--adapter", out.toString(), "--merge", "-p", "0", "-n", "2",
                "-r", "1");
        assertNotEquals(0, merge.code());
        assertTrue(merge.err().contains("bottleneck adapter") && !merge.err().contains("\tat "), merge.err());
    }

    @Test
    void benchComparesTheFourLatencies() {
        Shared.Run b = Shared.cli("bench", "--model", Shared.stories().toString(), "--compare-adapters", "-n", "8", "-r", "2");
        assertEquals(0, b.code(), b.err());
        List<String> rows = b.out().lines().filter(l -> l.startsWith("| ") && !l.startsWith("| variant") && !l.startsWith("| ---")).toList();
        assertEquals(4, rows.size(), b.out());
        assertTrue(rows.get(0).startsWith("| base | 0 |"), rows.get(0));
        assertTrue(rows.get(1).contains("unmerged | 17,920 |") && rows.get(2).startsWith("| LoRA merged | 17,920 |"), b.out());
        assertTrue(rows.get(3).startsWith("| bottleneck d 13 ") && rows.get(3).contains("| 17,410 |"),
                "the width nearest LoRA's parameter count: " + rows.get(3));
    }

    @Test
    void optionsThatDoNotApplyAreRefused(@TempDir Path dir) throws Exception {
        String model = Shared.stories().toString();
        Shared.Run r = Shared.cli("train", "--model", model, "--method", "bottleneck", "--r", "4", "--steps", "1", "-o",
                dir.resolve("a").toString());
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("--r do not apply to --method bottleneck"), r.err());
        r = Shared.cli("train", "--model", model, "--reduction-factor", "4", "--steps", "1", "-o", dir.resolve("b").toString());
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("--reduction-factor apply only to --method bottleneck"), r.err());
        r = Shared.cli("train", "--model", model, "--method", "bottleneck", "--non-linearity", "mish", "--steps", "1", "-o",
                dir.resolve("c").toString());
        assertNotEquals(0, r.code());
        assertTrue(r.err().contains("non_linearity 'mish' is not supported") && !r.err().contains("\tat "), r.err());
    }
}

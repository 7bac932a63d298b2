package io.lora4j.tests;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@code lora4j train} end to end: its files, continuing from the adapter, and generating with it. */
class CliTrainTest {

    @Test
    void trainWritesAdapterMetricsAndPlotThenContinuesAndGenerates(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("data.jsonl");
        Files.writeString(data, """
                {"text": "Once upon a time, there was a little dragon named Spark. Spark liked to fly."}
                {"prompt": "Spark saw a boy.", "completion": " The boy was sad because his kite was stuck."}
                {"messages": [{"role": "user", "content": "Who is Spark?"}, {"role": "assistant", "content": "A little dragon."}]}
                """);
        Path out = dir.resolve("adapter");
        Shared.Run r = Shared.cli("train", "--model", Shared.stories().toString(), "--data", data.toString(),
                "--steps", "6", "--seq-len", "32", "--eval-split", "0.3", "--eval-every", "3", "--lora-dropout", "0.1",
                "--target-modules", "all-linear", "--lr-scheduler", "linear", "--warmup-steps", "2", "-o", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("trainable params: "), r.err());
        assertTrue(r.err().contains("memory: base block projections"), r.err());
        assertTrue(r.err().contains("step 6/6"), r.err());
        for (String f : new String[]{"adapter_config.json", "adapter_model.safetensors", "metrics.csv", "metrics.jsonl", "loss.png"}) {
            assertTrue(Files.size(out.resolve(f)) > 0, f);
        }
        byte[] png = Files.readAllBytes(out.resolve("loss.png"));
        assertEquals((byte) 0x89, png[0]);
        assertEquals('P', png[1]);
        List<String> csv = Files.readAllLines(out.resolve("metrics.csv"));
        assertEquals("step,split,loss,perplexity,lr,grad_norm,tokens,tokens_per_s,orth_reg_loss,budget", csv.get(0));
        assertTrue(csv.stream().filter(l -> l.contains(",train,")).count() == 6, csv.toString());
        assertTrue(csv.stream().anyMatch(l -> l.contains(",eval,")), csv.toString());

        Path out2 = dir.resolve("continued");
        Shared.Run c = Shared.cli("train", "--model", Shared.stories().toString(), "--data", data.toString(),
                "--steps", "2", "--seq-len", "32", "--adapter", out.toString(), "--optimizer", "sgd", "--lr", "0.01",
                "-o", out2.toString());
        assertEquals(0, c.code(), c.err());
        assertTrue(Files.exists(out2.resolve("adapter_model.safetensors")));

        Shared.Run g = Shared.cli("generate", "--model", Shared.stories().toString(), "--adapter", out2.toString(),
                "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "10");
        assertEquals(0, g.code(), g.err());
        assertTrue(g.out().startsWith("Once upon a time"), g.out());
    }

    @Test
    void badDataIsReportedWithoutAStackTrace(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("broken.jsonl");
        Files.writeString(data, "{\"text\": \"fine\"}\n{oops\n");
        Shared.Run r = Shared.cli("train", "--model", Shared.stories().toString(), "--data", data.toString(),
                "--steps", "1", "-o", dir.resolve("o").toString());
        CliErrorsTest.assertCleanError(r, 1, "broken.jsonl", "line 2");
        Shared.Run b = Shared.cli("train", "--model", Shared.stories().toString(), "--r", "0", "-o", dir.resolve("o").toString());
        CliErrorsTest.assertCleanError(b, 1, "r must be >= 1");
    }
}

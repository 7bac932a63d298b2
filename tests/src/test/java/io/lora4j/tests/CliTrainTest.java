package io.lora4j.tests;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * {@code lora4j train} end to end: the held-out loss falls, the saved adapter is the trained one (it
 * loads, and a continued run starts at the loss the first one ended with), and generating with it
 * gives the library's tokens for that adapter, which are not the base model's.
 */
class CliTrainTest {

    /** One metrics.csv row: step, split and loss. */
    record Row(int step, String split, double loss) {
    }

    static List<Row> metrics(Path dir) throws Exception {
        List<String> csv = Files.readAllLines(dir.resolve("metrics.csv"));
        assertEquals("step,split,loss,perplexity,lr,grad_norm,tokens,tokens_per_s,orth_reg_loss,budget", csv.get(0));
        return csv.subList(1, csv.size()).stream().map(l -> l.split(",", -1)).map(f -> {
            double loss = Double.parseDouble(f[2]);
            assertTrue(Double.isFinite(loss), Arrays.toString(f));
            assertEquals(Math.exp(loss), Double.parseDouble(f[3]), 1e-3 * Math.exp(loss), "perplexity = exp(loss): " + Arrays.toString(f));
            return new Row(Integer.parseInt(f[0]), f[1], loss);
        }).toList();
    }

    /** Held-out loss by step. */
    static Map<Integer, Double> evals(List<Row> rows) {
        Map<Integer, Double> m = new TreeMap<>();
        rows.stream().filter(r -> r.split().equals("eval")).forEach(r -> assertEquals(null, m.put(r.step(), r.loss()), "eval twice at " + r.step()));
        return m;
    }

    /** The loss printed by "eval before training: loss X". */
    static double evalBeforeTraining(String stderr) {
        Matcher m = Pattern.compile("eval before training: loss (\\S+),").matcher(stderr);
        assertTrue(m.find(), stderr);
        return Double.parseDouble(m.group(1));
    }

    /** Seven sequences about Spark the dragon in the three record formats; held-out ones share the pattern, so training must lower their loss. */
    static final String DATA = """
            {"text": "Once upon a time, there was a little dragon named Spark. Spark liked to fly over the hill."}
            {"text": "Spark the dragon had red wings. Every day, Spark liked to fly over the hill."}
            {"text": "One day, Spark the dragon met a boy. The boy and Spark liked to fly over the hill."}
            {"text": "Spark the dragon was happy. Spark liked to fly over the hill with his friends."}
            {"prompt": "Spark saw a boy.", "completion": " The boy was sad because his kite was stuck. Spark liked to fly over the hill."}
            {"messages": [{"role": "user", "content": "Who is Spark?"}, {"role": "assistant", "content": "A little dragon. Spark liked to fly over the hill."}]}
            """;

    @Test
    void trainLowersTheHeldOutLossAndAContinuedRunStartsWhereItEnded(@TempDir Path dir) throws Exception {
        Path data = Files.writeString(dir.resolve("data.jsonl"), DATA);
        String model = Shared.stories().toString();
        Path out = dir.resolve("adapter");
        Shared.Run r = Shared.cli("train", "--model", model, "--data", data.toString(), "--lr", "1e-2",
                "--steps", "6", "--seq-len", "32", "--eval-split", "0.3", "--eval-every", "3", "--lora-dropout", "0.1",
                "--target-modules", "all-linear", "--lr-scheduler", "linear", "--warmup-steps", "2", "-o", out.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("5 train + 2 eval sequences"), r.err());
        assertTrue(r.err().contains("step 6/6"), r.err());
        for (String f : new String[]{"adapter_config.json", "adapter_model.safetensors", "metrics.csv", "metrics.jsonl", "loss.png"}) {
            assertTrue(Files.size(out.resolve(f)) > 0, f);
        }
        byte[] png = Files.readAllBytes(out.resolve("loss.png"));
        assertArrayEquals(new byte[]{(byte) 0x89, 'P', 'N', 'G'}, Arrays.copyOf(png, 4));

        // the outcome: every step logged once, and the held-out loss falls at each evaluation, by a wide margin overall
        List<Row> rows = metrics(out);
        assertEquals(List.of(1, 2, 3, 4, 5, 6), rows.stream().filter(x -> x.split().equals("train")).map(Row::step).toList(), rows.toString());
        Map<Integer, Double> eval = evals(rows);
        assertEquals(List.of(0, 3, 6), List.copyOf(eval.keySet()), rows.toString());
        double start = eval.get(0), end = eval.get(6);
        assertEquals(start, evalBeforeTraining(r.err()), 1e-4, "the printed loss is the one in metrics.csv");
        assertTrue(eval.get(3) < start && end < eval.get(3), "held-out loss falls: " + eval);
        assertTrue(end < start - 0.5, "held-out loss " + start + " -> " + end + " (at least 0.5 nats lower)");

        // the saved adapter loads, targets every projection and is trained (B starts at zero)
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            LoraAdapter a = PeftAdapters.load(out, lm.llama(), "t");
            assertEquals(35, a.layers().size(), "all-linear: 7 projections x 5 layers");
            for (LoraLayer l : a.layers()) {
                float max = 0;
                for (float v : l.b.toArray()) {
                    assertTrue(Float.isFinite(v), l.path());
                    max = Math.max(max, Math.abs(v));
                }
                assertTrue(max > 0, l.path() + ": lora_B still zero");
            }
        }

        // continuing the saved adapter on the same split: it starts at the held-out loss the first run ended with, and lowers it
        Path out2 = dir.resolve("continued");
        Shared.Run c = Shared.cli("train", "--model", model, "--data", data.toString(), "--eval-split", "0.3",
                "--steps", "2", "--seq-len", "32", "--adapter", out.toString(), "--optimizer", "sgd", "--lr", "0.1",
                "-o", out2.toString());
        assertEquals(0, c.code(), c.err());
        Map<Integer, Double> eval2 = evals(metrics(out2));
        assertEquals(List.of(0, 2), List.copyOf(eval2.keySet()), eval2.toString());
        assertEquals(end, eval2.get(0), 1e-5, "the continued run starts where the saved adapter ended");
        assertEquals(end, evalBeforeTraining(c.err()), 1e-4);
        assertTrue(eval2.get(2) < end - 0.02, "continued training lowers the held-out loss further: " + eval2);

        String adapted = generateWithAdapter(out2);
        assertTrue(adapted.contains("Spark"), "the adapter learned the name: " + adapted);
    }

    /**
     * Generating with a trained adapter on stories260K: {@code generate --adapter} gives the library's greedy tokens for
     * that adapter, which are not the base model's; returns them.
     */
    static String generateWithAdapter(Path adapter) throws Exception {
        String prompt = "Once upon a time";
        Shared.Run g = Shared.cli("generate", "--model", Shared.stories().toString(), "--adapter", adapter.toString(),
                "--prompt", prompt, "--temperature", "0", "--max-tokens", "16");
        assertEquals(0, g.code(), g.err());
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            String base = Shared.apiGenerate(lm, prompt, Sampler.Params.greedy(), 16);
            String adapted = Shared.apiGenerate(Shared.withAdapters(lm, adapter), prompt, Sampler.Params.greedy(), 16);
            assertEquals(adapted, g.out(), "generate --adapter = Generator with the adapter loaded");
            assertNotEquals(base, adapted, "the trained adapter changes the greedy continuation");
            return adapted;
        }
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

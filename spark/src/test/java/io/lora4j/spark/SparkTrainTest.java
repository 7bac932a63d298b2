package io.lora4j.spark;

import io.lora4j.cli.LoraOptions;
import io.lora4j.cli.TrainingOptions;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.train.Datasets;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import picocli.CommandLine;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The Spark job with {@code local[2]}: 2 tasks × micro-batch 1 train the adapter that one trainer with
 * batch 2 trains on the same examples (bit for bit: the files are equal), and a task that fails in the
 * middle makes Spark rerun the stage, which resumes from the last checkpoint and ends with the same adapter
 * (slow: a second Spark job).
 */
class SparkTrainTest {
    @TempDir
    static Path tmp;
    static Path data, reference;
    static final String[] COMMON = {"--model", stories().toString(), "--r", "4", "--lora-alpha", "8",
            "--target-modules", "q_proj,v_proj", "--steps", "6", "--lr", "5e-3", "--seq-len", "48", "--seed", "3",
            "--eval-split", "0.2"};

    static Path stories() {
        return Path.of(System.getProperty("lora4j.shared", "../shared"), "models/stories260K/stories260K.gguf").toAbsolutePath();
    }

    @BeforeAll
    static void referenceRun() throws Exception {
        StringBuilder text = new StringBuilder();
        for (int i = 0; i < 14; i++) {
            text.append("Story ").append(i).append(": the little dragon Spark flew over hill number ").append(i)
                    .append(" and found a shiny stone.\n\n");
        }
        data = Files.writeString(tmp.resolve("stories.txt"), text);
        // `lora4j train --batch-size 2` in process, the CLI's own option classes building the configs
        reference = tmp.resolve("reference");
        Options o = new Options();
        List<String> args = new ArrayList<>(List.of(COMMON));
        args.addAll(List.of("--batch-size", "2"));
        new CommandLine(o).parseArgs(args.toArray(String[]::new));
        TrainConfig tc = o.training.config();
        try (LoadedModel lm = LoadedModel.open(stories(), null)) {
            Datasets.Split split = Datasets.split(Datasets.load(data, lm.tokenizer(), tc.seqLen()).examples(), 0.2, tc.seed());
            Trainer t = new Trainer(lm.llama(), new LoraAdapter("default", o.lora.config(), lm.llama(), tc.seed()), tc,
                    split.train(), split.eval());
            while (t.step() < tc.steps()) {
                t.trainStep();
            }
            PeftAdapters.save(t.adapter(), lm.llama(), reference);
        }
    }

    /** The option classes `train` uses. */
    static final class Options {
        @CommandLine.Mixin
        LoraOptions lora;
        @CommandLine.Mixin
        TrainingOptions training;
        @CommandLine.Option(names = {"--model", "--eval-split"})
        List<String> ignored;
    }

    private static int spark(Path out, String master, String... more) {
        List<String> args = new ArrayList<>(List.of(COMMON));
        args.addAll(List.of("--data", data.toString(), "--tasks", "2", "--batch-size", "1", "-o", out.toString(),
                "--spark-master", master));
        args.addAll(List.of(more));
        return SparkTrain.run(args.toArray(String[]::new));
    }

    @Test
    void twoTasksTrainTheAdapterOfBatchTwo() throws Exception {
        Path out = tmp.resolve("spark");
        assertEquals(0, spark(out, "local[2]"));
        assertArrayEquals(Files.readAllBytes(reference.resolve(PeftAdapters.WEIGHTS)), Files.readAllBytes(out.resolve(PeftAdapters.WEIGHTS)),
                "the same adapter, bit for bit");
        List<String> metrics = Files.readAllLines(out.resolve("metrics.jsonl"));
        assertEquals(6, metrics.size());
        assertTrue(metrics.getLast().contains("\"exchange_s\""), metrics.getLast());
    }

    @Test
    @Tag("slow")
    void aFailedTaskReRunsTheStageFromTheLastCheckpoint() throws Exception {
        Path out = tmp.resolve("spark-failure");
        assertEquals(0, spark(out, "local[2,4]", "--save-every", "2", "--fail-once-at-step", "4"));
        assertArrayEquals(Files.readAllBytes(reference.resolve(PeftAdapters.WEIGHTS)), Files.readAllBytes(out.resolve(PeftAdapters.WEIGHTS)),
                "the same adapter as the uninterrupted run");
        assertTrue(Files.isDirectory(out.resolve("checkpoint-2")), "the rerun resumed from checkpoint-2");
    }

    @Test
    @Tag("slow")
    void jsonlRecordsTokeniseToTrainsExamples() throws Exception {
        Path jsonl = tmp.resolve("pc.jsonl");
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < 6; i++) {
            sb.append("{\"prompt\": \"Q").append(i).append(": what did Spark find?\", \"completion\": \" a shiny stone ")
                    .append(i).append("\"}\n");
        }
        Files.writeString(jsonl, sb);
        try (LoadedModel lm = LoadedModel.open(stories(), null)) {
            List<Example> want = Datasets.load(jsonl, lm.tokenizer(), 48).examples();
            List<Datasets.Tokens> recs = new ArrayList<>();
            for (String line : Files.readAllLines(jsonl)) {
                var n = new com.fasterxml.jackson.databind.ObjectMapper().readTree(line);
                recs.add(Datasets.record(jsonl, "x", null, n.get("prompt").asText(), n.get("completion").asText(), null, lm.tokenizer()));
            }
            List<Example> got = Datasets.examples(jsonl, recs, 48).examples();
            assertEquals(want.size(), got.size());
            for (int i = 0; i < want.size(); i++) {
                assertArrayEquals(want.get(i).tokens(), got.get(i).tokens());
                assertArrayEquals(want.get(i).targets(), got.get(i).targets());
            }
        }
        Path out = tmp.resolve("spark-jsonl");
        List<String> args = new ArrayList<>(List.of(COMMON));
        args.set(args.indexOf("--steps") + 1, "2");
        args.addAll(List.of("--data", jsonl.toString(), "--tasks", "2", "--batch-size", "1", "-o", out.toString(),
                "--spark-master", "local[2]"));
        assertEquals(0, SparkTrain.run(args.toArray(String[]::new)));
        assertTrue(Files.exists(out.resolve(PeftAdapters.WEIGHTS)));
    }
}

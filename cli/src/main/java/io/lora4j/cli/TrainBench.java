package io.lora4j.cli;

import io.lora4j.model.Backend;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Llama;
import io.lora4j.model.MemoryReport;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;

import java.io.IOException;
import java.util.List;
import java.util.Locale;
import java.util.SplittableRandom;

/**
 * {@code bench --train}: LoRA training speed measured like llama-bench measures inference. For each
 * sequence length, a fresh adapter and trainer on one sequence of random tokens (batch 1, AdamW, the
 * next token as target), {@code warmup} untimed optimizer steps (JIT compilation, page-in of the
 * mapped weights), then {@code reps} timed steps: tokens/s per step as mean ± sd. Beside it the
 * memory: what the trainer holds (base as held, adapter values and gradients, optimizer moments,
 * activations and backward scratch: {@link MemoryReport}) and the process's peak resident set
 * (VmHWM) so far, the figure to set beside another engine's peak RSS.
 */
final class TrainBench {
    private TrainBench() {
    }

    /**
     * @param lora      the adapter's configuration
     * @param seqLens   sequence lengths to measure, in order
     * @param prefix    the table row's first cells (model, size, params, backend, threads)
     */
    static void run(LoadedModel lm, Backend backend, LoraConfig lora, List<Integer> seqLens, boolean checkpointing, int warmup,
                    int reps, String prefix) throws IOException {
        Llama m = lm.llama();
        System.out.println("| model | size | params | backend | threads | test | t/s | held MiB | peak RSS MiB |");
        System.out.println("| --- | ---: | ---: | --- | ---: | --- | ---: | ---: | ---: |");
        SplittableRandom rnd = new SplittableRandom(42);
        for (int seq : seqLens) {
            if (seq < 2 || seq > m.config().contextLength()) {
                throw new IllegalArgumentException("--seq-len " + seq + ": must be 2.." + m.config().contextLength()
                        + " (the model's context)");
            }
            int[] tokens = rnd.ints(seq, 0, m.config().vocabSize()).toArray();
            int[] targets = new int[seq];
            System.arraycopy(tokens, 1, targets, 0, seq - 1);
            targets[seq - 1] = -1;
            TrainConfig tc = new TrainConfig("adamw", 1e-4f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, warmup + reps, 1, 1, 1f, seq,
                    42, false, checkpointing, 0, 0f);
            LoraAdapter adapter = new LoraAdapter("bench", lora, m, 42);
            Trainer trainer = new Trainer(m, adapter, tc, List.of(new Example(tokens, targets)), List.of(), backend);
            for (int i = 0; i < warmup; i++) {
                trainer.trainStep();
            }
            double[] tps = new double[reps];
            for (int i = 0; i < reps; i++) {
                Trainer.StepStats s = trainer.trainStep();
                tps[i] = s.tokens() * 1e9 / s.nanos();
            }
            long held = trainer.device() != null ? MemoryReport.of(m).baseBytes() : heldBytes(m, trainer);
            LoadBench.Rss rss = LoadBench.Rss.now();
            String test = String.format(Locale.ROOT, "train seq%d r%d %s%s", seq, lora.r(), String.join(",", shortNames(lora)),
                    checkpointing ? " ckpt" : "");
            System.out.printf(Locale.ROOT, "%s %s | %s | %.1f | %.1f |%n", prefix, test, BenchCommand.stats(tps), held / 1048576.0,
                    rss.peak());
        }
        System.err.println("train: batch 1, AdamW; " + warmup + " warm-up steps, " + reps + " timed; held = base + adapter + "
                + "optimizer + activations + scratch, peak RSS = VmHWM of this process so far");
    }

    /** Everything the JVM trainer holds: the base as held plus the training part of the memory report. */
    private static long heldBytes(Llama m, Trainer t) {
        MemoryReport r = MemoryReport.of(m);
        return r.baseBytes() + t.adapterBytes() + t.optimizerBytes() + t.graph().activationBytes() + t.graph().scratchBytes();
    }

    /** q_proj → q, gate_proj → gate: the test column stays short. */
    private static List<String> shortNames(LoraConfig lora) {
        return lora.targetModules().stream().map(n -> n.endsWith("_proj") ? n.substring(0, n.length() - 5) : n).toList();
    }
}

package io.lora4j.cli;

import io.lora4j.kernels.Threads;
import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.State;
import io.lora4j.model.lora.LoraConfig;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;
import java.util.concurrent.Callable;

/**
 * {@code lora4j bench}, after llama-bench: prompt processing ({@code ppN}: N random tokens in one
 * batched forward from an empty cache) and generation ({@code tgN}: N single-token steps), each
 * repeated and reported as mean ± sd tokens/s after one untimed warm-up run; with {@code --train},
 * LoRA training steps measured the same way ({@link TrainBench}).
 */
@Command(name = "bench", mixinStandardHelpOptions = true,
        description = "Measure prompt-processing and generation speed, or with --train LoRA training speed (tokens/s, mean ± sd), "
                + "like llama-bench.")
final class BenchCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;
    @Mixin
    QuantizeOptions quantize;
    @Mixin
    MergeModeOptions mergeMode;
    @Mixin
    InferenceOptions inference;

    @Option(names = {"-p", "--n-prompt"}, split = ",", defaultValue = "512", description = "Prompt sizes (default ${DEFAULT-VALUE}; 0 skips).")
    List<Integer> nPrompt;

    @Option(names = {"-n", "--n-gen"}, split = ",", defaultValue = "128", description = "Generation lengths (default ${DEFAULT-VALUE}; 0 skips).")
    List<Integer> nGen;

    @Option(names = "--adapter", paramLabel = "DIR", description = "Run with this LoRA adapter (unmerged, or merged with --merge).")
    java.nio.file.Path adapter;

    @Option(names = "--merge", description = "Merge the --adapter into the weights before measuring.")
    boolean merge;

    @Option(names = "--load-only", description = "Measure opening instead: time to open (first and warm), tokenizer, first token of "
            + "--prompt, and resident memory (VmRSS, RssFile) before and after; compare a GGUF with its `convert`ed Arrow file.")
    boolean loadOnly;

    @Option(names = "--prompt", defaultValue = "Once upon a time", description = "Prompt for --load-only's first token (default ${DEFAULT-VALUE}).")
    String prompt;

    @Option(names = "--profile", description = "With --backend tornado: after the timed runs, run each test once more with "
            + "TornadoVM's profiler and print where the time goes: per task graph (executions, time, kernel time, bytes "
            + "copied in and out), per kernel, and the device memory.")
    boolean profile;

    @Option(names = "--compare-adapters", description = "Measure generation latency (ms/token over --n-gen tokens) of the base, "
            + "a LoRA adapter (--compare-r on --compare-targets) unmerged and merged, and a bottleneck adapter (Houlsby) with "
            + "about the same parameter count, in --repetitions alternating rounds.")
    boolean compareAdapters;

    @Option(names = "--compare-r", defaultValue = "8", description = "--compare-adapters: the LoRA rank (default ${DEFAULT-VALUE}).")
    int compareR;

    @Option(names = "--compare-targets", split = ",", defaultValue = "q_proj,k_proj,v_proj,o_proj",
            description = "--compare-adapters: the LoRA target modules (default ${DEFAULT-VALUE}).")
    List<String> compareTargets;

    @Option(names = {"-r", "--repetitions"}, defaultValue = "5", description = "Timed repetitions (default ${DEFAULT-VALUE}; "
            + "with --train: timed optimizer steps).")
    int reps;

    @Option(names = "--train", description = "Measure LoRA training instead: tokens/s of optimizer steps on random tokens "
            + "(batch 1, AdamW) after --warmup-steps, for each --seq-len, and the memory held and the peak RSS.")
    boolean train;

    @Option(names = "--seq-len", split = ",", defaultValue = "256", paramLabel = "N",
            description = "With --train: sequence lengths (default ${DEFAULT-VALUE}).")
    List<Integer> seqLens;

    @Option(names = "--warmup-steps", defaultValue = "2", paramLabel = "N",
            description = "With --train: untimed steps before the timed ones (default ${DEFAULT-VALUE}).")
    int warmupSteps;

    @Option(names = "--r", defaultValue = "8", paramLabel = "R", description = "With --train: LoRA rank (default ${DEFAULT-VALUE}).")
    int rank;

    @Option(names = "--lora-alpha", defaultValue = "16", description = "With --train: LoRA alpha (default ${DEFAULT-VALUE}).")
    float alpha;

    @Option(names = "--target-modules", split = ",", defaultValue = "q_proj,k_proj,v_proj,o_proj",
            description = "With --train: modules to adapt, as for train (default ${DEFAULT-VALUE}).")
    List<String> targetModules;

    @Option(names = "--gradient-checkpointing", description = "With --train: keep only layer inputs; recompute in backward.")
    boolean checkpointing;

    @Override
    public Integer call() throws java.io.IOException {
        inference.validate();
        if (reps < 1) {
            throw new IllegalArgumentException("--repetitions must be >= 1");
        }
        if (train && (loadOnly || adapter != null)) {
            throw new IllegalArgumentException("--train measures training a fresh adapter; drop " + (loadOnly ? "--load-only" : "--adapter"));
        }
        if (train && (rank < 1 || warmupSteps < 0)) {
            throw new IllegalArgumentException("--r must be >= 1 and --warmup-steps >= 0");
        }
        if (loadOnly) {
            if (adapter != null) {
                throw new IllegalArgumentException("--load-only measures the base model; drop --adapter");
            }
            modelOptions.applyThreads();
            try (Backend backend = modelOptions.backend()) {
                LoadBench.run(modelOptions.modelPath(), modelOptions.tokenizer, backend, reps, prompt);
            }
            return 0;
        }
        if (compareAdapters && (adapter != null || merge || profile || nGen.size() != 1 || nGen.get(0) < 1)) {
            throw new IllegalArgumentException("--compare-adapters makes its own adapters and measures one generation length: "
                    + "drop --adapter, --merge and --profile, and give one --n-gen N >= 1");
        }
        try (LoadedModel lm = modelOptions.open(quantize); Backend backend = modelOptions.backend()) {
            if (compareAdapters) {
                if (nGen.get(0) > lm.llama().config().contextLength()) {
                    throw new IllegalArgumentException("--n-gen " + nGen.get(0) + " exceeds the model's context "
                            + lm.llama().config().contextLength());
                }
                AdapterLatencyBench.run(lm.llama(), backend, nGen.get(0), reps, compareR, compareTargets, System.out);
                return 0;
            }
            if (profile && !(backend instanceof io.lora4j.tornado.TornadoBackend)) {
                throw new IllegalArgumentException("--profile profiles the TornadoVM device plans: use it with --backend tornado");
            }
            Llama m = lm.llama();
            String mode = "";
            if (adapter != null) {
                var ad = io.lora4j.model.lora.PeftAdapters.load(adapter, m, "bench");
                if (merge) {
                    m.merge(ad, mergeMode.mode());
                    mode = " +lora(merged)";
                } else {
                    m.adapters().set(ad);
                    mode = " +lora";
                }
            }
            if (train && m.quantizedBase()) {
                m.prepareForKbitTraining(); // as train does: the base frozen, F16/BF16 embedding and output cast to F32
            }
            long bytes = io.lora4j.model.MemoryReport.of(m).baseBytes();
            String name = modelOptions.modelPath().getFileName().toString()
                    + (m.quantization().none() ? "" : " --quantize " + m.quantization().label());
            String prefix = String.format(java.util.Locale.ROOT, "| %s | %.2f MiB | %.2f M | %s | %d |", name + mode, bytes / 1048576.0,
                    m.parameterCount() / 1e6, backend.name(), Threads.threadCount());
            if (train) {
                TrainBench.run(lm, backend, LoraConfig.of(rank, alpha, targetModules), seqLens, checkpointing, warmupSteps, reps,
                        prefix);
                return 0;
            }
            System.out.println("| model | size | params | backend | threads | test | t/s |");
            System.out.println("| --- | ---: | ---: | --- | ---: | --- | ---: |");
            int maxCtx = 1;
            for (int p : nPrompt) {
                maxCtx = Math.max(maxCtx, p);
            }
            for (int n : nGen) {
                maxCtx = Math.max(maxCtx, n);
            }
            if (maxCtx > m.config().contextLength()) {
                throw new IllegalArgumentException("test size " + maxCtx + " exceeds the model's context "
                        + m.config().contextLength());
            }
            State s = new State(m.config(), inference.batchSize, maxCtx, 1);
            SplittableRandom rnd = new SplittableRandom(42);
            java.util.Map<String, Runnable> tests = new java.util.LinkedHashMap<>();
            for (int p : nPrompt) {
                if (p > 0) {
                    int[] toks = rnd.ints(p, 0, m.config().vocabSize()).toArray();
                    Runnable run = () -> m.forward(backend, s, toks, 0, p, 0);
                    double[] tps = measure(run, p);
                    System.out.println(prefix + " pp" + p + " | " + stats(tps) + " |");
                    tests.put("pp" + p, run);
                }
            }
            for (int n : nGen) {
                if (n > 0) {
                    int[] toks = rnd.ints(n, 0, m.config().vocabSize()).toArray();
                    Runnable run = () -> {
                        for (int i = 0; i < n; i++) {
                            m.forward(backend, s, toks, i, 1, i);
                        }
                    };
                    double[] tps = measure(run, n);
                    System.out.println(prefix + " tg" + n + " | " + stats(tps) + " |");
                    tests.put("tg" + n, run);
                }
            }
            if (profile) {
                // after the timed runs, so that the profiler's waits on every kernel do not change the figures above
                var tb = (io.lora4j.tornado.TornadoBackend) backend;
                var p = new io.lora4j.tornado.DeviceProfile();
                tb.profile(p);
                for (var t : tests.entrySet()) {
                    p.reset();
                    t.getValue().run();
                    System.out.println();
                    System.out.print(p.report(t.getKey() + " (" + name + mode + ")", 1, 15));
                }
                tb.profile(null);
            }
            System.err.println("backend " + backend.name() + ": " + backend.device());
        }
        return 0;
    }

    private double[] measure(Runnable run, int tokens) {
        run.run(); // warm-up: JIT compilation and page-in of the mapped weights
        double[] tps = new double[reps];
        for (int i = 0; i < reps; i++) {
            long t0 = System.nanoTime();
            run.run();
            tps[i] = tokens * 1e9 / (System.nanoTime() - t0);
        }
        return tps;
    }

    static String stats(double[] v) {
        double mean = Arrays.stream(v).average().orElse(0);
        double var = Arrays.stream(v).map(x -> (x - mean) * (x - mean)).sum() / Math.max(1, v.length - 1);
        return String.format(java.util.Locale.ROOT, "%.2f ± %.2f", mean, Math.sqrt(var));
    }
}

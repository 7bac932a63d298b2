package io.lora4j.cli;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.BottleneckAdapters;
import io.lora4j.model.MemoryReport;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.train.Datasets;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Spec;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

/**
 * {@code lora4j train}: LoRA or AdaLoRA fine-tuning. Writes the adapter (PEFT format), metrics.csv,
 * metrics.jsonl and loss.png into the output directory.
 */
@Command(name = "train", mixinStandardHelpOptions = true,
        description = "Fine-tune a LoRA or AdaLoRA adapter on a text or JSONL file.")
final class TrainCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;
    @Mixin
    QuantizeOptions quantize;
    @Mixin
    LoraOptions lora;
    @Mixin
    TrainingOptions training;
    @Mixin
    AdaLoraOptions adaLora;
    @Mixin
    BottleneckOptions bottleneck;
    @Spec
    CommandLine.Model.CommandSpec spec;

    @Option(names = "--method", defaultValue = "lora", description = "lora, adalora (SVD-form adapters whose ranks are "
            + "pruned from --init-r to --target-r during training; --r is then unused), or bottleneck (Houlsby's adapters after "
            + "the attention and the feed-forward sublayers, AdapterHub's format; the LoRA options are then unused) "
            + "(default ${DEFAULT-VALUE}).")
    String method;

    @Option(names = "--data", paramLabel = "FILE", description = "Training data: plain text (documents separated by blank "
            + "lines) or JSONL with {\"text\"}, {\"prompt\",\"completion\"} or {\"messages\"} records. "
            + "Default: the built-in demo stories.")
    Path data;

    @Option(names = "--profile", description = "With --backend tornado: profile the training plan with TornadoVM's profiler "
            + "and print, after training, per task graph and kernel the time and the bytes copied per step, and the device memory "
            + "(weights as they are on the device, e.g. 4-bit, activations, adapter, gradients, moments).")
    boolean profile;

    @Option(names = "--eval-data", paramLabel = "FILE", description = "Held-out data (same formats); default: a split of --data.")
    Path evalData;

    @Option(names = "--eval-split", defaultValue = "0.1", description = "Fraction held out when no --eval-data (default ${DEFAULT-VALUE}).")
    double evalSplit;

    @Option(names = {"-o", "--output"}, defaultValue = "lora-out", paramLabel = "DIR",
            description = "Where the adapter and metrics go (default ${DEFAULT-VALUE}).")
    Path output;

    @Option(names = "--adapter", paramLabel = "DIR",
            description = "Continue training this existing adapter (its LoRA config is used; a fresh optimizer starts).")
    Path init;

    @Option(names = "--save-every", defaultValue = "0", paramLabel = "N",
            description = "Write a checkpoint (adapter, optimizer moments, step, data cursor) to DIR/checkpoint-<step> every N steps.")
    int saveEvery;

    @Option(names = "--save-total-limit", paramLabel = "N", description = "Keep only the newest N checkpoints in DIR, "
            + "removing older ones as new ones are written (Hugging Face Trainer's save_total_limit; default: keep all).")
    Integer saveTotalLimit;

    @Option(names = "--resume", paramLabel = "DIR", description = "Resume from the newest valid checkpoint in DIR "
            + "(its trainer settings are used; pass the same data).")
    Path resume;

    @Option(names = "--spark-master", paramLabel = "URL", description = "Train data-parallel on Apache Spark (e.g. local[2], "
            + "spark://host:7077): --spark-tasks barrier tasks exchange gradients every step, and the adapter is the one "
            + "--batch-size × tasks would give. Needs the spark module built, or SPARK_HOME.")
    String sparkMaster;

    @Option(names = "--spark-tasks", defaultValue = "2", paramLabel = "N", description = "Tasks with --spark-master (default ${DEFAULT-VALUE}).")
    int sparkTasks;

    @Override
    public Integer call() throws IOException, InterruptedException {
        if (sparkMaster != null) {
            List<String> all = spec.commandLine().getParseResult().originalArgs();
            int at = all.indexOf(spec.name()); // the original arguments start with the command's own name
            return SparkFrontEnd.run(all.subList(at + 1, all.size()), sparkMaster, sparkTasks);
        }
        Path checkpoint = resume == null ? null
                : Files.isRegularFile(resume.resolve(io.lora4j.model.train.Checkpoints.STATE)) ? resume
                : io.lora4j.model.train.Checkpoints.latestValid(resume, w -> System.err.println("warning: " + w));
        TrainConfig tc = checkpoint != null ? io.lora4j.model.train.Checkpoints.config(checkpoint) : training.config();
        if (saveEvery < 0) {
            throw new IllegalArgumentException("--save-every must be >= 0");
        }
        if (saveTotalLimit != null && saveTotalLimit < 1) {
            throw new IllegalArgumentException("--save-total-limit must be >= 1 (leave it out to keep every checkpoint)");
        }
        if (!List.of("lora", "adalora", "bottleneck").contains(method)) {
            throw new IllegalArgumentException("--method must be lora, adalora or bottleneck, got '" + method + "'");
        }
        rejectIgnoredMethodOptions(checkpoint);
        try (LoadedModel lm = modelOptions.open(quantize); io.lora4j.model.Backend backend = modelOptions.backend()) {
            io.lora4j.tornado.DeviceProfile prof = null;
            if (profile) {
                if (!(backend instanceof io.lora4j.tornado.TornadoBackend tb)) {
                    throw new IllegalArgumentException("--profile profiles the TornadoVM training plan: use it with --backend tornado");
                }
                prof = new io.lora4j.tornado.DeviceProfile();
                tb.profile(prof);
            }
            if (lm.llama().quantizedBase()) {
                List<String> cast = lm.llama().prepareForKbitTraining();
                System.err.println("quantized base (" + describeBase(lm) + "): prepared for k-bit training (base frozen, input "
                        + "gradients on, " + (cast.isEmpty() ? "no F16/BF16 tensor to cast to F32" : String.join(", ", cast)) + ")");
            }
            Path dataFile = data != null ? data : demoData();
            Datasets.Loaded loaded = Datasets.load(dataFile, lm.tokenizer(), tc.seqLen());
            List<Example> train = loaded.examples();
            List<Example> eval;
            if (evalData != null) {
                eval = Datasets.load(evalData, lm.tokenizer(), tc.seqLen()).examples();
            } else {
                Datasets.Split split = Datasets.split(train, evalSplit, tc.seed());
                train = split.train();
                eval = split.eval();
            }
            Trainer trainer;
            if (checkpoint != null) {
                trainer = io.lora4j.model.train.Checkpoints.resume(checkpoint, lm.llama(), train, eval, backend);
                System.err.println("resuming from " + checkpoint + " at step " + trainer.step() + " of " + tc.steps());
            } else {
                LoraAdapter fresh;
                if (init != null) {
                    fresh = PeftAdapters.load(init, lm.llama(), "default");
                } else if (method.equals("adalora")) {
                    AdaLoraConfig ac = adaLora.config(lora.config(), tc.steps());
                    if (ac.totalStep() != tc.steps()) {
                        System.err.println("note: --total-step " + ac.totalStep() + " differs from --steps " + tc.steps()
                                + (ac.totalStep() > tc.steps() ? ": the budget will not reach --target-r" : ""));
                    }
                    fresh = new LoraAdapter("default", ac, lm.llama(), tc.seed());
                } else if (method.equals("bottleneck")) {
                    fresh = new LoraAdapter("default", bottleneck.config(), lm.llama(), tc.seed());
                } else {
                    fresh = new LoraAdapter("default", lora.config(), lm.llama(), tc.seed());
                }
                if (fresh.initialValues() != null) {
                    System.err.println("init_lora_weights " + fresh.config().initLoraWeights() + ": " + fresh.layers().size()
                            + " projections decomposed; the base now holds their residuals W - s*B0*A0");
                }
                trainer = new Trainer(lm.llama(), fresh, tc, train, eval, backend);
            }
            LoraAdapter adapter = trainer.adapter();
            System.err.printf("data: %s, %d records, %d train + %d eval sequences%s%n", dataFile, loaded.records(),
                    train.size(), eval.size(), loaded.truncated() > 0 ? ", " + loaded.truncated() + " truncated to --seq-len" : "");
            System.err.println(adapter.trainableParametersLine(lm.llama().parameterCount()));
            memoryReport(lm, trainer);
            Files.createDirectories(output);
            removeLeftovers(output);
            int firstStep = trainer.step();
            ProgressBar bar = new ProgressBar(System.err, tc.steps(), firstStep);
            double before = eval.isEmpty() ? Double.NaN : trainer.evalLoss();
            if (!eval.isEmpty()) {
                System.err.printf(Locale.ROOT, "eval before training: loss %.4f, perplexity %.3f%n", before, Math.exp(before));
            }
            Metrics metrics = new Metrics(output, checkpoint, trainer.step());
            if (!eval.isEmpty() && checkpoint == null) {
                metrics.eval(0, before);
            }
            trainer.run(new Trainer.Listener() {
                @Override
                public void step(Trainer.StepStats s) {
                    bar.step(s);
                    metrics.step(s);
                }

                @Override
                public void eval(int step, double loss) {
                    bar.eval(step, loss);
                    metrics.eval(step, loss);
                }

                @Override
                public void stepDone(int step) {
                    if (saveEvery > 0 && step % saveEvery == 0) {
                        io.lora4j.model.train.Checkpoints.save(trainer, output, metrics.files());
                        if (saveTotalLimit != null) {
                            io.lora4j.model.train.Checkpoints.rotate(output, saveTotalLimit, step);
                        }
                    }
                }
            });
            metrics.write();
            String problem = metrics.plot();
            if (problem != null) {
                System.err.println("warning: loss.png not written: " + problem);
            }
            PeftAdapters.save(adapter, lm.llama(), output);
            if (trainer.allocator() != null) {
                adaLoraReport(trainer);
            }
            if (prof != null) {
                int steps = Math.max(1, trainer.step() - firstStep);
                System.out.print(prof.report("train (" + describeBase(lm) + ", " + steps + " steps and the evaluations)", steps, 15));
            }
            System.err.println("adapter saved to " + output + " (adapter_config.json, " + (adapter.bottleneckConfig() != null
                    ? BottleneckAdapters.WEIGHTS + " in AdapterHub's format" : "adapter_model.safetensors")
                    + (adapter.initialValues() != null ? ", converted for the original base: r " + 2 * adapter.config().r()
                    + ", lora_A = [A; A0], lora_B = [B, -B0]" : "") + "); metrics in metrics.csv, metrics.jsonl, loss.png");
        }
        return 0;
    }

    /** Temporary files and directories a killed run of this command can leave in {@code out}. */
    static void removeLeftovers(Path out) throws IOException {
        List<String> ours = List.of(PeftAdapters.CONFIG, PeftAdapters.WEIGHTS, BottleneckAdapters.WEIGHTS, Metrics.CSV, Metrics.JSONL,
                "loss.png");
        int n = io.lora4j.model.format.DurableFiles.removeLeftovers(out, name -> name.startsWith("checkpoint-")
                || ours.contains(name.substring(0, name.length() - io.lora4j.model.format.DurableFiles.TMP.length())));
        if (n > 0) {
            System.err.println("removed " + n + " temporary file(s) left in " + out + " by an interrupted run");
        }
    }

    /** AdaLoRA options on a plain LoRA run, and a --method that the continued --adapter is not, would be ignored. */
    private void rejectIgnoredMethodOptions(Path checkpoint) {
        CommandLine.ParseResult given = spec.commandLine().getParseResult();
        List<String> adaOptions = matched(given, "adaLora");
        if (!method.equals("adalora") && checkpoint == null && init == null && !adaOptions.isEmpty()) {
            throw new IllegalArgumentException(String.join(", ", adaOptions) + " apply only to --method adalora; this run would "
                    + "train " + method + " and ignore them");
        }
        List<String> bnOptions = matched(given, "bottleneck");
        if (!method.equals("bottleneck") && checkpoint == null && init == null && !bnOptions.isEmpty()) {
            throw new IllegalArgumentException(String.join(", ", bnOptions) + " apply only to --method bottleneck; this run would "
                    + "train " + method + " and ignore them");
        }
        List<String> loraOptions = matched(given, "lora");
        if (method.equals("bottleneck") && checkpoint == null && init == null && !loraOptions.isEmpty()) {
            throw new IllegalArgumentException(String.join(", ", loraOptions) + " do not apply to --method bottleneck (it has no "
                    + "LoRA layers); this run would ignore them");
        }
        if (init != null && given.hasMatchedOption("--method")) {
            String type = BottleneckAdapters.isBottleneck(init) ? "bottleneck"
                    : PeftAdapters.readConfig(init).adaLora() != null ? "adalora" : "lora";
            if (!type.equals(method)) {
                throw new IllegalArgumentException("--adapter " + init + " is a " + type.toUpperCase(Locale.ROOT)
                        + " adapter: continuing it keeps its type, so --method " + method + " does not apply");
            }
        }
    }

    /** The options of mixin {@code mixin} given on the command line. */
    private List<String> matched(CommandLine.ParseResult given, String mixin) {
        return spec.mixins().get(mixin).options().stream().filter(given::hasMatchedOption)
                .map(CommandLine.Model.OptionSpec::longestName).toList();
    }

    /** The ranks AdaLoRA allocated: total against the target, and per module type. */
    private static void adaLoraReport(Trainer t) {
        Map<String, Integer> byModule = new TreeMap<>();
        Map<String, boolean[]> pattern = t.adapter().rankPattern();
        for (LoraLayer l : t.adapter().layers()) {
            boolean[] keep = pattern == null ? null : pattern.get(l.path());
            byModule.merge(l.module.peftName, keep == null ? l.r : LoraAdapter.kept(keep), Integer::sum);
        }
        System.err.println("adalora: kept " + t.allocator().keptTriplets() + " of " + t.allocator().initBudget()
                + " triplets (target " + t.allocator().targetBudget() + "); total rank per module type " + byModule);
    }

    private static void memoryReport(LoadedModel lm, Trainer t) {
        List<String> lines = t.device() != null ? MemoryReport.of(lm.llama()).lines() // the host side: the base as loaded
                : MemoryReport.of(lm.llama()).withTraining(new MemoryReport.Training(t.adapter().trainableParameters(),
                        t.adapterBytes(), t.optimizerBytes(), t.graph().activationBytes(), t.graph().scratchBytes(),
                        t.graph().maxT(), t.graph().checkpointing())).lines();
        for (int i = 0; i < lines.size(); i++) {
            System.err.println((i == 0 ? "memory: " : "        ") + lines.get(i));
        }
        if (t.device() != null) {
            System.err.printf(Locale.ROOT, "        device %s: weights, activations, adapter, gradients and moments %.2f MiB"
                    + " (blocks recomputed in backward)%n", t.device().device(), t.device().deviceBytes() / 1048576.0);
        }
    }

    /** The base's projection types, e.g. "NF4_DQ on load, --quantize nf4+dq" or "Q8_0 as stored". */
    static String describeBase(LoadedModel lm) {
        MemoryReport r = MemoryReport.of(lm.llama());
        return r.linearTypes() + (lm.llama().quantization().none() ? " as stored" : " on load, --quantize " + lm.llama().quantization().label());
    }

    /** The built-in demo stories, copied to a temp file. */
    static Path demoData() throws IOException {
        Path p = Files.createTempFile("lora4j-demo-stories", ".txt");
        p.toFile().deleteOnExit();
        try (InputStream in = TrainCommand.class.getResourceAsStream("demo-stories.txt")) {
            if (in == null) {
                throw new IllegalStateException("built-in demo data missing from the jar");
            }
            io.lora4j.model.format.DurableFiles.write(p, in.readAllBytes());
        }
        return p;
    }
}

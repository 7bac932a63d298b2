package io.lora4j.spark;

import io.lora4j.cli.LoraOptions;
import io.lora4j.cli.ModelOptions;
import io.lora4j.cli.TrainingOptions;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.tokenizer.ChatTemplate;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.train.Checkpoints;
import io.lora4j.model.train.Datasets;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.Replicas;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.api.java.JavaSparkContext;
import org.apache.spark.rdd.RDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.SparkSession;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import scala.Tuple2;
import scala.jdk.javaapi.CollectionConverters;
import scala.reflect.ClassTag$;
import scala.runtime.AbstractFunction1;

import java.io.IOException;
import java.io.Serializable;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Iterator;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ConcurrentHashMap;

/**
 * LoRA training on Apache Spark, data-parallel: the data (text, JSONL or Parquet, the records {@code
 * lora4j train} accepts) is read and tokenised by Spark's executors and turned into {@code train}'s
 * examples; then {@code --tasks} barrier tasks each memory-map the base, hold the same adapter, compute
 * the gradients of their share of every step's sequences and exchange them (over direct connections, {@link SocketReplicas}),
 * so every copy takes the same optimizer step ({@link Replicas}) — the adapter {@code train} makes with a
 * batch {@code --tasks} times larger, bit for bit. Task 0 writes checkpoints, metrics and the PEFT adapter
 * to {@code -o} (a directory every executor can read, for resuming); when a task fails, Spark reruns
 * the stage and every task resumes from the newest checkpoint. Run it with {@code spark-submit --class
 * io.lora4j.spark.SparkTrain lora4j-spark.jar …} or {@code lora4j train --spark-master URL …}.
 */
@Command(name = "lora4j-spark-train", mixinStandardHelpOptions = true,
        description = "Data-parallel LoRA training on Apache Spark (barrier tasks exchanging gradients every step).")
public final class SparkTrain implements Callable<Integer>, Serializable {
    @Mixin
    transient ModelOptions modelOptions;
    @Mixin
    transient LoraOptions lora;
    @Mixin
    transient TrainingOptions training;

    @Option(names = "--data", required = true, split = ",", paramLabel = "PATH",
            description = "Training data: text files (documents separated by blank lines), JSONL or Parquet with text, "
                    + "prompt+completion or messages; a directory or glob Spark reads; comma-separated.")
    List<String> data;

    @Option(names = "--eval-split", defaultValue = "0.1", description = "Fraction held out (default ${DEFAULT-VALUE}).")
    double evalSplit;

    @Option(names = {"-o", "--output"}, defaultValue = "lora-out", paramLabel = "DIR",
            description = "Adapter, metrics and checkpoints (default ${DEFAULT-VALUE}); readable by every executor.")
    String output;

    @Option(names = "--tasks", defaultValue = "2", description = "Barrier tasks (replicas) training together (default ${DEFAULT-VALUE}).")
    int tasks;

    @Option(names = "--spark-master", description = "Spark master URL, e.g. local[2] or spark://host:7077 (default: spark-submit's).")
    String master;

    @Option(names = "--save-every", defaultValue = "0", paramLabel = "N", description = "Checkpoint every N steps.")
    int saveEvery;

    @Option(names = "--resume", description = "Resume from the newest valid checkpoint in --output.")
    boolean resume;

    @Option(names = "--fail-once-at-step", hidden = true, defaultValue = "0",
            description = "Testing: the last task fails once at this step (a marker file in --output remembers it did).")
    int failAt;

    /** The command line, re-parsed on every executor (options objects are not serializable). */
    String[] args;

    public static void main(String[] args) {
        int code = run(args);
        System.exit(code);
    }

    /** Runs the job in this JVM (a test, or the driver of spark-submit); returns the exit code. */
    public static int run(String[] args) {
        SparkTrain job = new SparkTrain();
        job.args = args.clone();
        CommandLine cl = new CommandLine(job);
        cl.setExecutionExceptionHandler((e, cmd, parse) -> {
            System.err.println("lora4j-spark-train: " + e.getMessage());
            return 1;
        });
        return cl.execute(args);
    }

    @Override
    public Integer call() throws Exception {
        if (tasks < 1 || tasks > 256) {
            throw new IllegalArgumentException("--tasks must be 1..256");
        }
        TrainConfig tc = training.config();
        SparkSession.Builder b = SparkSession.builder().appName("lora4j train").config("spark.ui.enabled", "false");
        if (master != null) {
            b.master(master);
        }
        SparkSession spark = b.getOrCreate();
        spark.sparkContext().setLogLevel(System.getProperty("lora4j.spark.logLevel", "WARN"));
        try {
            String model = modelOptions.modelPath().toAbsolutePath().toString();
            List<Datasets.Tokens> records = tokenise(spark, model);
            Datasets.Loaded loaded = Datasets.examples(Path.of(data.getFirst()), records, tc.seqLen());
            Datasets.Split split = Datasets.split(loaded.examples(), evalSplit, tc.seed());
            System.err.printf(Locale.ROOT, "data: %d records, %d train + %d eval sequences%s; %d tasks x batch %d%n",
                    loaded.records(), split.train().size(), split.eval().size(),
                    loaded.truncated() > 0 ? ", " + loaded.truncated() + " truncated to --seq-len" : "", tasks, tc.batchSize());
            Path out = Path.of(output);
            Files.createDirectories(out);
            if (!resume && TrainTask.latest(out) != null) {
                throw new IllegalArgumentException(out + " holds checkpoints of an earlier run: pass --resume to continue it, "
                        + "or choose another --output");
            }
            JavaSparkContext jsc = JavaSparkContext.fromSparkContext(spark.sparkContext());
            List<Integer> ids = new ArrayList<>();
            for (int i = 0; i < tasks; i++) {
                ids.add(i);
            }
            RDD<String> done = jsc.parallelize(ids, tasks).rdd().barrier().mapPartitions(
                    new TrainTask(args, new ArrayList<>(split.train()), new ArrayList<>(split.eval())), false,
                    ClassTag$.MODULE$.apply(String.class));
            // the shuffle makes the barrier stage a map stage, which Spark reruns whole when a task fails
            for (String line : done.toJavaRDD().repartition(1).collect()) {
                if (!line.isEmpty()) {
                    System.err.println(line);
                }
            }
        } finally {
            spark.stop();
        }
        return 0;
    }

    /** Every record of every --data path, tokenised on the executors, in file and record order. */
    private List<Datasets.Tokens> tokenise(SparkSession spark, String model) {
        List<Datasets.Tokens> all = new ArrayList<>();
        String tokenizer = modelOptions.tokenizerPath() == null ? null : modelOptions.tokenizerPath().toAbsolutePath().toString();
        for (String path : data) {
            String lower = path.toLowerCase(Locale.ROOT);
            Dataset<Row> rows;
            String kind;
            if (lower.endsWith(".parquet")) {
                rows = spark.read().parquet(path);
                kind = "table";
            } else if (lower.endsWith(".jsonl") || lower.endsWith(".json")) {
                rows = spark.read().json(path);
                kind = "table";
            } else {
                rows = spark.read().option("wholetext", "true").text(path);
                kind = "text";
            }
            if (kind.equals("table") && Arrays.asList(rows.columns()).contains("_corrupt_record")) {
                throw new ModelFormatException(Path.of(path), "invalid JSON records (Spark's _corrupt_record column)");
            }
            JavaRDD<Tuple2<Long, List<Datasets.Tokens>>> tok = rows.javaRDD().zipWithIndex()
                    .mapPartitions(new Tokenise(model, tokenizer, path, kind));
            List<Tuple2<Long, List<Datasets.Tokens>>> got = new ArrayList<>(tok.collect());
            got.sort(Comparator.comparingLong(Tuple2::_1));
            for (Tuple2<Long, List<Datasets.Tokens>> t : got) {
                all.addAll(t._2());
            }
        }
        return all;
    }

    /** Tokenisers loaded on this executor, by model and tokenizer path. */
    private static final Map<String, Tokenizer> TOKENIZERS = new ConcurrentHashMap<>();

    static Tokenizer tokenizer(String model, String tokenizer) {
        return TOKENIZERS.computeIfAbsent(model + "\u0000" + tokenizer, k -> {
            try (LoadedModel lm = LoadedModel.open(Path.of(model), tokenizer == null ? null : Path.of(tokenizer))) {
                return lm.tokenizer();
            }
        });
    }

    /** Executor side: (row, index) → (index, the row's tokenised records). */
    static final class Tokenise implements org.apache.spark.api.java.function.FlatMapFunction<Iterator<Tuple2<Row, Long>>,
            Tuple2<Long, List<Datasets.Tokens>>> {
        final String model, tokenizer, path, kind;

        Tokenise(String model, String tokenizer, String path, String kind) {
            this.model = model;
            this.tokenizer = tokenizer;
            this.path = path;
            this.kind = kind;
        }

        @Override
        public Iterator<Tuple2<Long, List<Datasets.Tokens>>> call(Iterator<Tuple2<Row, Long>> it) {
            Tokenizer tok = tokenizer(model, tokenizer);
            List<Tuple2<Long, List<Datasets.Tokens>>> out = new ArrayList<>();
            while (it.hasNext()) {
                Tuple2<Row, Long> t = it.next();
                Row r = t._1();
                if (kind.equals("text")) {
                    out.add(new Tuple2<>(t._2(), Datasets.textDocuments(r.getString(0), tok)));
                } else {
                    out.add(new Tuple2<>(t._2(), List.of(Datasets.record(Path.of(path), "record " + (t._2() + 1),
                            field(r, "text"), field(r, "prompt"), field(r, "completion"), messages(r), tok))));
                }
            }
            return out.iterator();
        }

        private static String field(Row r, String name) {
            int i = Arrays.asList(r.schema().fieldNames()).indexOf(name);
            return i < 0 || r.isNullAt(i) ? null : String.valueOf(r.get(i));
        }

        private List<ChatTemplate.Message> messages(Row r) {
            int i = Arrays.asList(r.schema().fieldNames()).indexOf("messages");
            if (i < 0 || r.isNullAt(i)) {
                return null;
            }
            List<ChatTemplate.Message> out = new ArrayList<>();
            for (Object o : r.getList(i)) {
                Row m = (Row) o;
                String role = field(m, "role"), content = field(m, "content");
                if (role == null || content == null) {
                    throw new ModelFormatException(Path.of(path), "every message needs role and content");
                }
                out.add(new ChatTemplate.Message(role, content));
            }
            return out;
        }
    }

    /** One barrier task: a replica of the trainer; task 0 also writes checkpoints, metrics and the adapter. */
    static final class TrainTask extends AbstractFunction1<scala.collection.Iterator<Integer>, scala.collection.Iterator<String>>
            implements Serializable {
        final String[] args;
        final List<Example> train, eval;

        TrainTask(String[] args, List<Example> train, List<Example> eval) {
            this.args = args;
            this.train = train;
            this.eval = eval;
        }

        @Override
        public scala.collection.Iterator<String> apply(scala.collection.Iterator<Integer> ignored) {
            BarrierTaskContext ctx = BarrierTaskContext.get();
            SparkTrain o = new SparkTrain();
            new CommandLine(o).parseArgs(args);
            int me = ctx.partitionId(), n = ctx.getTaskInfos().length;
            Path out = Path.of(o.output);
            // local masters: the tasks talk over loopback; on a cluster over the executors' own addresses
            String host = o.master != null && o.master.startsWith("local") ? "127.0.0.1"
                    : ctx.getTaskInfos()[me].address().replaceAll(":\\d+$", "");
            try (LoadedModel lm = o.modelOptions.open(); SocketReplicas replicas = new SocketReplicas(ctx, me, n, host)) {
                // the only checkpoints here are --resume's or this run's (from an attempt Spark reran)
                Path ckpt = latest(out);
                Trainer t = ckpt != null ? Checkpoints.resume(ckpt, lm.llama(), train, eval)
                        : new Trainer(lm.llama(), new LoraAdapter("default", o.lora.config(), lm.llama(), o.training.config().seed()),
                        o.training.config(), train, eval);
                t.replicas(replicas);
                TrainConfig tc = t.config();
                long t0 = System.nanoTime();
                while (t.step() < tc.steps()) {
                    if (o.failAt > 0 && t.step() + 1 == o.failAt && me == n - 1 && failOnce(out)) {
                        throw new IllegalStateException("injected failure of task " + me + " at step " + o.failAt);
                    }
                    Trainer.StepStats s = t.trainStep();
                    if (me == 0) {
                        metric(out, s, t.exchangeNanos(), n);
                        if (o.saveEvery > 0 && s.step() % o.saveEvery == 0) {
                            Checkpoints.save(t, out);
                        }
                    }
                }
                String summary = "";
                if (me == 0) {
                    PeftAdapters.save(t.adapter(), lm.llama(), out);
                    double secs = (System.nanoTime() - t0) / 1e9;
                    summary = String.format(Locale.ROOT, "task 0: %d steps in %.1f s, exchanging gradients %.1f s (%.0f%%); "
                                    + "held-out loss %.4f; adapter saved to %s", tc.steps(), secs, t.exchangeNanos() / 1e9,
                            100 * t.exchangeNanos() / 1e9 / secs, eval.isEmpty() ? Double.NaN : t.evalLoss(), out);
                }
                ctx.barrier(); // nobody leaves before the adapter is written
                return CollectionConverters.asScala(List.of(summary).iterator());
            }
        }

        /** True the first time only (a marker file in the output directory records it). */
        private static boolean failOnce(Path out) {
            try {
                Files.createFile(out.resolve(".injected-failure"));
                return true;
            } catch (java.nio.file.FileAlreadyExistsException e) {
                return false;
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }

        static Path latest(Path out) {
            try {
                return Checkpoints.latestValid(out, w -> System.err.println("warning: " + w));
            } catch (IllegalArgumentException e) {
                return null; // none yet: start from scratch
            }
        }

        /** One line of metrics.jsonl (task 0): the step, its loss, tokens/s of all tasks and the exchange time so far. */
        private static void metric(Path out, Trainer.StepStats s, long exchangeNanos, int n) {
            String line = String.format(Locale.ROOT, "{\"step\":%d,\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens\":%d,"
                            + "\"tokens_per_s\":%.1f,\"tokens_per_s_per_task\":%.1f,\"exchange_s\":%.3f}%n", s.step(), s.loss(), s.lr(),
                    s.gradNorm(), s.tokens(), s.tokens() / (s.nanos() / 1e9), s.tokens() / (s.nanos() / 1e9) / n, exchangeNanos / 1e9);
            try {
                Files.writeString(out.resolve("metrics.jsonl"), line, StandardCharsets.UTF_8, StandardOpenOption.CREATE,
                        StandardOpenOption.APPEND);
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
        }
    }

}

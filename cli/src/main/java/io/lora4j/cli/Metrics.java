package io.lora4j.cli;

import io.lora4j.model.format.DurableFiles;
import io.lora4j.model.train.Trainer;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Training metrics as CSV and JSONL (one row per step or evaluation) and a PNG loss curve. AdaLoRA
 * steps also carry {@code orth_reg_loss} (the regulariser's term, not in {@code loss}) and {@code budget}.
 * <p>
 * The rows are kept in memory and both files rewritten whole, durably ({@link DurableFiles}): after
 * an evaluation, at every checkpoint, at the end, and otherwise at most every {@link #WRITE_EVERY_NANOS}.
 * A checkpoint keeps a copy of both files (as Hugging Face's Trainer keeps its log history in the
 * checkpoint), so a resumed run continues from the rows up to its checkpoint: the steps it redoes
 * are not logged twice.
 */
final class Metrics {
    static final String CSV = "metrics.csv", JSONL = "metrics.jsonl";
    static final String HEADER = "step,split,loss,perplexity,lr,grad_norm,tokens,tokens_per_s,orth_reg_loss,budget";
    static final long WRITE_EVERY_NANOS = 2_000_000_000L;

    private final Path dir;
    private final List<String> csv = new ArrayList<>();
    private final List<String> jsonl = new ArrayList<>();
    private final List<Double> steps = new ArrayList<>();
    private final List<Double> losses = new ArrayList<>();
    private final List<Double> evalSteps = new ArrayList<>();
    private final List<Double> evalLosses = new ArrayList<>();
    private long written = System.nanoTime();

    /**
     * New metrics for {@code dir}; for a run resumed from {@code checkpoint} (else null), the rows
     * logged up to it: the checkpoint's copy, or for a checkpoint without one the rows in {@code dir}
     * up to step {@code fromStep}.
     */
    Metrics(Path dir, Path checkpoint, int fromStep) throws IOException {
        this.dir = dir;
        Files.createDirectories(dir);
        csv.add(HEADER);
        if (checkpoint == null) {
            return;
        }
        boolean copy = Files.isRegularFile(checkpoint.resolve(CSV)) && Files.isRegularFile(checkpoint.resolve(JSONL));
        Path from = copy ? checkpoint : dir;
        if (!Files.isRegularFile(from.resolve(CSV)) || !Files.isRegularFile(from.resolve(JSONL))) {
            return;
        }
        for (String row : Files.readAllLines(from.resolve(CSV), StandardCharsets.UTF_8)) {
            String[] f = row.split(",", -1);
            if (row.equals(HEADER) || f.length < 3 || !f[0].matches("\\d+") || Integer.parseInt(f[0]) > fromStep) {
                continue;
            }
            csv.add(row);
            double step = Integer.parseInt(f[0]);
            double loss = Double.parseDouble(f[2]);
            (f[1].equals("eval") ? evalSteps : steps).add(step);
            (f[1].equals("eval") ? evalLosses : losses).add(loss);
        }
        for (String row : Files.readAllLines(from.resolve(JSONL), StandardCharsets.UTF_8)) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("^\\{\"step\":(\\d+),").matcher(row);
            if (m.find() && Integer.parseInt(m.group(1)) <= fromStep) {
                jsonl.add(row);
            }
        }
    }

    void step(Trainer.StepStats s) {
        double tps = s.tokens() * 1e9 / s.nanos();
        boolean ada = s.budget() >= 0;
        csv.add(String.format(Locale.ROOT, "%d,train,%.6f,%.4f,%.6g,%.6g,%d,%.1f,%s", s.step(), s.loss(), Math.exp(s.loss()), s.lr(),
                s.gradNorm(), s.tokens(), tps, ada ? String.format(Locale.ROOT, "%.6g,%d", s.orthLoss(), s.budget()) : ","));
        jsonl.add(String.format(Locale.ROOT, "{\"step\":%d,\"split\":\"train\",\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens\":%d,\"tokens_per_s\":%.1f%s}",
                s.step(), s.loss(), s.lr(), s.gradNorm(), s.tokens(), tps,
                ada ? String.format(Locale.ROOT, ",\"orth_reg_loss\":%.6g,\"budget\":%d", s.orthLoss(), s.budget()) : ""));
        steps.add((double) s.step());
        losses.add(s.loss());
        if (System.nanoTime() - written > WRITE_EVERY_NANOS) {
            write();
        }
    }

    void eval(int step, double loss) {
        csv.add(String.format(Locale.ROOT, "%d,eval,%.6f,%.4f,,,,,,", step, loss, Math.exp(loss)));
        jsonl.add(String.format(Locale.ROOT, "{\"step\":%d,\"split\":\"eval\",\"loss\":%.6f,\"perplexity\":%.4f}", step, loss, Math.exp(loss)));
        evalSteps.add((double) step);
        evalLosses.add(loss);
        write();
    }

    /** Both files' contents now: what a checkpoint keeps (and they are written to the output directory too). */
    Map<String, byte[]> files() {
        write();
        Map<String, byte[]> m = new LinkedHashMap<>();
        m.put(CSV, text(csv));
        m.put(JSONL, text(jsonl));
        return m;
    }

    /** Writes metrics.csv and metrics.jsonl durably. */
    void write() {
        try {
            DurableFiles.write(dir.resolve(CSV), text(csv));
            DurableFiles.write(dir.resolve(JSONL), text(jsonl));
        } catch (IOException e) {
            throw new java.io.UncheckedIOException("cannot write metrics to " + dir + ": " + e.getMessage(), e);
        }
        written = System.nanoTime();
    }

    private static byte[] text(List<String> rows) {
        StringBuilder sb = new StringBuilder();
        for (String r : rows) {
            sb.append(r).append('\n');
        }
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    /** Writes loss.png durably; returns null on success or the reason it could not be drawn. */
    String plot() {
        if (steps.isEmpty()) {
            return "no steps";
        }
        try {
            System.setProperty("java.awt.headless", "true");
            XYChart chart = new XYChartBuilder().width(800).height(500).title("lora4j training loss")
                    .xAxisTitle("step").yAxisTitle("loss").build();
            chart.addSeries("train", steps, losses);
            if (!evalSteps.isEmpty()) {
                chart.addSeries("eval", evalSteps, evalLosses);
            }
            ByteArrayOutputStream png = new ByteArrayOutputStream();
            BitmapEncoder.saveBitmap(chart, png, BitmapEncoder.BitmapFormat.PNG);
            DurableFiles.write(dir.resolve("loss.png"), png.toByteArray());
            return null;
        } catch (IOException | RuntimeException | Error e) {
            return e.toString();
        }
    }
}

package io.lora4j.cli;

import io.lora4j.model.train.Trainer;
import org.knowm.xchart.BitmapEncoder;
import org.knowm.xchart.XYChart;
import org.knowm.xchart.XYChartBuilder;

import java.io.IOException;
import java.io.PrintWriter;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * Training metrics as CSV and JSONL (one row per step or evaluation) and a PNG loss curve. AdaLoRA
 * steps also carry {@code orth_reg_loss} (the regulariser's term, not in {@code loss}) and {@code budget}.
 */
final class Metrics implements AutoCloseable {
    private final Path dir;
    private final PrintWriter csv;
    private final PrintWriter jsonl;
    private final List<Double> steps = new ArrayList<>();
    private final List<Double> losses = new ArrayList<>();
    private final List<Double> evalSteps = new ArrayList<>();
    private final List<Double> evalLosses = new ArrayList<>();

    /** New files, or with {@code append} (a resumed run) rows added to the existing ones. */
    Metrics(Path dir, boolean append) throws IOException {
        this.dir = dir;
        Files.createDirectories(dir);
        boolean header = !append || !Files.exists(dir.resolve("metrics.csv"));
        java.nio.file.OpenOption[] mode = append
                ? new java.nio.file.OpenOption[]{java.nio.file.StandardOpenOption.CREATE, java.nio.file.StandardOpenOption.APPEND}
                : new java.nio.file.OpenOption[0];
        csv = new PrintWriter(Files.newBufferedWriter(dir.resolve("metrics.csv"), StandardCharsets.UTF_8, mode));
        jsonl = new PrintWriter(Files.newBufferedWriter(dir.resolve("metrics.jsonl"), StandardCharsets.UTF_8, mode));
        if (header) {
            csv.println("step,split,loss,perplexity,lr,grad_norm,tokens,tokens_per_s,orth_reg_loss,budget");
        }
    }

    void step(Trainer.StepStats s) {
        double tps = s.tokens() * 1e9 / s.nanos();
        boolean ada = s.budget() >= 0;
        csv.printf(Locale.ROOT, "%d,train,%.6f,%.4f,%.6g,%.6g,%d,%.1f,%s%n", s.step(), s.loss(), Math.exp(s.loss()), s.lr(),
                s.gradNorm(), s.tokens(), tps, ada ? String.format(Locale.ROOT, "%.6g,%d", s.orthLoss(), s.budget()) : ",");
        jsonl.printf(Locale.ROOT, "{\"step\":%d,\"split\":\"train\",\"loss\":%.6f,\"lr\":%.6g,\"grad_norm\":%.6g,\"tokens\":%d,\"tokens_per_s\":%.1f%s}%n",
                s.step(), s.loss(), s.lr(), s.gradNorm(), s.tokens(), tps,
                ada ? String.format(Locale.ROOT, ",\"orth_reg_loss\":%.6g,\"budget\":%d", s.orthLoss(), s.budget()) : "");
        csv.flush();
        jsonl.flush();
        steps.add((double) s.step());
        losses.add(s.loss());
    }

    void eval(int step, double loss) {
        csv.printf(Locale.ROOT, "%d,eval,%.6f,%.4f,,,,,,%n", step, loss, Math.exp(loss));
        jsonl.printf(Locale.ROOT, "{\"step\":%d,\"split\":\"eval\",\"loss\":%.6f,\"perplexity\":%.4f}%n", step, loss, Math.exp(loss));
        csv.flush();
        jsonl.flush();
        evalSteps.add((double) step);
        evalLosses.add(loss);
    }

    /** Writes loss.png (temp file + rename); returns null on success or the reason it could not be drawn. */
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
            Path tmp = dir.resolve("loss.png.tmp");
            BitmapEncoder.saveBitmap(chart, Files.newOutputStream(tmp), BitmapEncoder.BitmapFormat.PNG);
            Files.move(tmp, dir.resolve("loss.png"), StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
            return null;
        } catch (IOException | RuntimeException | Error e) {
            return e.toString();
        }
    }

    @Override
    public void close() {
        csv.close();
        jsonl.close();
    }
}

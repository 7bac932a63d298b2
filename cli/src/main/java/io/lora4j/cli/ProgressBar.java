package io.lora4j.cli;

import io.lora4j.model.train.Trainer;

import java.io.PrintStream;
import java.util.Locale;

/**
 * One line on standard error, redrawn per step: step, bar, loss, learning rate, tokens/s, ETA; for
 * AdaLoRA also the orthogonal regulariser's loss term and the current triplet budget.
 */
final class ProgressBar {
    private final PrintStream err;
    private final int total;
    private final long start = System.nanoTime();
    private final boolean interactive = System.console() != null;
    private final int first;
    private long tokens;

    ProgressBar(PrintStream err, int total) {
        this(err, total, 0);
    }

    /** A bar for steps {@code first+1 .. total} (a resumed run starts after step {@code first}). */
    ProgressBar(PrintStream err, int total, int first) {
        this.err = err;
        this.total = total;
        this.first = first;
    }

    void step(Trainer.StepStats s) {
        tokens += s.tokens();
        double elapsed = (System.nanoTime() - start) / 1e9;
        double tps = tokens / Math.max(elapsed, 1e-9);
        double eta = elapsed / Math.max(1, s.step() - first) * (total - s.step());
        int width = 24;
        int filled = (int) ((long) width * s.step() / total);
        String bar = "=".repeat(filled) + (filled < width ? ">" + " ".repeat(width - filled - 1) : "");
        String ada = s.budget() < 0 ? "" : String.format(Locale.ROOT, " orth %.4f budget %d", s.orthLoss(), s.budget());
        String line = String.format(Locale.ROOT, "step %d/%d [%s] loss %.4f%s lr %.2e %.0f tok/s ETA %s",
                s.step(), total, bar, s.loss(), ada, s.lr(), tps, time(eta));
        if (interactive) {
            err.print("\r" + line);
            if (s.step() == total) {
                err.println();
            }
        } else if (s.step() % Math.max(1, total / 20) == 0 || s.step() == total || s.step() == 1) {
            err.println(line); // a log, not a terminal: about twenty lines per run
        }
        err.flush();
    }

    void eval(int step, double loss) {
        if (interactive) {
            err.println();
        }
        err.printf(Locale.ROOT, "eval at step %d: loss %.4f, perplexity %.3f%n", step, loss, Math.exp(loss));
    }

    private static String time(double seconds) {
        long s = Math.round(seconds);
        return String.format("%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    }
}

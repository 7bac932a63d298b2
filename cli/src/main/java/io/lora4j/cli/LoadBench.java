package io.lora4j.cli;

import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.State;
import io.lora4j.model.format.ModelFiles;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.tokenizer.Tokenizers;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;

/**
 * {@code bench --load-only}: the cost of opening a model rather than running it. In one fresh
 * process: resident memory before, the first open (file parsed and mapped, {@link Llama} built;
 * class loading included), resident memory right after it, the tokenizer, the first token of a
 * prompt (prefill + argmax, weights paged in from the page cache or disk), resident memory then;
 * and the mean of {@code reps} further opens with a warm JVM. Resident memory is VmRSS and its
 * file-backed part RssFile from /proc/self/status.
 */
final class LoadBench {
    private LoadBench() {
    }

    static void run(Path model, Path tokenizer, Backend backend, int reps, String prompt) throws IOException {
        Rss before = Rss.now();
        long t0 = System.nanoTime();
        WeightSource src = ModelFiles.open(model);
        Llama m = new Llama(src);
        long t1 = System.nanoTime();
        Rss opened = Rss.now();
        try (src) {
            Tokenizer tok = tokenizer != null ? Tokenizers.load(tokenizer) : LoadedModel.findTokenizer(src);
            long t2 = System.nanoTime();
            int[] body = tok.encode(prompt);
            int[] ids = new int[body.length + 1];
            ids[0] = tok.bos();
            System.arraycopy(body, 0, ids, 1, body.length);
            State s = m.newState(ids.length, ids.length + 1);
            float[] logits = m.forward(backend, s, ids, 0, ids.length, 0);
            int next = 0;
            for (int v = 1; v < logits.length; v++) {
                next = logits[v] > logits[next] ? v : next;
            }
            long t3 = System.nanoTime();
            Rss first = Rss.now();
            double again = 0;
            for (int i = 0; i < reps; i++) {
                long a = System.nanoTime();
                try (WeightSource again1 = ModelFiles.open(model)) {
                    new Llama(again1);
                }
                again += (System.nanoTime() - a) / 1e6 / reps;
            }
            long size = Files.isDirectory(model) ? 0 : Files.size(model);
            System.out.println("| model | format | file MiB | open ms (first) | open ms (warm, mean of " + reps + ") | tokenizer ms "
                    + "| first token ms | VmRSS MiB before / after open / after 1st token | RssFile MiB same |");
            System.out.println("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- |");
            System.out.printf(Locale.ROOT, "| %s | %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.1f / %.1f / %.1f | %.1f / %.1f / %.1f |%n",
                    model.getFileName(), src.format(), size / 1048576.0, (t1 - t0) / 1e6, again, (t2 - t1) / 1e6, (t3 - t2) / 1e6,
                    before.total, opened.total, first.total, before.file, opened.file, first.file);
            System.err.println("first token: " + next + " " + tok.decode(new int[]{next}).strip() + " after " + ids.length + " prompt tokens");
        }
    }

    /** VmRSS, RssFile and the peak VmHWM of this process in MiB (-1 where /proc does not have them). */
    record Rss(double total, double file, double peak) {
        static Rss now() throws IOException {
            double total = -1, file = -1, peak = -1;
            Path status = Path.of("/proc/self/status");
            if (Files.isReadable(status)) {
                for (String line : Files.readAllLines(status)) {
                    if (line.startsWith("VmRSS:")) {
                        total = kib(line) / 1024.0;
                    } else if (line.startsWith("RssFile:")) {
                        file = kib(line) / 1024.0;
                    } else if (line.startsWith("VmHWM:")) {
                        peak = kib(line) / 1024.0;
                    }
                }
            }
            return new Rss(total, file, peak);
        }

        private static long kib(String line) {
            return Long.parseLong(line.replaceAll("[^0-9]", ""));
        }
    }
}

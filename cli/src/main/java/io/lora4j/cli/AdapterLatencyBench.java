package io.lora4j.cli;

import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.State;
import io.lora4j.model.lora.BottleneckConfig;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * {@code bench --compare-adapters}: generation latency of the base model, a LoRA adapter unmerged and merged, and a
 * bottleneck adapter (Houlsby, AdapterHub's defaults) with about the LoRA adapter's parameter count — the comparison
 * LoRA is usually measured against: a merged LoRA costs nothing, a bottleneck adapter cannot be merged. Both adapters
 * are fresh (random values: latency does not depend on them). Each round measures the four in turn, in alternating
 * order (ABCD, DCBA, …), so that a machine's drift spreads over all four; every figure is mean ± sd and min–max over
 * the rounds, after one untimed warm-up of each.
 */
final class AdapterLatencyBench {
    private AdapterLatencyBench() {
    }

    /** The bottleneck width whose Houlsby adapter (two modules a block) has the nearest parameter count to {@code perLayer}. */
    static int matchingWidth(long perLayer, int C) {
        // per block: 2 modules × (W_down d·C + b_down d + W_up C·d + b_up C)
        long d = Math.round((perLayer / 2.0 - C) / (2.0 * C + 1));
        return (int) Math.max(1, Math.min(C, d));
    }

    /** A reduction factor whose width {@code int(C // factor)} is exactly d. */
    static double factorFor(int C, int d) {
        double f = (double) C / d;
        BottleneckConfig probe = BottleneckConfig.houlsby(f);
        return probe.width(0, C) == d ? f : Math.nextDown(f);
    }

    static void run(Llama m, Backend backend, int n, int rounds, int r, List<String> targets, PrintStream out) {
        int C = m.config().dim();
        LoraConfig lc = new LoraConfig(r, 2f * r, 0f, targets, null, "none", false, "false", List.of(), Map.of(), Map.of(), List.of());
        LoraAdapter lora = new LoraAdapter("lora", lc, m, 1);
        long loraParams = lora.trainableParameters();
        int d = matchingWidth(loraParams / m.config().nLayers(), C);
        LoraAdapter bn = new LoraAdapter("bottleneck", BottleneckConfig.houlsby(factorFor(C, d)), m, 2);
        String[] names = {"base", "LoRA r " + r + " " + String.join(",", targets) + " unmerged", "LoRA merged",
                "bottleneck d " + d + " (reduction_factor " + String.format(Locale.ROOT, "%.4g", bn.bottleneckConfig().reductionFactor())
                        + ", mh+output, swish)"};
        long[] params = {0, loraParams, loraParams, bn.trainableParameters()};
        State s = new State(m.config(), 1, n, 1);
        int[] toks = new SplittableRandom(42).ints(n, 0, m.config().vocabSize()).toArray();
        double[][] ms = new double[4][rounds];
        for (int i = 0; i < 4; i++) {
            time(m, backend, s, toks, i, lora, bn); // warm-up
        }
        for (int k = 0; k < rounds; k++) {
            for (int j = 0; j < 4; j++) {
                int i = k % 2 == 0 ? j : 3 - j;
                ms[i][k] = time(m, backend, s, toks, i, lora, bn);
            }
        }
        out.println("| variant | adapter params | ms/token (mean ± sd) | min–max | t/s |");
        out.println("| --- | ---: | ---: | ---: | ---: |");
        for (int i = 0; i < 4; i++) {
            double mean = Arrays.stream(ms[i]).average().orElse(0);
            double sd = Math.sqrt(Arrays.stream(ms[i]).map(x -> (x - mean) * (x - mean)).sum() / Math.max(1, rounds - 1));
            out.printf(Locale.ROOT, "| %s | %,d | %.2f ± %.2f | %.2f–%.2f | %.2f |%n", names[i], params[i], mean, sd,
                    Arrays.stream(ms[i]).min().orElse(0), Arrays.stream(ms[i]).max().orElse(0), 1000 / mean);
        }
        out.printf(Locale.ROOT, "(tg%d on %s, %d alternating rounds)%n", n, backend.device(), rounds);
    }

    /** Milliseconds per generated token of variant i: 0 base, 1 LoRA unmerged, 2 LoRA merged, 3 bottleneck. */
    private static double time(Llama m, Backend backend, State s, int[] toks, int i, LoraAdapter lora, LoraAdapter bn) {
        m.adapters().set(i == 1 ? lora : i == 3 ? bn : null);
        if (i == 2) {
            m.merge(lora);
        }
        try {
            long t0 = System.nanoTime();
            for (int p = 0; p < toks.length; p++) {
                m.forward(backend, s, toks, p, 1, p);
            }
            return (System.nanoTime() - t0) / 1e6 / toks.length;
        } finally {
            if (i == 2) {
                m.unmerge();
            }
            m.adapters().set(null);
        }
    }
}

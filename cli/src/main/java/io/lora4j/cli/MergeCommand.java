package io.lora4j.cli;

import io.lora4j.model.lora.Merge;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.MergeError;
import io.lora4j.model.MergedExport;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.Callable;

/**
 * {@code lora4j merge}: merge_and_unload — the base with its adapters folded in, written as GGUF or
 * a Hugging Face directory. Merging into a quantized base needs {@code --dequantize} or
 * {@code --requantize}; then the merged model's logits are compared with the unmerged adapters' on
 * a sample of tokens and the error is reported (a warning above {@code --warn-kl}).
 */
@Command(name = "merge", mixinStandardHelpOptions = true,
        description = "Merge LoRA adapters into the base weights and export the result as GGUF (*.gguf) or a Hugging Face directory.")
final class MergeCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;
    @Mixin
    QuantizeOptions quantize;
    @Mixin
    MergeModeOptions mergeMode;

    @Option(names = "--adapter", required = true, paramLabel = "DIR", description = "PEFT adapter directory (repeatable; merged in order).")
    List<Path> adapters;

    @Option(names = {"-o", "--out"}, required = true, paramLabel = "PATH", description = "Output: a .gguf file, or a directory for Hugging Face safetensors.")
    Path out;

    @Option(names = "--type", defaultValue = "f32", description = "f32 or f16 for the merged (and dequantized) matrices (default ${DEFAULT-VALUE}).")
    String type;

    @Option(names = "--sample-tokens", defaultValue = "64", paramLabel = "N", description = "Quantized base: positions on which "
            + "merged and unmerged logits are compared (the unmerged model's greedy text from BOS; default ${DEFAULT-VALUE}).")
    int sampleTokens;

    @Option(names = "--warn-kl", defaultValue = "0.01", paramLabel = "NATS", description = "Warn when the mean "
            + "KL(merged ‖ unmerged) exceeds this (default ${DEFAULT-VALUE}).")
    double warnKl;

    @Override
    public Integer call() throws IOException {
        GgmlType t = switch (type.toLowerCase(Locale.ROOT)) {
            case "f32" -> GgmlType.F32;
            case "f16" -> GgmlType.F16;
            default -> throw new IllegalArgumentException("--type must be f32 or f16, got '" + type + "'");
        };
        Merge.Mode mode = mergeMode.mode();
        if (sampleTokens < 1) {
            throw new IllegalArgumentException("--sample-tokens must be >= 1");
        }
        try (LoadedModel lm = modelOptions.open(quantize); Backend backend = modelOptions.backend()) {
            Llama m = lm.llama();
            List<LoraAdapter> loaded = new ArrayList<>();
            for (int i = 0; i < adapters.size(); i++) {
                loaded.add(PeftAdapters.load(adapters.get(i), m, i + ":" + adapters.get(i).getFileName()));
            }
            boolean measure = m.quantizedBase() && mode != Merge.Mode.FLOAT_ONLY;
            String base = TrainCommand.describeBase(lm);
            int[] sample = null;
            float[][] unmerged = null;
            if (measure) {
                Map<String, Float> all = new LinkedHashMap<>();
                for (LoraAdapter a : loaded) {
                    m.adapters().add(a);
                    all.put(a.name(), 1f);
                }
                m.adapters().activate(all);
                sample = sample(m, backend, lm.tokenizer().bos());
                unmerged = MergeError.logits(m, backend, sample);
                m.adapters().disable();
            }
            for (int i = 0; i < loaded.size(); i++) {
                m.merge(loaded.get(i), mode);
                System.err.println("merged " + adapters.get(i) + " (" + loaded.get(i).layers().size() + " projections"
                        + (mode == Merge.Mode.FLOAT_ONLY ? "" : ", " + mode.name().toLowerCase(Locale.ROOT)) + ")");
            }
            if (measure) {
                MergeError e = MergeError.between(MergeError.logits(m, backend, sample), unmerged);
                System.err.println("merge error (merged vs the adapters unmerged; base " + base + "): " + e.describe());
                if (e.meanKl() > warnKl) {
                    System.err.printf(Locale.ROOT, "warning: the merge changes the output distribution by a mean KL of %.4g nats "
                            + "> --warn-kl %s; serve the adapter unmerged, or merge with --dequantize%n", e.meanKl(), warnKl);
                }
            }
            if (!m.quantization().none()) {
                System.err.println("note: GGUF and safetensors have no " + m.quantization().label() + "; the block projections are "
                        + "written dequantized as " + t);
            }
            if (out.getFileName().toString().endsWith(".gguf")) {
                MergedExport.writeGguf(m, out, t);
            } else {
                MergedExport.writeHf(m, out, t);
                System.err.println("note: the tokenizer is not exported to the Hugging Face directory; pass --tokenizer when loading it");
            }
            System.err.println("wrote " + out);
        }
        return 0;
    }

    /** BOS and the unmerged model's greedy continuation: text the merged model must still produce. */
    private int[] sample(Llama m, Backend backend, int bos) {
        int n = Math.min(sampleTokens, m.config().contextLength());
        int start = Math.max(bos, 0);
        int[] gen = Generator.generate(m, backend, m.newState(16, n), new int[]{start}, 0, n - 1,
                new Sampler(Sampler.Params.greedy(), m.config().vocabSize()), Set.of(), x -> { }).tokens();
        int[] s = new int[1 + gen.length];
        s[0] = start;
        System.arraycopy(gen, 0, s, 1, gen.length);
        return s;
    }
}

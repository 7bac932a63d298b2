package io.lora4j.cli;

import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.AdaLoraExport;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.WeightedAdapters;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

/**
 * {@code lora4j adapters inspect DIR}, {@code adapters export-lora IN -o OUT} and {@code adapters combine A B … -o OUT}:
 * PEFT adapter directories.
 */
@Command(name = "adapters", mixinStandardHelpOptions = true, description = "Work with adapter directories.",
        subcommands = {AdaptersCommand.Inspect.class, AdaptersCommand.ExportLora.class, AdaptersCommand.Combine.class})
final class AdaptersCommand {

    @Command(name = "inspect", mixinStandardHelpOptions = true,
            description = "Config, targets, ranks, parameter count and size on disk of a PEFT LoRA (DoRA) or AdaLoRA adapter, "
                    + "or of an AdapterHub bottleneck adapter.")
    static final class Inspect implements Callable<Integer> {
        @Parameters(paramLabel = "DIR", description = "Adapter directory (adapter_config.json + adapter_model.safetensors).")
        Path dir;

        @Override
        public Integer call() throws IOException {
            if (io.lora4j.model.lora.BottleneckAdapters.isBottleneck(dir)) {
                bottleneck();
                return 0;
            }
            PeftAdapters.Config h = PeftAdapters.readConfig(dir);
            LoraConfig c = h.lora();
            AdaLoraConfig ada = h.adaLora();
            System.out.println("adapter:  " + dir);
            System.out.println("type:     " + (ada == null ? "LORA" : "ADALORA"));
            if (ada == null) {
                System.out.println("config:   r=" + c.r() + " lora_alpha=" + c.loraAlpha() + " dropout=" + c.loraDropout()
                        + " bias=" + c.bias() + " use_rslora=" + c.useRslora() + " use_dora=" + c.useDora() + " init="
                        + c.initLoraWeights());
            } else {
                System.out.println("config:   init_r=" + ada.initR() + " target_r=" + ada.targetR() + " lora_alpha=" + c.loraAlpha()
                        + " dropout=" + c.loraDropout() + " init=" + c.initLoraWeights());
                System.out.println("schedule: tinit=" + ada.tinit() + " tfinal=" + ada.tfinal() + " deltaT=" + ada.deltaT()
                        + " total_step=" + ada.totalStep() + " beta1=" + ada.beta1() + " beta2=" + ada.beta2()
                        + " orth_reg_weight=" + ada.orthRegWeight());
                if (h.rankPattern() != null) {
                    int kept = 0;
                    for (boolean[] f : h.rankPattern().values()) {
                        kept += LoraAdapter.kept(f);
                    }
                    System.out.println("rank_pattern: " + h.rankPattern().size() + " modules, " + kept + " triplets kept of "
                            + h.rankPattern().size() * ada.initR());
                }
            }
            System.out.println("targets:  " + (c.targetRegex() != null ? "regex " + c.targetRegex() : c.targetModules())
                    + (c.layersToTransform().isEmpty() ? "" : " in layers " + c.layersToTransform()));
            if (!c.rankPattern().isEmpty() || !c.alphaPattern().isEmpty()) {
                System.out.println("patterns: rank " + c.rankPattern() + ", alpha " + c.alphaPattern());
            }
            if (!c.modulesToSave().isEmpty()) {
                System.out.println("modules_to_save: " + c.modulesToSave());
            }
            long params = 0;
            long total = 0;
            Map<String, Integer> modules = new TreeMap<>();
            Map<Long, Integer> ranks = new TreeMap<>();
            try (SafetensorsFile st = SafetensorsFile.open(dir.resolve(PeftAdapters.WEIGHTS))) {
                for (Map.Entry<String, TensorInfo> e : st.tensors().entrySet()) {
                    params += e.getValue().elementCount();
                    String k = e.getKey();
                    int i = k.endsWith(".lora_A") ? k.length() - ".lora_A".length() : k.indexOf(".lora_A.");
                    if (i > 0) {
                        String module = k.substring(k.lastIndexOf('.', i - 1) + 1, i);
                        modules.merge(module, 1, Integer::sum);
                        long r = st.fileShape(k)[0];
                        ranks.merge(r, 1, Integer::sum);
                        total += r;
                    }
                }
                System.out.println("tensors:  " + st.tensors().size() + ", adapted projections per module " + modules);
                System.out.println("ranks:    " + ranks + " (rank → projections), total " + total);
            }
            long bytes = Files.size(dir.resolve(PeftAdapters.WEIGHTS)) + Files.size(dir.resolve(PeftAdapters.CONFIG));
            System.out.printf(java.util.Locale.ROOT, "parameters: %,d; on disk %,d bytes%n", params, bytes);
            return 0;
        }

        /** An AdapterHub bottleneck adapter: its settings, modules and size. */
        private void bottleneck() throws IOException {
            var h = io.lora4j.model.lora.BottleneckAdapters.readConfig(dir);
            var c = h.bottleneck();
            System.out.println("adapter:  " + dir);
            System.out.println("type:     BOTTLENECK (AdapterHub, name " + h.name() + ")");
            System.out.println("config:   mh_adapter=" + c.mhAdapter() + " output_adapter=" + c.outputAdapter() + " reduction_factor="
                    + c.reductionFactor() + (c.layerFactors().isEmpty() ? "" : " " + c.layerFactors()) + " non_linearity="
                    + c.nonLinearity() + " scaling=" + c.scaling() + " init_weights=" + c.initWeights()
                    + (c.leaveOut().isEmpty() ? "" : " leave_out=" + c.leaveOut()));
            Path w = dir.resolve(io.lora4j.model.lora.BottleneckAdapters.WEIGHTS);
            long params = 0;
            int tensors;
            try (SafetensorsFile st = SafetensorsFile.open(w)) {
                tensors = st.tensors().size();
                for (TensorInfo t : st.tensors().values()) {
                    params += t.elementCount();
                }
            }
            System.out.printf(java.util.Locale.ROOT, "modules:  %d (%d tensors)%nparams:   %,d%nsize:     %,d bytes%n", tensors / 4,
                    tensors, params, java.nio.file.Files.size(w));
        }
    }

    @Command(name = "export-lora", mixinStandardHelpOptions = true,
            description = "Rewrite an AdaLoRA adapter as a plain LoRA adapter with the same update (E and the scaling folded "
                    + "into lora_A, per-module ranks in rank_pattern/alpha_pattern), for tools that only know LoRA.")
    static final class ExportLora implements Callable<Integer> {
        @Parameters(paramLabel = "IN", description = "AdaLoRA adapter directory.")
        Path in;

        @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUT", description = "Directory for the LoRA adapter.")
        Path out;

        @Override
        public Integer call() {
            if (in.toAbsolutePath().normalize().equals(out.toAbsolutePath().normalize())) {
                throw new IllegalArgumentException("-o must differ from the input directory (the AdaLoRA files would be replaced)");
            }
            AdaLoraExport.Result r = AdaLoraExport.toLora(in, out);
            long pruned = r.ranks().values().stream().filter(k -> k == 0).count();
            System.err.println("exported " + (r.ranks().size() - pruned) + " modules as LoRA (r=" + r.config().r() + ", "
                    + r.config().rankPattern().size() + " rank_pattern entries" + (pruned > 0 ? ", " + pruned
                    + " modules pruned to rank 0 left out" : "") + ") to " + out);
            return 0;
        }
    }

    @Command(name = "combine", mixinStandardHelpOptions = true,
            description = "PEFT's add_weighted_adapter: a new adapter from weighted adapters, written as a PEFT adapter.")
    static final class Combine implements Callable<Integer> {
        @Mixin
        ModelOptions modelOptions;

        @Parameters(paramLabel = "DIR", arity = "1..*", description = "PEFT LoRA (or AdaLoRA) adapter directories.")
        List<Path> dirs;

        @Option(names = "--weights", split = ",", required = true, paramLabel = "W",
                description = "One weight per adapter, comma-separated; negative subtracts.")
        List<Float> weights;

        @Option(names = "--type", defaultValue = "svd", paramLabel = "TYPE", description = "svd, linear, cat, ties, ties_svd, "
                + "dare_linear, dare_ties, dare_linear_svd, dare_ties_svd, magnitude_prune or magnitude_prune_svd "
                + "(PEFT's combination_type; default ${DEFAULT-VALUE}; one adapter is always combined linear).")
        String type;

        @Option(names = "--svd-rank", defaultValue = "0", paramLabel = "R",
                description = "Rank of the *svd types' result (default: the largest adapter rank).")
        int svdRank;

        @Option(names = "--svd-clamp", paramLabel = "Q", description = "Clamp the *svd types' factors to the Q quantile of "
                + "their values (PEFT's svd_clamp; default: no clamping).")
        Double svdClamp;

        @Option(names = "--density", paramLabel = "D", description = "Fraction of values kept by ties, dare_* and "
                + "magnitude_prune (required by them).")
        Double density;

        @Option(names = "--majority-sign-method", defaultValue = "total", paramLabel = "M",
                description = "total or frequency: how ties and dare_ties elect each element's sign (default ${DEFAULT-VALUE}).")
        String majoritySignMethod;

        @Option(names = "--seed", defaultValue = "0", description = "DARE's masks: those PEFT draws after "
                + "torch.manual_seed(SEED) (default ${DEFAULT-VALUE}).")
        long seed;

        @Option(names = {"-o", "--output"}, required = true, paramLabel = "OUT", description = "Directory for the new adapter.")
        Path out;

        @Override
        public Integer call() {
            if (weights.size() != dirs.size()) {
                throw new IllegalArgumentException("--weights has " + weights.size() + " value(s) for " + dirs.size() + " adapter(s)");
            }
            for (Path d : dirs) {
                if (d.toAbsolutePath().normalize().equals(out.toAbsolutePath().normalize())) {
                    throw new IllegalArgumentException("-o must differ from the input directories (" + d + " would be replaced)");
                }
            }
            var options = new WeightedAdapters.Options(type, svdRank, svdClamp, density, majoritySignMethod, seed);
            try (LoadedModel lm = modelOptions.open()) {
                List<LoraAdapter> adapters = new ArrayList<>();
                for (int i = 0; i < dirs.size(); i++) {
                    adapters.add(PeftAdapters.load(dirs.get(i), lm.llama(), i + ":" + dirs.get(i).getFileName()));
                }
                LoraAdapter c = WeightedAdapters.combine(lm.llama(), adapters, weights, "combined", options);
                PeftAdapters.save(c, lm.llama(), out);
                if (c.config().useRslora()) {
                    System.err.println("note: the first adapter uses rsLoRA, and PEFT keeps its config: the combined adapter's "
                            + "scaling is sqrt(r) = " + c.layers().get(0).scaling + ", not 1, as in PEFT");
                }
                String used = dirs.size() == 1 ? "linear (one adapter)" : type;
                System.err.println("combined " + dirs.size() + " adapter(s) " + used + " into " + c.layers().size() + " modules, r="
                        + c.config().r() + ", lora_alpha=" + c.config().loraAlpha() + ": " + out);
            }
            return 0;
        }
    }
}

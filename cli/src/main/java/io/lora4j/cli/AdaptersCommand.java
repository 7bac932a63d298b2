package io.lora4j.cli;

import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import picocli.CommandLine.Command;
import picocli.CommandLine.Parameters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.Callable;

/** {@code lora4j adapters inspect DIR}: what a PEFT adapter directory holds. */
@Command(name = "adapters", mixinStandardHelpOptions = true, description = "Work with adapter directories.",
        subcommands = AdaptersCommand.Inspect.class)
final class AdaptersCommand {

    @Command(name = "inspect", mixinStandardHelpOptions = true,
            description = "Config, targets, ranks, parameter count and size on disk of a PEFT adapter.")
    static final class Inspect implements Callable<Integer> {
        @Parameters(paramLabel = "DIR", description = "Adapter directory (adapter_config.json + adapter_model.safetensors).")
        Path dir;

        @Override
        public Integer call() throws IOException {
            LoraConfig c = PeftAdapters.readConfig(dir);
            System.out.println("adapter:  " + dir);
            System.out.println("config:   r=" + c.r() + " lora_alpha=" + c.loraAlpha() + " dropout=" + c.loraDropout()
                    + " bias=" + c.bias() + " use_rslora=" + c.useRslora() + " init=" + c.initLoraWeights());
            System.out.println("targets:  " + (c.targetRegex() != null ? "regex " + c.targetRegex() : c.targetModules())
                    + (c.layersToTransform().isEmpty() ? "" : " in layers " + c.layersToTransform()));
            if (!c.rankPattern().isEmpty() || !c.alphaPattern().isEmpty()) {
                System.out.println("patterns: rank " + c.rankPattern() + ", alpha " + c.alphaPattern());
            }
            if (!c.modulesToSave().isEmpty()) {
                System.out.println("modules_to_save: " + c.modulesToSave());
            }
            long params = 0;
            Map<String, Integer> modules = new TreeMap<>();
            Map<Long, Integer> ranks = new TreeMap<>();
            try (SafetensorsFile st = SafetensorsFile.open(dir.resolve(PeftAdapters.WEIGHTS))) {
                for (Map.Entry<String, TensorInfo> e : st.tensors().entrySet()) {
                    params += e.getValue().elementCount();
                    String k = e.getKey();
                    int i = k.indexOf(".lora_A.");
                    if (i > 0) {
                        String module = k.substring(k.lastIndexOf('.', i - 1) + 1, i);
                        modules.merge(module, 1, Integer::sum);
                        ranks.merge(st.fileShape(k)[0], 1, Integer::sum);
                    }
                }
                System.out.println("tensors:  " + st.tensors().size() + ", adapted projections per module " + modules);
                System.out.println("ranks:    " + ranks + " (rank → projections)");
            }
            long bytes = Files.size(dir.resolve(PeftAdapters.WEIGHTS)) + Files.size(dir.resolve(PeftAdapters.CONFIG));
            System.out.printf(java.util.Locale.ROOT, "parameters: %,d; on disk %,d bytes%n", params, bytes);
            return 0;
        }
    }
}

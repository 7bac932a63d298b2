package io.lora4j.cli;

import io.lora4j.model.lora.BottleneckConfig;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Map;

/**
 * AdapterHub's bottleneck config keys as options (same names, dashes for underscores), for
 * {@code train --method bottleneck}; the defaults are Houlsby et al.'s ({@code DoubleSeqBnConfig}).
 */
public final class BottleneckOptions {
    @Option(names = "--reduction-factor", defaultValue = "16", description = "Bottleneck: width = hidden size // factor "
            + "(default ${DEFAULT-VALUE}).")
    double reductionFactor;
    @Option(names = "--non-linearity", defaultValue = "swish", description = "Bottleneck: swish (silu), relu, tanh or gelu_new "
            + "(default ${DEFAULT-VALUE}).")
    String nonLinearity;
    @Option(names = "--mh-adapter", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Bottleneck: an adapter after each attention sublayer (default ${DEFAULT-VALUE}; --no-mh-adapter drops it).")
    boolean mhAdapter;
    @Option(names = "--output-adapter", negatable = true, defaultValue = "true", fallbackValue = "true",
            description = "Bottleneck: an adapter after each feed-forward sublayer (default ${DEFAULT-VALUE}; --no-output-adapter drops it).")
    boolean outputAdapter;
    @Option(names = "--init-weights", defaultValue = "bert", description = "Bottleneck: bert, houlsby or mam_adapter "
            + "(default ${DEFAULT-VALUE}).")
    String initWeights;
    @Option(names = "--adapter-scaling", defaultValue = "1.0", description = "Bottleneck: AdapterHub's scaling of the "
            + "adapter's output (default ${DEFAULT-VALUE}).")
    float scaling;

    BottleneckConfig config() {
        try {
            return new BottleneckConfig(mhAdapter, outputAdapter, reductionFactor, Map.of(), nonLinearity, initWeights, scaling,
                    List.of(), 0f);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException("--method bottleneck: " + e.getMessage(), e);
        }
    }
}

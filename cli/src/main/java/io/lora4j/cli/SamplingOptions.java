package io.lora4j.cli;

import io.lora4j.model.Sampler;
import picocli.CommandLine.Option;

/** Sampling options, named as in llama.cpp. */
public final class SamplingOptions {
    @Option(names = {"--temperature", "--temp"}, defaultValue = "0.8", description = "0 = greedy (default ${DEFAULT-VALUE}).")
    float temperature;
    @Option(names = "--top-k", defaultValue = "40", description = "0 = off (default ${DEFAULT-VALUE}).")
    int topK;
    @Option(names = "--top-p", defaultValue = "0.95", description = "1 = off (default ${DEFAULT-VALUE}).")
    float topP;
    @Option(names = "--min-p", defaultValue = "0.05", description = "0 = off (default ${DEFAULT-VALUE}).")
    float minP;
    @Option(names = "--repeat-penalty", defaultValue = "1.0", description = "1 = off (default ${DEFAULT-VALUE}).")
    float repeatPenalty;
    @Option(names = "--repeat-last-n", defaultValue = "64", description = "Tokens the penalty looks back at (default ${DEFAULT-VALUE}).")
    int repeatLastN;
    @Option(names = {"-s", "--seed"}, description = "Random seed (default: from the clock).")
    Long seed;

    Sampler.Params params() {
        long s = seed != null ? seed : System.nanoTime();
        return new Sampler.Params(temperature, topK, topP, minP, repeatPenalty, repeatLastN, s);
    }
}

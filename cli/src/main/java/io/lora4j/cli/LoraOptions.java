package io.lora4j.cli;

import io.lora4j.model.lora.LoraConfig;
import picocli.CommandLine.Option;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** PEFT's LoraConfig fields as options (same names, dashes for underscores). */
public final class LoraOptions {
    @Option(names = {"-r", "--r"}, defaultValue = "8", description = "LoRA rank (default ${DEFAULT-VALUE}).")
    int r;
    @Option(names = "--lora-alpha", defaultValue = "16", description = "LoRA alpha; scaling = alpha/r (default ${DEFAULT-VALUE}).")
    float alpha;
    @Option(names = "--lora-dropout", defaultValue = "0.0", description = "Dropout on the LoRA input (default ${DEFAULT-VALUE}).")
    float dropout;
    @Option(names = "--target-modules", split = ",", defaultValue = "q_proj,v_proj",
            description = "Modules to adapt: names matched as suffixes (q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj) "
                    + "or all-linear (default ${DEFAULT-VALUE}).")
    List<String> targetModules;
    @Option(names = "--target-regex", description = "A regex matched against the whole module path "
            + "(e.g. 'model\\.layers\\.[0-2]\\.self_attn\\.(q|v)_proj'); overrides --target-modules.")
    String targetRegex;
    @Option(names = "--bias", defaultValue = "none", description = "none, all or lora_only (default ${DEFAULT-VALUE}).")
    String bias;
    @Option(names = "--use-rslora", description = "Scaling alpha/sqrt(r) instead of alpha/r.")
    boolean useRslora;
    @Option(names = "--init-lora-weights", defaultValue = "true", description = "true (kaiming-uniform A, B=0), gaussian, false, "
            + "or from the base weights, which become residuals W - s*B*A: pissa (SVD), pissa_niter_N (randomised SVD, N "
            + "power iterations, drawn as PEFT draws after torch.manual_seed(--seed)) or olora (QR). Such an adapter is "
            + "saved converted for the original base (rank 2r).")
    String init;
    @Option(names = "--layers-to-transform", split = ",", description = "Only these layer indices.")
    List<Integer> layers;
    @Option(names = "--rank-pattern", split = ",", description = "regex=rank overrides, e.g. 'v_proj=4'.")
    List<String> rankPattern;
    @Option(names = "--alpha-pattern", split = ",", description = "regex=alpha overrides.")
    List<String> alphaPattern;
    @Option(names = "--modules-to-save", split = ",", description = "Modules trained in full: lm_head, embed_tokens.")
    List<String> modulesToSave;
    @Option(names = "--use-dora", description = "DoRA: each adapted projection also trains a magnitude per output row, "
            + "y = m / ||W + s*B*A|| * (W x + s*B*A x) (PEFT's use_dora; JVM backend for training).")
    boolean useDora;

    public LoraConfig config() {
        Map<String, Integer> rp = new LinkedHashMap<>();
        for (String kv : rankPattern == null ? List.<String>of() : rankPattern) {
            String[] p = split(kv, "--rank-pattern");
            try {
                rp.put(p[0], Integer.parseInt(p[1]));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--rank-pattern " + kv + ": the rank is not an integer");
            }
        }
        Map<String, Float> ap = new LinkedHashMap<>();
        for (String kv : alphaPattern == null ? List.<String>of() : alphaPattern) {
            String[] p = split(kv, "--alpha-pattern");
            try {
                ap.put(p[0], Float.parseFloat(p[1]));
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--alpha-pattern " + kv + ": alpha is not a number");
            }
        }
        return new LoraConfig(r, alpha, dropout, new ArrayList<>(targetModules), targetRegex, bias, useRslora, init,
                layers == null ? List.of() : layers, rp, ap, modulesToSave == null ? List.of() : modulesToSave, useDora);
    }

    private static String[] split(String kv, String option) {
        int i = kv.lastIndexOf('=');
        if (i <= 0 || i == kv.length() - 1) {
            throw new IllegalArgumentException(option + " expects regex=value, got '" + kv + "'");
        }
        return new String[]{kv.substring(0, i), kv.substring(i + 1)};
    }
}

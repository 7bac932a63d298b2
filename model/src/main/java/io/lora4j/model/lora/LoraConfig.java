package io.lora4j.model.lora;

import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.format.Regexes;

import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * PEFT's {@code LoraConfig}, with its vocabulary and matching rules (peft/tuners/lora/config.py,
 * peft/tuners/tuners_utils.py {@code check_target_module_exists}, peft/utils/other.py
 * {@code get_pattern_key}).
 *
 * @param r                 default rank
 * @param loraAlpha         default alpha; scaling = alpha / r, or alpha / sqrt(r) with rsLoRA
 * @param loraDropout       dropout probability on the LoRA branch's input
 * @param targetModules     names matched as suffixes ({@code q_proj} matches {@code model.layers.0.self_attn.q_proj}),
 *                          or the single entry {@code all-linear}; ignored when {@code targetRegex} is set
 * @param targetRegex       a regular expression that must match the whole module path, or null
 * @param bias              "none", "all" or "lora_only" (Llama's projections have no bias, so "all" adds nothing;
 *                          "lora_only" gives lora_B a trainable bias)
 * @param useRslora         rank-stabilised scaling
 * @param initLoraWeights   "true" (kaiming-uniform A, B = 0), "gaussian" (A ~ N(0, 1/r), B = 0), "false" (B random too),
 *                          or from the base's weights, which then become residuals ({@link ResidualInit}): "pissa",
 *                          "pissa_niter_N", "olora"
 * @param layersToTransform layer indices to adapt, or empty for all
 * @param rankPattern       module-path regex → rank
 * @param alphaPattern      module-path regex → alpha
 * @param modulesToSave     modules trained in full and saved whole: {@code lm_head}, {@code embed_tokens}
 * @param useDora           DoRA: each adapted projection also gets a trainable magnitude vector
 *                          ({@code lora_magnitude_vector}) that rescales its rows (see {@link LoraLayer#magnitude})
 */
public record LoraConfig(int r, float loraAlpha, float loraDropout, List<String> targetModules, String targetRegex,
                         String bias, boolean useRslora, String initLoraWeights, List<Integer> layersToTransform,
                         Map<String, Integer> rankPattern, Map<String, Float> alphaPattern,
                         List<String> modulesToSave, boolean useDora) {

    public static final List<String> ALL_LINEAR = List.of("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj");
    private static final Pattern LAYER_INDEX = Pattern.compile(".*\\.layers\\.(\\d+)\\..*");

    public LoraConfig {
        if (r < 1) {
            throw new IllegalArgumentException("r must be >= 1, got " + r);
        }
        if (!(loraDropout >= 0 && loraDropout < 1)) {
            throw new IllegalArgumentException("lora_dropout must be in [0, 1), got " + loraDropout);
        }
        if (!List.of("none", "all", "lora_only").contains(bias)) {
            throw new IllegalArgumentException("bias must be none, all or lora_only, got '" + bias + "'");
        }
        if (!List.of("true", "gaussian", "false").contains(initLoraWeights) && !ResidualInit.mutatesBase(initLoraWeights)
                && !initLoraWeights.startsWith("pissa")) {
            throw new IllegalArgumentException("init_lora_weights must be true, gaussian, false, pissa, pissa_niter_[number of "
                    + "iters] or olora, got '" + initLoraWeights + "'");
        }
        if (initLoraWeights.startsWith("pissa")) {
            ResidualInit.niter(initLoraWeights); // PEFT's message for a malformed name
        }
        if (useDora && bias.equals("lora_only")) {
            throw new IllegalArgumentException("bias lora_only gives lora_B a bias, which DoRA does not take (PEFT: \"The "
                    + "argument lora_bias=True is not supported for DoRA, please pass use_dora=False\")");
        }
        if (useDora && ResidualInit.mutatesBase(initLoraWeights)) {
            throw new IllegalArgumentException("init_lora_weights " + initLoraWeights + " with use_dora: such an adapter is saved "
                    + "converted for the original base, and PEFT's conversion (path_initial_model_for_weight_conversion) "
                    + "keeps lora_A and lora_B only, dropping the magnitude vector");
        }
        if (ResidualInit.mutatesBase(initLoraWeights)) {
            if (bias.equals("lora_only")) {
                throw new IllegalArgumentException("The argument lora_bias=True is only supported with init_lora_weights=True or "
                        + "False, got init_lora_weights=" + initLoraWeights + " instead.");
            }
            if (useRslora && (!rankPattern.isEmpty() || !alphaPattern.isEmpty())) {
                throw new IllegalArgumentException("init_lora_weights " + initLoraWeights + " with use_rslora and rank_pattern/"
                        + "alpha_pattern: the adapter could not be saved for the original base (PEFT: \"Passing "
                        + "`path_initial_model_for_weight_conversion` to `save_pretrained` is not supported when using "
                        + "`rank_pattern` or `alpha_pattern` at the same time as `use_rslora=True`.\")");
            }
        }
        targetModules = List.copyOf(targetModules);
        layersToTransform = List.copyOf(layersToTransform);
        rankPattern = Collections.unmodifiableMap(new LinkedHashMap<>(rankPattern)); // PEFT tries keys in order
        alphaPattern = Collections.unmodifiableMap(new LinkedHashMap<>(alphaPattern));
        modulesToSave = List.copyOf(modulesToSave);
        if (targetRegex != null) {
            Regexes.compile("the target_modules regex", targetRegex, 0);
        } else {
            if (targetModules.isEmpty()) {
                throw new IllegalArgumentException("target_modules is empty");
            }
            for (String t : targetModules) {
                if (!t.equals("all-linear") && ALL_LINEAR.stream().noneMatch(m -> t.equals(m) || t.endsWith("." + m))) {
                    throw new IllegalArgumentException("target module '" + t + "' names no Llama projection (use "
                            + String.join(", ", ALL_LINEAR) + " or all-linear)");
                }
            }
        }
        for (String m : modulesToSave) {
            if (!m.equals("lm_head") && !m.equals("embed_tokens")) {
                throw new IllegalArgumentException("modules_to_save supports lm_head and embed_tokens, got '" + m + "'");
            }
        }
        for (String k : rankPattern.keySet()) {
            checkPatternKey("rank_pattern", k);
        }
        for (String k : alphaPattern.keySet()) {
            checkPatternKey("alpha_pattern", k);
        }
        for (var e : rankPattern.entrySet()) {
            if (e.getValue() < 1) {
                throw new IllegalArgumentException("rank_pattern " + e.getKey() + " must be >= 1");
            }
        }
    }

    /** A plain LoRA config (use_dora false). */
    public LoraConfig(int r, float loraAlpha, float loraDropout, List<String> targetModules, String targetRegex, String bias,
                      boolean useRslora, String initLoraWeights, List<Integer> layersToTransform, Map<String, Integer> rankPattern,
                      Map<String, Float> alphaPattern, List<String> modulesToSave) {
        this(r, loraAlpha, loraDropout, targetModules, targetRegex, bias, useRslora, initLoraWeights, layersToTransform,
                rankPattern, alphaPattern, modulesToSave, false);
    }

    /** A config with PEFT's defaults for everything but rank, alpha and targets. */
    public static LoraConfig of(int r, float alpha, List<String> targets) {
        return new LoraConfig(r, alpha, 0f, targets, null, "none", false, "true", List.of(), Map.of(), Map.of(), List.of());
    }

    /** This config with use_dora set to {@code dora}. */
    public LoraConfig withDora(boolean dora) {
        return new LoraConfig(r, loraAlpha, loraDropout, targetModules, targetRegex, bias, useRslora, initLoraWeights,
                layersToTransform, rankPattern, alphaPattern, modulesToSave, dora);
    }

    /**
     * {@code target_modules} as PEFT writes it to adapter_config.json for a model of {@code nLayers}
     * blocks. PEFT never writes {@code "all-linear"}: {@code _maybe_include_all_linear_layers} replaces
     * it by the full paths of every linear module but the output layer (7 per Llama block), and from
     * 20 names on ({@code MIN_TARGET_MODULES_FOR_OPTIMIZATION}) {@code _find_minimal_target_modules}
     * shortens them to the suffixes that tell them apart from the other modules: the 7 projection
     * names. Other lists are written as given.
     */
    public List<String> savedTargetModules(int nLayers) {
        if (!targetModules.contains("all-linear")) {
            return targetModules;
        }
        if (LinearModule.values().length * nLayers >= 20) {
            return ALL_LINEAR;
        }
        List<String> paths = new java.util.ArrayList<>();
        for (int l = 0; l < nLayers; l++) {
            for (LinearModule m : LinearModule.values()) {
                paths.add(m.path(l));
            }
        }
        return paths;
    }

    /** Whether the module at {@code path} (e.g. {@code model.layers.3.self_attn.q_proj}) gets an adapter. */
    public boolean targets(String path) {
        boolean hit;
        if (targetRegex != null) {
            hit = Pattern.compile(targetRegex).matcher(Regexes.budgeted("the target_modules regex", path)).matches();
        } else if (targetModules.contains("all-linear")) {
            hit = true;
        } else {
            hit = false;
            for (String t : targetModules) {
                hit |= path.equals(t) || path.endsWith("." + t);
            }
        }
        if (hit && !layersToTransform.isEmpty()) {
            Matcher m = LAYER_INDEX.matcher(path);
            hit = m.matches() && layersToTransform.contains(Integer.parseInt(m.group(1)));
        }
        return hit;
    }

    /** The rank of the module at {@code path}: the first matching {@code rank_pattern} key, else r. */
    public int rankFor(String path) {
        String key = patternKey(rankPattern.keySet(), path);
        return key == null ? r : rankPattern.get(key);
    }

    /** The alpha of the module at {@code path}: the first matching {@code alpha_pattern} key, else lora_alpha. */
    public float alphaFor(String path) {
        String key = patternKey(alphaPattern.keySet(), path);
        return key == null ? loraAlpha : alphaPattern.get(key);
    }

    /** LoRA scaling s of the module at {@code path}. */
    public float scalingFor(String path) {
        int rank = rankFor(path);
        float alpha = alphaFor(path);
        return useRslora ? (float) (alpha / Math.sqrt(rank)) : alpha / rank;
    }

    private static void checkPatternKey(String what, String k) {
        Regexes.compile(what + " key " + k, "(.*\\.)?(" + k + ")$", 0);
    }

    /** PEFT's get_pattern_key: the first key k with {@code re.match(rf"(.*\.)?({k})$", path)}. */
    private static String patternKey(Iterable<String> keys, String path) {
        for (String k : keys) {
            if (Pattern.compile("(.*\\.)?(" + k + ")$").matcher(Regexes.budgeted("the pattern key " + k, path)).lookingAt()) {
                return k;
            }
        }
        return null;
    }
}

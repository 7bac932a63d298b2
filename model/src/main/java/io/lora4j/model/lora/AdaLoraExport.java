package io.lora4j.model.lora;

import io.lora4j.model.format.DurableFiles;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.SafetensorsWriter;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Rewrites a saved AdaLoRA adapter as a plain PEFT LoRA adapter with the same update, so that tools
 * that only know LoRA can serve it: per module of kept rank k, {@code lora_A.weight = diag(s·E)·A}
 * (the singular values and AdaLoRA's scaling s = lora_alpha / (init_r + 1e-5) folded into A),
 * {@code lora_B.weight = B}, and a LoRA scaling of exactly 1 ({@code lora_alpha = r}; modules of
 * another rank get {@code rank_pattern} and {@code alpha_pattern} entries equal to their rank, keyed
 * by {@link #patternKey}).
 * Modules pruned to rank 0 are left out (PEFT's LoRA needs r ≥ 1): {@code target_modules} then
 * becomes a regular expression naming the kept modules. Works on the files alone: the base model
 * is not needed (tensors stay in Hugging Face row order).
 */
public final class AdaLoraExport {
    private static final String PREFIX = "base_model.model.";

    private AdaLoraExport() {
    }

    /** What was exported: module path → rank (0 for a module left out). */
    public record Result(Map<String, Integer> ranks, LoraConfig config) {
    }

    public static Result toLora(Path in, Path out) {
        PeftAdapters.Config h = PeftAdapters.readConfig(in);
        Path cfgFile = in.resolve(PeftAdapters.CONFIG);
        if (h.adaLora() == null) {
            throw new ModelFormatException(cfgFile, "peft_type is LORA: the adapter is LoRA already");
        }
        float s = h.adaLora().scaling();
        Path file = in.resolve(PeftAdapters.WEIGHTS);
        Map<String, Integer> ranks = new LinkedHashMap<>();
        SafetensorsWriter w = new SafetensorsWriter();
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            Set<String> unused = new HashSet<>(st.tensors().keySet());
            for (String key : new TreeSet<>(st.tensors().keySet())) {
                if (!key.startsWith(PREFIX) || !key.endsWith(".lora_A")) {
                    continue;
                }
                String k = key.substring(0, key.length() - ".lora_A".length());
                String path = k.substring(PREFIX.length());
                long[] as = st.fileShape(key);
                if (as.length != 2 || !st.tensors().containsKey(k + ".lora_B") || !st.tensors().containsKey(k + ".lora_E")) {
                    throw new ModelFormatException(file, path + " needs lora_A [r, in], lora_E [r, 1] and lora_B [out, r]");
                }
                int r = (int) as[0], inDim = (int) as[1];
                long[] bs = st.fileShape(k + ".lora_B");
                if (bs.length != 2) {
                    throw new ModelFormatException(file, "tensor " + k + ".lora_B has shape " + java.util.Arrays.toString(bs));
                }
                int outDim = (int) bs[0];
                float[] a = new float[r * inDim], e = new float[r], b = new float[outDim * r];
                PeftAdapters.read(st, file, key, new long[]{r, inDim}, a, unused);
                PeftAdapters.read(st, file, k + ".lora_E", new long[]{r, 1}, e, unused);
                PeftAdapters.read(st, file, k + ".lora_B", new long[]{outDim, r}, b, unused);
                ranks.put(path, r);
                if (r == 0) {
                    continue;
                }
                for (int j = 0; j < r; j++) {
                    float f = s * e[j];
                    for (int i = 0; i < inDim; i++) {
                        a[j * inDim + i] *= f;
                    }
                }
                w.add(k + ".lora_A.weight", new long[]{r, inDim}, a);
                w.add(k + ".lora_B.weight", new long[]{outDim, r}, b);
            }
            for (String whole : List.of(PREFIX + "lm_head.weight", PREFIX + "model.embed_tokens.weight")) {
                if (st.tensors().containsKey(whole)) {
                    long[] shape = st.fileShape(whole);
                    float[] v = new float[Math.toIntExact(st.tensor(whole).elementCount())];
                    PeftAdapters.read(st, file, whole, shape, v, unused);
                    w.add(whole, shape, v);
                }
            }
            if (!unused.isEmpty()) {
                throw new ModelFormatException(file, "tensor " + new TreeSet<>(unused).first() + " is not part of an AdaLoRA adapter");
            }
        }
        if (ranks.isEmpty()) {
            throw new ModelFormatException(file, "no AdaLoRA module (…lora_A, …lora_E, …lora_B) in the file");
        }
        LoraConfig cfg = loraConfig(h.lora(), ranks, file);
        try {
            Files.createDirectories(out);
            w.write(out.resolve(PeftAdapters.WEIGHTS));
            DurableFiles.write(out.resolve(PeftAdapters.CONFIG), PeftAdapters.configJson(cfg, layers(ranks.keySet()), null, null, h.baseModel()));
        } catch (IOException ex) {
            throw new UncheckedIOException("cannot write adapter to " + out + ": " + ex.getMessage(), ex);
        }
        return new Result(ranks, cfg);
    }

    /**
     * The rank_pattern / alpha_pattern key of module {@code path}: the escaped path without its leading
     * {@code model.} ({@code layers\.0\.self_attn\.q_proj}). PEFT matches keys against module names
     * such as {@code model.layers.0.self_attn.q_proj} with {@code (.*\.)?(KEY)$} since 0.15 but with
     * {@code .*\.KEY$} before (0.10 to 0.14), which needs a dot in front of the key, so the full path
     * would match nothing there; this key selects exactly that module under both.
     */
    static String patternKey(String path) {
        String rel = path.startsWith("model.") ? path.substring("model.".length()) : path;
        return rel.replace(".", "\\.");
    }

    /**
     * The LoRA config: r the most common kept rank (the larger on a tie), lora_alpha = r, and for every
     * module of another rank k a rank_pattern and alpha_pattern entry k ({@link #patternKey}), so every scaling is 1.
     */
    /** Blocks of the model the adapter was made for, as far as its module paths tell: the highest layer index + 1. */
    private static int layers(java.util.Set<String> paths) {
        int n = 0;
        for (String p : paths) {
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\.layers\\.(\\d{1,6})\\.").matcher(p);
            if (m.find()) {
                n = Math.max(n, Integer.parseInt(m.group(1)) + 1);
            }
        }
        return n;
    }

    static LoraConfig loraConfig(LoraConfig ada, Map<String, Integer> ranks, Path file) {
        Map<Integer, Integer> count = new TreeMap<>();
        ranks.values().stream().filter(k -> k > 0).forEach(k -> count.merge(k, 1, Integer::sum));
        if (count.isEmpty()) {
            throw new ModelFormatException(file, "every module was pruned to rank 0: there is nothing to export");
        }
        int r = 0, best = 0;
        for (var e : count.entrySet()) {
            if (e.getValue() >= best) {
                best = e.getValue();
                r = e.getKey();
            }
        }
        Map<String, Integer> rp = new LinkedHashMap<>();
        Map<String, Float> ap = new LinkedHashMap<>();
        List<String> kept = new ArrayList<>();
        for (var e : ranks.entrySet()) {
            if (e.getValue() == 0) {
                continue;
            }
            kept.add(e.getKey().replace(".", "\\."));
            if (e.getValue() != r) {
                String key = patternKey(e.getKey());
                rp.put(key, e.getValue());
                ap.put(key, (float) e.getValue());
            }
        }
        boolean pruned = kept.size() < ranks.size();
        return new LoraConfig(r, r, ada.loraDropout(), pruned ? List.of() : ada.targetModules(),
                pruned ? String.join("|", kept) : ada.targetRegex(), "none", false, "true",
                pruned ? List.of() : ada.layersToTransform(), rp, ap, ada.modulesToSave());
    }
}

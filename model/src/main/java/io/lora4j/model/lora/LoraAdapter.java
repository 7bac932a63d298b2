package io.lora4j.model.lora;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Weight;
import io.lora4j.model.Llama;
import io.lora4j.model.LlamaConfig;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.SplittableRandom;

/**
 * One named LoRA adapter injected into a {@link Llama}: a {@link LoraLayer} for every targeted
 * projection, and full trainable copies of {@code modules_to_save} ({@code lm_head},
 * {@code embed_tokens}). The base model is never modified: the copies are new arrays.
 */
public final class LoraAdapter {
    private final String name;
    private final LoraConfig config;
    private final LoraLayer[][] layers; // [layer][module ordinal], null where not targeted
    private final List<LoraLayer> all;
    /** (V, C) trainable output projection, or null. */
    public final float[] lmHead;
    public final float[] dLmHead;
    /** (V, C) trainable token embedding, or null. */
    public final float[] embedTokens;
    public final float[] dEmbedTokens;

    public LoraAdapter(String name, LoraConfig config, Llama base, long seed) {
        this.name = name;
        this.config = config;
        LlamaConfig c = base.config();
        layers = new LoraLayer[c.nLayers()][LinearModule.values().length];
        List<LoraLayer> list = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int l = 0; l < c.nLayers(); l++) {
            for (LinearModule m : LinearModule.values()) {
                String path = m.path(l);
                if (!config.targets(path)) {
                    continue;
                }
                LoraLayer ll = new LoraLayer(m, l, config.rankFor(path), m.inDim(c), m.outDim(c),
                        config.scalingFor(path), config.bias().equals("lora_only"));
                ll.initialise(config.initLoraWeights(), rnd);
                layers[l][m.ordinal()] = ll;
                list.add(ll);
            }
        }
        if (list.isEmpty() && config.modulesToSave().isEmpty()) {
            throw new IllegalArgumentException("target_modules " + (config.targetRegex() != null ? config.targetRegex()
                    : config.targetModules()) + " matches no module of the model");
        }
        all = Collections.unmodifiableList(list);
        boolean head = config.modulesToSave().contains("lm_head");
        boolean embed = config.modulesToSave().contains("embed_tokens");
        lmHead = head ? copy(base.output(), c) : null;
        dLmHead = head ? new float[lmHead.length] : null;
        embedTokens = embed ? copy(base.tokenEmbedding(), c) : null;
        dEmbedTokens = embed ? new float[embedTokens.length] : null;
    }

    private static float[] copy(Weight w, LlamaConfig c) {
        float[] out = new float[Math.multiplyExact(w.rows(), w.cols())];
        for (int r = 0; r < w.rows(); r++) {
            Dequant.row(w, r, out, r * w.cols());
        }
        return out;
    }

    public String name() {
        return name;
    }

    public LoraConfig config() {
        return config;
    }

    /** The adapter of projection {@code m} in block {@code l}, or null. */
    public LoraLayer get(int l, LinearModule m) {
        return layers[l][m.ordinal()];
    }

    public List<LoraLayer> layers() {
        return all;
    }

    public long trainableParameters() {
        long n = 0;
        for (LoraLayer l : all) {
            n += l.parameterCount();
        }
        n += lmHead == null ? 0 : lmHead.length;
        n += embedTokens == null ? 0 : embedTokens.length;
        return n;
    }

    /** PEFT's print_trainable_parameters line. */
    public String trainableParametersLine(long baseParameters) {
        long trainable = trainableParameters();
        long total = baseParameters + trainable;
        return String.format(java.util.Locale.ROOT, "trainable params: %,d || all params: %,d || trainable%%: %.4f", trainable, total,
                100.0 * trainable / total);
    }
}

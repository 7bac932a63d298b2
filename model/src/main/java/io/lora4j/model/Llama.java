package io.lora4j.model;

import io.lora4j.model.arch.BaseModel;
import io.lora4j.model.arch.Layer;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.AdapterSet;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.Merge;

import java.lang.foreign.MemorySegment;

import java.util.Arrays;

/**
 * A Llama 2/3 model: orchestration only. Weight matrices stay in the memory-mapped file
 * ({@link Weight} views); only the tiny norm vectors and RoPE frequencies are decoded to float
 * arrays. The math runs in a {@link Backend}, one plan per layer.
 * Glossary: C = dim, V vocab, T tokens in a chunk, L layers.
 */
public final class Llama implements BaseModel {

    private final WeightSource source;
    private final LlamaConfig config;
    private final Quantization quant;
    private Weight tokenEmbd;
    private final Layer[] layers;
    private final Layer[] baseLayers;
    private final java.util.List<String> merged = new java.util.ArrayList<>();
    private final float[] outputNorm;
    private Weight output;
    private Weight baseEmbd;
    private Weight baseOutputWeight;
    private final float[] ropeFreqs;
    private final AdapterSet adapters;
    private final String name;

    public Llama(WeightSource source) {
        this(source, Quantization.NONE);
    }

    /** The model over {@code source}, quantized on load as {@code quant} says; named by its path. */
    public Llama(WeightSource source, Quantization quant) {
        this(source, quant, source.path().toString());
    }

    /**
     * The model over {@code source}, its seven linear projections per block quantized on load with
     * {@code quant} (see {@link Quantization}: embeddings, output layer and norms stay as stored).
     * {@code name} is the model as the user named it (a path as typed, not resolved), which saved
     * adapters record as {@code base_model_name_or_path}.
     */
    public Llama(WeightSource source, Quantization quant, String name) {
        this.source = source;
        this.name = name;
        this.config = source.config();
        this.quant = quant;
        this.adapters = new AdapterSet(source.config());
        LlamaConfig c = config;
        int C = c.dim();
        tokenEmbd = matrix("token_embd.weight", c.vocabSize(), C);
        layers = new Layer[c.nLayers()];
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "blk." + l + ".";
            layers[l] = new Layer(
                    vector(p + "attn_norm.weight", C),
                    linear(p + "attn_q.weight", c.qDim(), C),
                    linear(p + "attn_k.weight", c.kvDim(), C),
                    linear(p + "attn_v.weight", c.kvDim(), C),
                    linear(p + "attn_output.weight", C, c.qDim()),
                    vector(p + "ffn_norm.weight", C),
                    linear(p + "ffn_gate.weight", c.hiddenDim(), C),
                    linear(p + "ffn_up.weight", c.hiddenDim(), C),
                    linear(p + "ffn_down.weight", C, c.hiddenDim()));
        }
        baseLayers = layers.clone();
        outputNorm = vector("output_norm.weight", C);
        output = source.tensors().containsKey("output.weight") ? matrix("output.weight", c.vocabSize(), C) : tokenEmbd;
        baseEmbd = tokenEmbd;
        baseOutputWeight = output;
        ropeFreqs = Rope.frequencies(c.headSize(), c.ropeTheta());
        if (c.ropeScaling() != null) {
            LlamaConfig.RopeScaling r = c.ropeScaling();
            Rope.applyLlama3Scaling(ropeFreqs, r.factor(), r.lowFreqFactor(), r.highFreqFactor(), r.originalContextLength());
        }
        if (source.tensors().containsKey("rope_freqs.weight")) {
            // llama.cpp's Llama-3 GGUFs carry the scaling as per-pair divisors of the frequency.
            float[] factors = vector("rope_freqs.weight", c.headSize() / 2);
            for (int i = 0; i < ropeFreqs.length; i++) {
                ropeFreqs[i] /= factors[i];
            }
        }
    }

    /** A block's projection, quantized on load when asked (the shape is checked first). */
    private Weight linear(String name, int rows, int cols) {
        return quant.apply(matrix(name, rows, cols), source.path());
    }

    private Weight matrix(String name, int rows, int cols) {
        TensorInfo t = source.tensor(name);
        Weight w = t.asWeight();
        if (w.rows() != rows || w.cols() != cols) {
            throw new ModelFormatException(source.path(), "tensor " + name + " has shape " + Arrays.toString(t.shape())
                    + ", expected [" + cols + ", " + rows + "] (ggml order)");
        }
        return w;
    }

    private float[] vector(String name, int n) {
        TensorInfo t = source.tensor(name);
        if (t.elementCount() != n) {
            throw new ModelFormatException(source.path(), "tensor " + name + " has shape " + Arrays.toString(t.shape())
                    + ", expected [" + n + "]");
        }
        float[] v = new float[n];
        Dequant.row(new Weight(name, t.type(), t.data(), 1, n), 0, v, 0);
        return v;
    }

    @Override
    public LlamaConfig config() {
        return config;
    }

    /** How the projections were quantized on load ({@link Quantization#NONE}: as stored). */
    public Quantization quantization() {
        return quant;
    }

    /**
     * The weight the model currently uses for the GGUF-named tensor {@code name} (the embedding,
     * the base output layer or a block projection, merged or quantized as it now is), or null for
     * a tensor that is not one of those matrices (norms, rope factors).
     */
    public Weight weight(String name) {
        if (name.equals("token_embd.weight")) {
            return tokenEmbd;
        }
        if (name.equals("output.weight")) {
            return output;
        }
        LinearModule mod = projection(name);
        if (mod == null) {
            return null;
        }
        String l = name.split("\\.")[1];
        if (!l.matches("\\d{1,9}") || Integer.parseInt(l) >= layers.length) {
            return null;
        }
        return mod.weight(layers[Integer.parseInt(l)]);
    }

    /** The projection a GGUF tensor name {@code blk.N.<proj>.weight} denotes, or null. */
    public static LinearModule projection(String name) {
        String[] p = name.split("\\.");
        if (p.length != 4 || !p[0].equals("blk") || !p[3].equals("weight")) {
            return null;
        }
        return switch (p[2]) {
            case "attn_q" -> LinearModule.Q_PROJ;
            case "attn_k" -> LinearModule.K_PROJ;
            case "attn_v" -> LinearModule.V_PROJ;
            case "attn_output" -> LinearModule.O_PROJ;
            case "ffn_gate" -> LinearModule.GATE_PROJ;
            case "ffn_up" -> LinearModule.UP_PROJ;
            case "ffn_down" -> LinearModule.DOWN_PROJ;
            default -> null;
        };
    }

    /** Whether any block projection is quantized (on load, or stored so: Q8_0, Q4_0, Q4_K, …). */
    public boolean quantizedBase() {
        for (Layer w : layers) {
            for (LinearModule mod : LinearModule.values()) {
                if (mod.weight(w).type().isQuantized()) {
                    return true;
                }
            }
        }
        return false;
    }

    /**
     * PEFT's {@code prepare_model_for_kbit_training} for this engine: the base stays frozen (it
     * always is; only adapter tensors get gradients), gradients flow to the inputs of every layer (the
     * backward pass always computes them), and every parameter that is neither quantized nor float32
     * is cast to float32 — here the token embedding and the output layer when they are F16 or BF16
     * (the norms are decoded to float32 on load already). Returns what was cast, e.g.
     * {@code "token_embd.weight F16 → F32"}. Decoding F16/BF16 is exact, so the cast changes memory,
     * not results.
     */
    public java.util.List<String> prepareForKbitTraining() {
        java.util.List<String> cast = new java.util.ArrayList<>();
        boolean tied = output == tokenEmbd;
        Weight e = toF32(tokenEmbd, cast);
        Weight o = tied ? e : toF32(output, cast);
        tokenEmbd = baseEmbd = e;
        output = baseOutputWeight = o;
        return cast;
    }

    private static Weight toF32(Weight w, java.util.List<String> cast) {
        if (w.type() != GgmlType.F16 && w.type() != GgmlType.BF16) {
            return w;
        }
        cast.add(w.name() + " " + w.type() + " → F32");
        return new Weight(w.name(), GgmlType.F32, MemorySegment.ofArray(Dequant.matrix(w)), w.rows(), w.cols());
    }

    public WeightSource source() {
        return source;
    }

    /** The model as the user named it: the path as given (not made absolute), or the name given at construction. */
    @Override
    public String baseModelName() {
        return name;
    }

    public Layer layer(int l) {
        return layers[l];
    }

    @Override
    public Weight projection(int layer, LinearModule m) {
        return m.weight(baseLayers[layer]);
    }

    /** Refused while adapters are merged (unmerge first): the merge was made from the weight being replaced. */
    @Override
    public void replaceProjection(int layer, LinearModule m, Weight w) {
        if (!merged.isEmpty()) {
            throw new IllegalStateException("cannot replace the base weight of " + m.path(layer) + " while adapters "
                    + merged + " are merged into it; unmerge first");
        }
        Weight old = m.weight(baseLayers[layer]);
        if (w.rows() != old.rows() || w.cols() != old.cols()) {
            throw new IllegalArgumentException(m.path(layer) + ": a " + w.rows() + "×" + w.cols() + " weight cannot replace a "
                    + old.rows() + "×" + old.cols() + " one");
        }
        baseLayers[layer] = baseLayers[layer].with(m, w);
        layers[layer] = baseLayers[layer];
    }

    @Override
    public Weight tokenEmbedding() {
        return tokenEmbd;
    }

    public float[] outputNorm() {
        return outputNorm;
    }

    /** The output projection in use: an active adapter's trained lm_head when it has one, else the base. */
    @Override
    public Weight output() {
        Weight head = adapters.head();
        return head != null ? head : output;
    }

    /** The base model's output projection (the token embedding when tied). */
    public Weight baseOutput() {
        return output;
    }

    /** The adapters loaded on this model and which are active. */
    public AdapterSet adapters() {
        return adapters;
    }

    /** {@link #merge(LoraAdapter, Merge.Mode)} with {@link Merge.Mode#FLOAT_ONLY}. */
    public void merge(LoraAdapter a) {
        merge(a, Merge.Mode.FLOAT_ONLY);
    }

    /**
     * Merges {@code a} into the weights ({@link Merge}): every adapted projection becomes its merged
     * matrix, held in memory; the memory-mapped or load-time quantized original is kept for
     * {@link #unmerge}. Trained {@code lm_head} / {@code embed_tokens} replace the base ones. Nothing
     * changes when a branch is refused. After merging, generation runs at the base model's speed.
     */
    public void merge(LoraAdapter a, Merge.Mode mode) {
        a.requireLora("merging");
        LlamaConfig c = config;
        Layer[] next = layers.clone();
        for (LoraLayer ll : a.layers()) {
            Merge.check(a.name(), ll, ll.module.weight(next[ll.layer]), mode);
        }
        for (LoraLayer ll : a.layers()) {
            Layer w = next[ll.layer];
            Weight merged = Merge.merged(a.name(), ll, ll.module.weight(w), projection(ll.layer, ll.module), mode);
            next[ll.layer] = w.with(ll.module, merged);
        }
        System.arraycopy(next, 0, layers, 0, layers.length);
        if (a.lmHead != null) {
            output = new Weight("lm_head+" + a.name(), GgmlType.F32, MemorySegment.ofArray(a.lmHead.toArray()), c.vocabSize(), c.dim());
        }
        if (a.embedTokens != null) {
            tokenEmbd = new Weight("embed_tokens+" + a.name(), GgmlType.F32, MemorySegment.ofArray(a.embedTokens.toArray()), c.vocabSize(), c.dim());
        }
        merged.add(a.name());
    }

    /** Restores the memory-mapped base weights exactly and forgets every merge. */
    public void unmerge() {
        System.arraycopy(baseLayers, 0, layers, 0, layers.length);
        tokenEmbd = baseEmbd;
        output = baseOutputWeight;
        merged.clear();
    }

    /** Names of the adapters merged into the weights, in merge order. */
    public java.util.List<String> mergedAdapters() {
        return java.util.List.copyOf(merged);
    }


    public float[] ropeFreqs() {
        return ropeFreqs;
    }

    /** Parameter count (elements of every tensor; a tied output counted once). */
    public long parameterCount() {
        long n = 0;
        for (TensorInfo t : source.tensors().values()) {
            n += t.elementCount();
        }
        return n;
    }

    public State newState(int maxT, int contextLength) {
        return new State(config, maxT, Math.min(contextLength, config.contextLength()), 1);
    }

    /**
     * Runs {@code n} tokens at positions {@code pos..pos+n-1} through the model in chunks of
     * {@link State#maxT} (batched prefill: each chunk is matrix–matrix products) and leaves the
     * logits of the last token in {@code s.logits[0..V)}. Returns them.
     */
    public float[] forward(Backend b, State s, int[] tokens, int off, int n, int pos) {
        if (n < 1) {
            throw new IllegalArgumentException("no tokens to process");
        }
        if (pos + n > s.contextLength) {
            throw new IllegalArgumentException("context full: " + (pos + n) + " positions > context length " + s.contextLength);
        }
        int C = config.dim();
        int done = 0;
        while (done < n) {
            int T = Math.min(s.maxT, n - done);
            for (int t = 0; t < T; t++) {
                int tok = tokens[off + done + t];
                if (tok < 0 || tok >= config.vocabSize()) {
                    throw new IllegalArgumentException("token id " + tok + " outside the vocabulary [0, " + config.vocabSize() + ")");
                }
                if (adapters.embed() != null) {
                    System.arraycopy(adapters.embed().values(), adapters.embed().off() + tok * C, s.x, t * C, C);
                } else {
                    Dequant.row(tokenEmbd, tok, s.x, t * C);
                }
            }
            b.forward(this, s, T, pos + done, done + T == n ? 1 : 0);
            done += T;
        }
        return s.logits;
    }
}

package io.lora4j.model;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.lora.LoraAdapter;

import java.lang.foreign.MemorySegment;

import java.util.Arrays;

/**
 * A Llama 2/3 model: orchestration only. Weight matrices stay in the memory-mapped file
 * ({@link Weight} views); only the tiny norm vectors and RoPE frequencies are decoded to float
 * arrays. The math runs in a {@link Backend}, one plan per layer.
 * Glossary: C = dim, V vocab, T tokens in a chunk, L layers.
 */
public final class Llama {

    /** The weights of one transformer block. */
    public record Layer(float[] attnNorm, Weight wq, Weight wk, Weight wv, Weight wo,
                        float[] ffnNorm, Weight gate, Weight up, Weight down) {
        /** Q, K and V: one input, multiplied in one dispatch. */
        public Weight[] qkv() {
            return new Weight[]{wq, wk, wv};
        }

        /** Gate and up: one input, multiplied in one dispatch. */
        public Weight[] gateUp() {
            return new Weight[]{gate, up};
        }
    }

    private final WeightSource source;
    private final LlamaConfig config;
    private Weight tokenEmbd;
    private final Layer[] layers;
    private final Layer[] baseLayers;
    private final java.util.List<String> merged = new java.util.ArrayList<>();
    private final float[] outputNorm;
    private Weight output;
    private Weight baseEmbd;
    private Weight baseOutputWeight;
    private final float[] ropeFreqs;
    private final java.util.Map<String, LoraAdapter> adapters = new java.util.LinkedHashMap<>();
    private final java.util.List<Active> active = new java.util.ArrayList<>();
    private Weight adapterHead;
    private float[] adapterEmbed;

    /** An adapter applied in the forward pass with a weight ({@code y += scale·s·B A x}). */
    public record Active(LoraAdapter adapter, float scale) {
    }

    public Llama(WeightSource source) {
        this.source = source;
        this.config = source.config();
        LlamaConfig c = config;
        int C = c.dim();
        tokenEmbd = matrix("token_embd.weight", c.vocabSize(), C);
        layers = new Layer[c.nLayers()];
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "blk." + l + ".";
            layers[l] = new Layer(
                    vector(p + "attn_norm.weight", C),
                    matrix(p + "attn_q.weight", c.qDim(), C),
                    matrix(p + "attn_k.weight", c.kvDim(), C),
                    matrix(p + "attn_v.weight", c.kvDim(), C),
                    matrix(p + "attn_output.weight", C, c.qDim()),
                    vector(p + "ffn_norm.weight", C),
                    matrix(p + "ffn_gate.weight", c.hiddenDim(), C),
                    matrix(p + "ffn_up.weight", c.hiddenDim(), C),
                    matrix(p + "ffn_down.weight", C, c.hiddenDim()));
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

    public LlamaConfig config() {
        return config;
    }

    public WeightSource source() {
        return source;
    }

    public Layer layer(int l) {
        return layers[l];
    }

    public Weight tokenEmbedding() {
        return tokenEmbd;
    }

    public float[] outputNorm() {
        return outputNorm;
    }

    /** The output projection in use: an active adapter's trained lm_head when it has one, else the base. */
    public Weight output() {
        return adapterHead != null ? adapterHead : output;
    }

    /** The base model's output projection (the token embedding when tied). */
    public Weight baseOutput() {
        return output;
    }

    /**
     * Registers {@code a} under its name (replacing one of the same name) and makes it the only
     * active adapter; {@code null} disables every adapter (the base model exactly). The base
     * weights are never touched.
     */
    public void setAdapter(LoraAdapter a) {
        if (a == null) {
            disableAdapters();
            return;
        }
        adapters.put(a.name(), a);
        setActive(java.util.Map.of(a.name(), 1f));
    }

    /** Registers a named adapter without activating it. */
    public void addAdapter(LoraAdapter a) {
        if (adapters.containsKey(a.name())) {
            throw new IllegalArgumentException("an adapter named '" + a.name() + "' is already loaded");
        }
        adapters.put(a.name(), a);
    }

    /** The loaded adapters by name, in load order. */
    public java.util.Map<String, LoraAdapter> adapters() {
        return java.util.Collections.unmodifiableMap(adapters);
    }

    /**
     * Activates the named adapters with per-adapter scales (several at once add up), in the given
     * order. {@code lm_head} / {@code embed_tokens} copies come from the first active adapter that
     * has them.
     */
    public void setActive(java.util.Map<String, Float> scales) {
        java.util.List<Active> next = new java.util.ArrayList<>();
        for (var e : scales.entrySet()) {
            LoraAdapter a = adapters.get(e.getKey());
            if (a == null) {
                throw new IllegalArgumentException("no adapter named '" + e.getKey() + "' (loaded: " + adapters.keySet() + ")");
            }
            next.add(new Active(a, e.getValue()));
        }
        active.clear();
        active.addAll(next);
        adapterHead = null;
        adapterEmbed = null;
        for (Active x : active) {
            if (adapterHead == null && x.adapter().lmHead != null) {
                adapterHead = new Weight("lm_head", GgmlType.F32, MemorySegment.ofArray(x.adapter().lmHead), config.vocabSize(), config.dim());
            }
            if (adapterEmbed == null && x.adapter().embedTokens != null) {
                adapterEmbed = x.adapter().embedTokens;
            }
        }
    }

    /** No adapter is applied: the forward pass is the base model's exactly. */
    public void disableAdapters() {
        setActive(java.util.Map.of());
    }

    /** Unloads the named adapter (deactivating it). */
    public void deleteAdapter(String name) {
        if (adapters.remove(name) == null) {
            throw new IllegalArgumentException("no adapter named '" + name + "'");
        }
        java.util.Map<String, Float> keep = new java.util.LinkedHashMap<>();
        for (Active x : active) {
            if (!x.adapter().name().equals(name)) {
                keep.put(x.adapter().name(), x.scale());
            }
        }
        setActive(keep);
    }

    /** The adapters applied in the forward pass, with their scales. */
    public java.util.List<Active> activeAdapters() {
        return java.util.List.copyOf(active);
    }

    /**
     * Merges {@code a} into the weights: every adapted projection becomes an F32 matrix
     * {@code W + s·B·A} (AdaLoRA: {@code W + s·B·(A ⊙ E)}) held in memory (the memory-mapped original is untouched and kept for
     * {@link #unmerge}); trained {@code lm_head} / {@code embed_tokens} replace the base ones.
     * Refuses non-finite results and adapters with a lora_B bias (Llama projections have no bias to
     * merge it into). After merging, generation runs at the base model's speed.
     */
    public void merge(LoraAdapter a) {
        LlamaConfig c = config;
        Layer[] next = layers.clone();
        for (io.lora4j.model.lora.LoraLayer ll : a.layers()) {
            if (ll.bias != null) {
                throw new IllegalArgumentException("adapter " + a.name() + ": " + ll.path()
                        + " has a lora_B bias, which cannot be merged into a Llama projection (no bias)");
            }
            Layer w = next[ll.layer];
            Weight base = ll.module.weight(w);
            float[] m = new float[Math.multiplyExact(base.rows(), base.cols())];
            for (int r = 0; r < base.rows(); r++) {
                Dequant.row(base, r, m, r * base.cols());
            }
            for (int o = 0; o < ll.out; o++) {
                for (int j = 0; j < ll.r; j++) {
                    float sb = ll.scaling * ll.b[o * ll.r + j] * ll.e[j];
                    if (sb == 0f) {
                        continue;
                    }
                    for (int i = 0; i < ll.in; i++) {
                        m[o * ll.in + i] += sb * ll.a[j * ll.in + i];
                    }
                }
            }
            for (int i = 0; i < m.length; i++) {
                if (!Float.isFinite(m[i])) {
                    throw new IllegalArgumentException("merging adapter " + a.name() + " into " + ll.path()
                            + " gives a non-finite weight at " + i + "; nothing was merged");
                }
            }
            Weight merged = new Weight(base.name() + "+" + a.name(), GgmlType.F32, MemorySegment.ofArray(m), base.rows(), base.cols());
            next[ll.layer] = with(w, ll.module, merged);
        }
        System.arraycopy(next, 0, layers, 0, layers.length);
        if (a.lmHead != null) {
            output = new Weight("lm_head+" + a.name(), GgmlType.F32, MemorySegment.ofArray(a.lmHead.clone()), c.vocabSize(), c.dim());
        }
        if (a.embedTokens != null) {
            tokenEmbd = new Weight("embed_tokens+" + a.name(), GgmlType.F32, MemorySegment.ofArray(a.embedTokens.clone()), c.vocabSize(), c.dim());
        }
        merged.add(a.name());
    }

    private static Layer with(Layer w, io.lora4j.model.lora.LinearModule m, Weight x) {
        return switch (m) {
            case Q_PROJ -> new Layer(w.attnNorm(), x, w.wk(), w.wv(), w.wo(), w.ffnNorm(), w.gate(), w.up(), w.down());
            case K_PROJ -> new Layer(w.attnNorm(), w.wq(), x, w.wv(), w.wo(), w.ffnNorm(), w.gate(), w.up(), w.down());
            case V_PROJ -> new Layer(w.attnNorm(), w.wq(), w.wk(), x, w.wo(), w.ffnNorm(), w.gate(), w.up(), w.down());
            case O_PROJ -> new Layer(w.attnNorm(), w.wq(), w.wk(), w.wv(), x, w.ffnNorm(), w.gate(), w.up(), w.down());
            case GATE_PROJ -> new Layer(w.attnNorm(), w.wq(), w.wk(), w.wv(), w.wo(), w.ffnNorm(), x, w.up(), w.down());
            case UP_PROJ -> new Layer(w.attnNorm(), w.wq(), w.wk(), w.wv(), w.wo(), w.ffnNorm(), w.gate(), x, w.down());
            case DOWN_PROJ -> new Layer(w.attnNorm(), w.wq(), w.wk(), w.wv(), w.wo(), w.ffnNorm(), w.gate(), w.up(), x);
        };
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
                if (adapterEmbed != null) {
                    System.arraycopy(adapterEmbed, tok * C, s.x, t * C, C);
                } else {
                    Dequant.row(tokenEmbd, tok, s.x, t * C);
                }
            }
            b.forward(this, s, T, pos + done, done + T == n);
            done += T;
        }
        return s.logits;
    }
}

package io.lora4j.model;

import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;

import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;

/** A random-weight Llama held in heap memory (F32), for gradient checks and invariants. */
public final class TinyModel implements WeightSource {
    private final LlamaConfig config;
    private final Map<String, TensorInfo> tensors = new LinkedHashMap<>();

    public TinyModel(LlamaConfig c, long seed, boolean tied) {
        this.config = c;
        SplittableRandom r = new SplittableRandom(seed);
        add("token_embd.weight", r, 0.5f, c.dim(), c.vocabSize());
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "blk." + l + ".";
            norm(p + "attn_norm.weight", r, c.dim());
            add(p + "attn_q.weight", r, 0.4f, c.dim(), c.qDim());
            add(p + "attn_k.weight", r, 0.4f, c.dim(), c.kvDim());
            add(p + "attn_v.weight", r, 0.4f, c.dim(), c.kvDim());
            add(p + "attn_output.weight", r, 0.4f, c.qDim(), c.dim());
            norm(p + "ffn_norm.weight", r, c.dim());
            add(p + "ffn_gate.weight", r, 0.4f, c.dim(), c.hiddenDim());
            add(p + "ffn_up.weight", r, 0.4f, c.dim(), c.hiddenDim());
            add(p + "ffn_down.weight", r, 0.4f, c.hiddenDim(), c.dim());
        }
        norm("output_norm.weight", r, c.dim());
        if (!tied) {
            add("output.weight", r, 0.5f, c.dim(), c.vocabSize());
        }
    }

    /** A model of these tensors (e.g. another model's, some of them converted). */
    public TinyModel(LlamaConfig c, Map<String, TensorInfo> tensors) {
        this.config = c;
        this.tensors.putAll(tensors);
    }

    public static LlamaConfig config(LlamaConfig.RopeStyle style) {
        return new LlamaConfig(16, 24, 2, 4, 2, 4, 11, 64, 1e-5f, 10000f, null, style, false);
    }

    private void add(String name, SplittableRandom r, float scale, int cols, int rows) {
        float[] a = new float[cols * rows];
        for (int i = 0; i < a.length; i++) {
            a[i] = (float) ((r.nextDouble() * 2 - 1) * scale);
        }
        tensors.put(name, new TensorInfo(name, GgmlType.F32, new long[]{cols, rows}, MemorySegment.ofArray(a)));
    }

    private void norm(String name, SplittableRandom r, int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) (0.8 + 0.4 * r.nextDouble());
        }
        tensors.put(name, new TensorInfo(name, GgmlType.F32, new long[]{n}, MemorySegment.ofArray(a)));
    }

    @Override
    public Path path() {
        return Path.of("tiny-model");
    }

    @Override
    public String format() {
        return "memory";
    }

    @Override
    public Map<String, Object> metadata() {
        return Map.of();
    }

    @Override
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    @Override
    public LlamaConfig config() {
        return config;
    }

    @Override
    public void close() {
    }
}

package io.lora4j.model;

import io.lora4j.model.arch.LlamaConfig;

/**
 * Run state of one sequence: activation buffers for a chunk of up to {@code maxT} tokens, sized
 * once, and the KV cache. Every buffer is named so a device backend can mirror it.
 * Glossary: T tokens in the chunk, C = dim, Q = nHeads·HS, KV = nKvHeads·HS, H = hiddenDim, V vocab.
 */
public final class State {
    public final int maxT;
    public final int contextLength;
    /** (T, C) residual stream. */
    public final float[] x;
    /** (T, C) normalised input of the current sub-block. */
    public final float[] xb;
    /** (T) reciprocal RMS of the current normalisation. */
    public final float[] rstd;
    /** (T, Q) queries. */
    public final float[] q;
    /** (T, KV) keys and values of the chunk before they enter the cache. */
    public final float[] k;
    public final float[] v;
    /** (T, Q) attention output before the output projection. */
    public final float[] attOut;
    /** (T, C) output of a projection back to model width. */
    public final float[] proj;
    /** (T, H) gate and up projections; the gate becomes silu(gate)·up in place. */
    public final float[] hb;
    public final float[] hb2;
    /** (maxLogitRows, V) logits. */
    public final float[] logits;
    /** [layer] (contextLength, KV) key and value caches. */
    public final float[][] kCache;
    public final float[][] vCache;

    public State(LlamaConfig c, int maxT, int contextLength, int maxLogitRows) {
        if (maxT < 1 || contextLength < 1) {
            throw new IllegalArgumentException("batch size and context length must be positive");
        }
        this.maxT = maxT;
        this.contextLength = contextLength;
        x = new float[maxT * c.dim()];
        xb = new float[maxT * c.dim()];
        rstd = new float[maxT];
        q = new float[maxT * c.qDim()];
        k = new float[maxT * c.kvDim()];
        v = new float[maxT * c.kvDim()];
        attOut = new float[maxT * c.qDim()];
        proj = new float[maxT * c.dim()];
        hb = new float[maxT * c.hiddenDim()];
        hb2 = new float[maxT * c.hiddenDim()];
        logits = new float[Math.multiplyExact(maxLogitRows, c.vocabSize())];
        kCache = new float[c.nLayers()][Math.multiplyExact(contextLength, c.kvDim())];
        vCache = new float[c.nLayers()][Math.multiplyExact(contextLength, c.kvDim())];
    }

    private float[] loraScratch = new float[0];

    /** (T, r) scratch for an adapter's A x, grown on demand. */
    public float[] loraScratch(int n) {
        if (loraScratch.length < n) {
            loraScratch = new float[n];
        }
        return loraScratch;
    }
}

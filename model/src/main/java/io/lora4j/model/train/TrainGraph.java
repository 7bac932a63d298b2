package io.lora4j.model.train;

import io.lora4j.kernels.Attention;
import io.lora4j.kernels.CrossEntropy;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Dropout;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.Weight;
import io.lora4j.model.Llama;
import io.lora4j.model.LlamaConfig;
import io.lora4j.model.lora.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Forward with saved activations and the hand-written backward pass of a whole Llama with a LoRA
 * adapter, for one sequence of up to {@code maxT} tokens. Gradients flow through the frozen base
 * weights to the activations but accumulate only into the adapter ({@code +=}, so micro-batches
 * add up); activation gradients are assigned, except on the residual stream.
 * <p>
 * With gradient checkpointing only each layer's input is kept; the backward pass recomputes a
 * layer's activations (same dropout masks, from the same seeds) right before differentiating it.
 * Glossary: T tokens, C dim, Q = NH·HS, KV = NKV·HS, H hidden, V vocab, L layers.
 */
public final class TrainGraph {

    /** What one layer's backward needs (llm.c style named buffers). */
    private static final class LayerActs {
        final float[] xIn;    // (T, C) layer input = the checkpoint
        final float[] rstd1;  // (T)
        final float[] xb1;    // (T, C)
        final float[] q;      // (T, Q) after RoPE
        final float[] k;      // (T, KV) after RoPE
        final float[] v;      // (T, KV)
        final float[] att;    // (T·NH, T) probabilities
        final float[] attOut; // (T, Q)
        final float[] xMid;   // (T, C) after the attention residual
        final float[] rstd2;  // (T)
        final float[] xb2;    // (T, C)
        final float[] gate;   // (T, H) pre-activation
        final float[] up;     // (T, H)
        final float[] hb;     // (T, H) silu(gate)·up
        final float[][] loraIn = new float[LinearModule.values().length][]; // dropped-out inputs (T, IN), when dropout > 0
        final float[][] ax = new float[LinearModule.values().length][];     // (T, r)

        LayerActs(LlamaConfig c, int T, LoraAdapter ad, int l, boolean dropout, boolean full) {
            xIn = new float[T * c.dim()];
            if (!full) {
                rstd1 = xb1 = q = k = v = att = attOut = xMid = rstd2 = xb2 = gate = up = hb = null;
                return;
            }
            rstd1 = new float[T];
            xb1 = new float[T * c.dim()];
            q = new float[T * c.qDim()];
            k = new float[T * c.kvDim()];
            v = new float[T * c.kvDim()];
            att = new float[T * c.nHeads() * T];
            attOut = new float[T * c.qDim()];
            xMid = new float[T * c.dim()];
            rstd2 = new float[T];
            xb2 = new float[T * c.dim()];
            gate = new float[T * c.hiddenDim()];
            up = new float[T * c.hiddenDim()];
            hb = new float[T * c.hiddenDim()];
            for (LinearModule m : LinearModule.values()) {
                LoraLayer ll = ad == null || l < 0 ? null : ad.get(l, m);
                if (ll != null) {
                    ax[m.ordinal()] = new float[T * ll.r];
                    if (dropout) {
                        loraIn[m.ordinal()] = new float[T * ll.in];
                    }
                }
            }
        }

        long bytes() {
            long n = 0;
            for (float[] a : new float[][]{xIn, rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb}) {
                n += a == null ? 0 : a.length;
            }
            for (int i = 0; i < ax.length; i++) {
                n += (ax[i] == null ? 0 : ax[i].length) + (loraIn[i] == null ? 0 : loraIn[i].length);
            }
            return 4 * n;
        }
    }

    private final Llama m;
    private final LlamaConfig c;
    private final LoraAdapter ad;
    private final int maxT;
    private final boolean checkpointing;
    private final float dropout;
    private final LayerActs[] acts;    // [L]; with checkpointing only xIn is filled
    private final LayerActs work;      // the recomputed layer (checkpointing), else null
    private final Weight output;       // the base or the trainable lm_head
    // final norm, logits, loss
    private final float[] xFinal, rstdF, xbF, logits, losses;
    private final int[] targetsBuf;
    // backward scratch
    private final float[] dResid, dxb, dq, dk, dv, dAttOut, dAtt, dh, dgate, dup, dLoraIn, dlosses, tmpC;
    private long stepSeed;

    /**
     * @param adapter        the adapter being trained (null: plain model, e.g. for a gradient check of the base path)
     * @param maxT           longest sequence
     * @param checkpointing  keep only layer inputs and recompute in backward
     */
    public TrainGraph(Llama m, LoraAdapter adapter, int maxT, boolean checkpointing) {
        this.m = m;
        this.c = m.config();
        this.ad = adapter;
        this.maxT = maxT;
        this.checkpointing = checkpointing;
        this.dropout = adapter == null ? 0f : adapter.config().loraDropout();
        acts = new LayerActs[c.nLayers()];
        for (int l = 0; l < c.nLayers(); l++) {
            acts[l] = new LayerActs(c, maxT, adapter, l, dropout > 0, !checkpointing);
        }
        work = checkpointing ? new LayerActs(c, maxT, adapter, -1, dropout > 0, true) : null;
        if (checkpointing && adapter != null) {
            // the shared work buffers must fit every layer's adapters
            for (int l = 0; l < c.nLayers(); l++) {
                for (LinearModule mod : LinearModule.values()) {
                    LoraLayer ll = adapter.get(l, mod);
                    if (ll != null) {
                        int i = mod.ordinal();
                        if (work.ax[i] == null || work.ax[i].length < maxT * ll.r) {
                            work.ax[i] = new float[maxT * ll.r];
                        }
                        if (dropout > 0 && work.loraIn[i] == null) {
                            work.loraIn[i] = new float[maxT * ll.in];
                        }
                    }
                }
            }
        }
        output = adapter != null && adapter.lmHead != null
                ? new Weight("lm_head", GgmlType.F32, MemorySegment.ofArray(adapter.lmHead), c.vocabSize(), c.dim())
                : m.baseOutput();
        int C = c.dim(), H = c.hiddenDim(), V = c.vocabSize();
        xFinal = new float[maxT * C];
        rstdF = new float[maxT];
        xbF = new float[maxT * C];
        logits = new float[Math.multiplyExact(maxT, V)];
        losses = new float[maxT];
        targetsBuf = new int[maxT];
        dResid = new float[maxT * C];
        dxb = new float[maxT * C];
        tmpC = new float[maxT * C];
        dq = new float[maxT * c.qDim()];
        dk = new float[maxT * c.kvDim()];
        dv = new float[maxT * c.kvDim()];
        dAttOut = new float[maxT * c.qDim()];
        dAtt = new float[maxT * c.nHeads() * maxT];
        dh = new float[maxT * H];
        dgate = new float[maxT * H];
        dup = new float[maxT * H];
        dLoraIn = new float[maxT * Math.max(Math.max(C, H), c.qDim())];
        dlosses = new float[maxT];
    }

    /** Bytes of saved activations (all layers, plus the recompute buffer with checkpointing). */
    public long activationBytes() {
        long n = 0;
        for (LayerActs a : acts) {
            n += a.bytes();
        }
        if (work != null) {
            n += work.bytes();
        }
        n += 4L * (xFinal.length + rstdF.length + xbF.length + logits.length + losses.length);
        return n;
    }

    public boolean checkpointing() {
        return checkpointing;
    }

    /** The longest sequence this graph takes. */
    public int maxT() {
        return maxT;
    }

    /** Bytes of backward scratch buffers. */
    public long scratchBytes() {
        return 4L * (dResid.length + dxb.length + tmpC.length + dq.length + dk.length + dv.length + dAttOut.length
                + dAtt.length + dh.length + dgate.length + dup.length + dLoraIn.length + dlosses.length);
    }

    /**
     * Forward only: the summed loss over positions with a target ≥ 0 (no gradients). Dropout is off.
     */
    public double loss(int[] tokens, int[] targets, int T) {
        forward(tokens, targets, T, false);
        double sum = 0;
        for (int t = 0; t < T; t++) {
            sum += losses[t];
        }
        return sum;
    }

    /**
     * Forward and backward of one sequence. Returns the summed loss over counted positions;
     * adapter gradients are accumulated with {@code dLoss/dloss_t = lossScale} for every counted
     * position (e.g. 1 / tokens in the batch).
     *
     * @param seed seeds this sequence's dropout masks
     */
    public double forwardBackward(int[] tokens, int[] targets, int T, float lossScale, long seed) {
        stepSeed = seed;
        forward(tokens, targets, T, true);
        double sum = 0;
        for (int t = 0; t < T; t++) {
            sum += losses[t];
        }
        backward(tokens, T, lossScale);
        return sum;
    }

    private void forward(int[] tokens, int[] targets, int T, boolean training) {
        if (T < 1 || T > maxT) {
            throw new IllegalArgumentException("sequence of " + T + " tokens; this graph takes 1.." + maxT);
        }
        int C = c.dim();
        float[] x = acts[0].xIn;
        for (int t = 0; t < T; t++) {
            int tok = tokens[t];
            if (tok < 0 || tok >= c.vocabSize()) {
                throw new IllegalArgumentException("token id " + tok + " outside the vocabulary");
            }
            if (ad != null && ad.embedTokens != null) {
                System.arraycopy(ad.embedTokens, tok * C, x, t * C, C);
            } else {
                Dequant.row(m.tokenEmbedding(), tok, x, t * C);
            }
        }
        for (int l = 0; l < c.nLayers(); l++) {
            LayerActs a = checkpointing ? work : acts[l];
            if (checkpointing) {
                System.arraycopy(acts[l].xIn, 0, a.xIn, 0, T * C);
            }
            float[] next = l + 1 < c.nLayers() ? acts[l + 1].xIn : xFinal;
            layerForward(a, l, T, training, next);
        }
        RmsNorm.forward(xbF, rstdF, xFinal, m.outputNorm(), T, C, c.rmsEps());
        Matmul.forward(logits, xbF, output, T);
        System.arraycopy(targets, 0, targetsBuf, 0, T);
        CrossEntropy.forward(losses, logits, logits, targetsBuf, T, c.vocabSize());
    }

    /** One block: a.xIn → out (the next layer's input), filling a's saved activations. */
    private void layerForward(LayerActs a, int l, int T, boolean training, float[] out) {
        int C = c.dim();
        Llama.Layer w = m.layer(l);
        boolean halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES;
        RmsNorm.forward(a.xb1, a.rstd1, a.xIn, w.attnNorm(), T, C, c.rmsEps());
        linear(a, l, LinearModule.Q_PROJ, a.q, a.xb1, T, training);
        linear(a, l, LinearModule.K_PROJ, a.k, a.xb1, T, training);
        linear(a, l, LinearModule.V_PROJ, a.v, a.xb1, T, training);
        Rope.forward(a.q, m.ropeFreqs(), T, c.nHeads(), c.headSize(), 0, halves);
        Rope.forward(a.k, m.ropeFreqs(), T, c.nKvHeads(), c.headSize(), 0, halves);
        Attention.forward(a.attOut, a.att, a.q, a.k, a.v, T, 0, c.nHeads(), c.nKvHeads(), c.headSize(), T);
        linear(a, l, LinearModule.O_PROJ, a.xMid, a.attOut, T, training);
        for (int i = 0; i < T * C; i++) {
            a.xMid[i] += a.xIn[i];
        }
        RmsNorm.forward(a.xb2, a.rstd2, a.xMid, w.ffnNorm(), T, C, c.rmsEps());
        linear(a, l, LinearModule.GATE_PROJ, a.gate, a.xb2, T, training);
        linear(a, l, LinearModule.UP_PROJ, a.up, a.xb2, T, training);
        SwiGlu.forward(a.hb, a.gate, a.up, T * c.hiddenDim());
        linear(a, l, LinearModule.DOWN_PROJ, out, a.hb, T, training);
        for (int i = 0; i < T * C; i++) {
            out[i] += a.xMid[i];
        }
    }

    /** y = W x (+ s·(B A dropout(x) + bias) when the module is adapted). */
    private void linear(LayerActs a, int l, LinearModule mod, float[] y, float[] x, int T, boolean training) {
        Matmul.forward(y, x, mod.weight(m.layer(l)), T);
        LoraLayer ll = ad == null ? null : ad.get(l, mod);
        if (ll == null) {
            return;
        }
        float[] in = x;
        if (dropout > 0 && training) {
            in = a.loraIn[mod.ordinal()];
            Dropout.forward(in, x, maskSeed(l, mod), dropout, T * ll.in);
        }
        Lora.forward(y, a.ax[mod.ordinal()], in, ll.a, ll.e, ll.b, ll.scaling, T, ll.in, ll.out, ll.r);
        if (ll.bias != null) {
            for (int t = 0; t < T; t++) {
                for (int o = 0; o < ll.out; o++) {
                    y[t * ll.out + o] += ll.scaling * ll.bias[o];
                }
            }
        }
    }

    private void backward(int[] tokens, int T, float lossScale) {
        int C = c.dim();
        int V = c.vocabSize();
        Arrays.fill(dlosses, 0, T, lossScale);
        // logits := dlogits, in place over the probabilities
        CrossEntropy.backward(logits, logits, targetsBuf, dlosses, T, V);
        if (ad != null && ad.dLmHead != null) {
            Matmul.backwardWeight(ad.dLmHead, logits, xbF, T, V, C);
        }
        Matmul.backward(dxb, logits, output, T, false);
        RmsNorm.backward(dResid, null, dxb, xFinal, m.outputNorm(), rstdF, T, C);
        for (int l = c.nLayers() - 1; l >= 0; l--) {
            LayerActs a = acts[l];
            if (checkpointing) {
                a = work;
                System.arraycopy(acts[l].xIn, 0, a.xIn, 0, T * C);
                layerForward(a, l, T, true, tmpC); // recompute: same masks from the same seeds
            }
            layerBackward(a, l, T);
        }
        if (ad != null && ad.dEmbedTokens != null) {
            for (int t = 0; t < T; t++) {
                int tok = tokens[t];
                for (int i = 0; i < C; i++) {
                    ad.dEmbedTokens[tok * C + i] += dResid[t * C + i];
                }
            }
        }
    }

    /** dResid holds dL/d(layer output) on entry and dL/d(layer input) on exit. */
    private void layerBackward(LayerActs a, int l, int T) {
        int C = c.dim();
        int H = c.hiddenDim();
        Llama.Layer w = m.layer(l);
        boolean halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES;
        // FFN: out = xMid + down(silu(gate)·up)
        linearBackward(a, l, LinearModule.DOWN_PROJ, dh, false, dResid, a.hb, T);
        SwiGlu.backward(dgate, dup, dh, a.gate, a.up, T * H);
        linearBackward(a, l, LinearModule.GATE_PROJ, dxb, false, dgate, a.xb2, T);
        linearBackward(a, l, LinearModule.UP_PROJ, dxb, true, dup, a.xb2, T);
        RmsNorm.backward(tmpC, null, dxb, a.xMid, w.ffnNorm(), a.rstd2, T, C);
        for (int i = 0; i < T * C; i++) {
            dResid[i] += tmpC[i];
        }
        // attention: xMid = xIn + o(attention(rope(q), rope(k), v))
        linearBackward(a, l, LinearModule.O_PROJ, dAttOut, false, dResid, a.attOut, T);
        Attention.backward(dq, dk, dv, dAtt, dAttOut, a.att, a.q, a.k, a.v, T, c.nHeads(), c.nKvHeads(), c.headSize());
        Rope.backward(dq, m.ropeFreqs(), T, c.nHeads(), c.headSize(), 0, halves);
        Rope.backward(dk, m.ropeFreqs(), T, c.nKvHeads(), c.headSize(), 0, halves);
        linearBackward(a, l, LinearModule.Q_PROJ, dxb, false, dq, a.xb1, T);
        linearBackward(a, l, LinearModule.K_PROJ, dxb, true, dk, a.xb1, T);
        linearBackward(a, l, LinearModule.V_PROJ, dxb, true, dv, a.xb1, T);
        RmsNorm.backward(tmpC, null, dxb, a.xIn, w.attnNorm(), a.rstd1, T, C);
        for (int i = 0; i < T * C; i++) {
            dResid[i] += tmpC[i];
        }
    }

    /** dx (=, or += with accumulate) = Wᵀ dy + the LoRA branch; adapter gradients accumulate. */
    private void linearBackward(LayerActs a, int l, LinearModule mod, float[] dx, boolean accumulate, float[] dy,
                                float[] x, int T) {
        Matmul.backward(dx, dy, mod.weight(m.layer(l)), T, accumulate);
        LoraLayer ll = ad == null ? null : ad.get(l, mod);
        if (ll == null) {
            return;
        }
        int i = mod.ordinal();
        if (ll.dbias != null) {
            for (int t = 0; t < T; t++) {
                for (int o = 0; o < ll.out; o++) {
                    ll.dbias[o] += ll.scaling * dy[t * ll.out + o];
                }
            }
        }
        if (dropout > 0) {
            float[] in = a.loraIn[i];
            Arrays.fill(dLoraIn, 0, T * ll.in, 0f);
            Lora.backward(dLoraIn, ll.da, dE(ll), ll.db, tmpAx(ll, T), dy, a.ax[i], in, ll.a, ll.e, ll.b, ll.scaling, T, ll.in, ll.out, ll.r);
            // through the mask: kept elements were scaled by 1/(1-p), dropped ones get no gradient
            Dropout.backward(dx, dLoraIn, maskSeed(l, mod), dropout, T * ll.in);
        } else {
            Lora.backward(dx, ll.da, dE(ll), ll.db, tmpAx(ll, T), dy, a.ax[i], x, ll.a, ll.e, ll.b, ll.scaling, T, ll.in, ll.out, ll.r);
        }
    }

    private float[] daxScratch = new float[0];
    private float[] deScratch = new float[0];

    /** Where dE goes: lora_E's gradient (AdaLoRA), or a discarded scratch for LoRA's frozen e = 1. */
    private float[] dE(LoraLayer ll) {
        if (ll.de != null) {
            return ll.de;
        }
        if (deScratch.length < ll.r) {
            deScratch = new float[ll.r];
        }
        return deScratch;
    }

    private float[] tmpAx(LoraLayer ll, int T) {
        if (daxScratch.length < T * ll.r) {
            daxScratch = new float[T * ll.r];
        }
        return daxScratch;
    }

    private long maskSeed(int l, LinearModule mod) {
        return maskSeed(stepSeed, l, mod);
    }

    /** The dropout seed of projection {@code mod} in block {@code l} for the sequence seeded {@code seed} (see {@link Dropout}). */
    public static long maskSeed(long seed, int l, LinearModule mod) {
        return seed * 0x9E3779B97F4A7C15L + (l * 16L + mod.ordinal()) * 0xBF58476D1CE4E5B9L;
    }
}

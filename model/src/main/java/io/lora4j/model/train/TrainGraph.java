package io.lora4j.model.train;

import io.lora4j.kernels.Attention;
import io.lora4j.kernels.Bottleneck;
import io.lora4j.kernels.CrossEntropy;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Dora;
import io.lora4j.kernels.Dropout;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.VectorOps;
import io.lora4j.kernels.Weight;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.block.BlockOps;
import io.lora4j.model.block.Buf;
import io.lora4j.model.block.JvmOps;
import io.lora4j.model.block.LlamaBlock;
import io.lora4j.model.arch.Layer;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.lora.BottleneckLayer;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * Forward with saved activations and the hand-written backward pass of a whole Llama with an adapter (LoRA, AdaLoRA,
 * DoRA or bottleneck), for one sequence of up to {@code maxT} tokens. Gradients flow through the frozen base
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
        final float[][] pre = new float[LinearModule.values().length][];    // (T, OUT) a DoRA projection before its rescale
        final float[][] bnIn = new float[Sublayer.values().length][];       // (T, C) a bottleneck adapter's input
        final float[][] bnZ = new float[Sublayer.values().length][];        // (T, d) its pre-activation

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
                    if (ll.dora()) {
                        pre[m.ordinal()] = new float[T * ll.out];
                    }
                }
            }
            for (Sublayer s : Sublayer.values()) {
                BottleneckLayer b = ad == null || l < 0 ? null : ad.bottleneck(l, s);
                if (b != null) {
                    bnIn[s.ordinal()] = new float[T * b.C];
                    bnZ[s.ordinal()] = new float[T * b.d];
                }
            }
        }

        long bytes() {
            long n = 0;
            for (float[] a : new float[][]{xIn, rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb}) {
                n += a == null ? 0 : a.length;
            }
            for (int i = 0; i < ax.length; i++) {
                n += (ax[i] == null ? 0 : ax[i].length) + (loraIn[i] == null ? 0 : loraIn[i].length)
                        + (pre[i] == null ? 0 : pre[i].length);
            }
            for (int i = 0; i < bnIn.length; i++) {
                n += (bnIn[i] == null ? 0 : bnIn[i].length) + (bnZ[i] == null ? 0 : bnZ[i].length);
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
    // backward scratch; DoRA: the rescaled output gradient, and with dropout (1 − g) ⊙ dy and the base's share Wᵀ((1 − g) ⊙ dy)
    private final float[] dResid, dxb, dq, dk, dv, dAttOut, dAtt, dh, dgate, dup, dLoraIn, dlosses, tmpC, dScaled, dyRest, dDoraIn;
    // bottleneck adapters: dL/d(sublayer output) before the adapter (T, C), and (T, d) scratch for dz and f(z)
    private final float[] dProj, bnDz, bnAct;
    // DoRA's row norms ‖W + s·B A‖ by block and projection ordinal, taken at the start of each forward unless held
    private final float[][][] norms;
    private boolean holdNorms;
    private long stepSeed;
    private final Exec exec;

    /**
     * @param adapter        the adapter being trained (null: plain model, e.g. for a gradient check of the base path)
     * @param maxT           longest sequence
     * @param checkpointing  keep only layer inputs and recompute in backward
     */
    public TrainGraph(Llama m, LoraAdapter adapter, int maxT, boolean checkpointing) {
        this.m = m;
        this.c = m.config();
        this.exec = new Exec();
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
                        if (ll.dora() && work.pre[i] == null) {
                            work.pre[i] = new float[maxT * ll.out];
                        }
                    }
                }
            }
        }
        int bnWidth = 0;
        if (adapter != null) {
            if (adapter.bottleneckConfig() != null && adapter.bottleneckConfig().dropout() > 0) {
                throw new IllegalArgumentException("dropout " + adapter.bottleneckConfig().dropout() + " on a bottleneck adapter's "
                        + "output: training with it is not implemented (AdapterHub's default is 0.0)");
            }
            for (BottleneckLayer b : adapter.bottlenecks()) {
                bnWidth = Math.max(bnWidth, b.d);
                if (checkpointing) {
                    int i = b.site.ordinal();
                    if (work.bnZ[i] == null || work.bnZ[i].length < maxT * b.d) {
                        work.bnIn[i] = new float[maxT * b.C];
                        work.bnZ[i] = new float[maxT * b.d];
                    }
                }
            }
        }
        dProj = bnWidth > 0 ? new float[maxT * c.dim()] : new float[0];
        bnDz = new float[maxT * bnWidth];
        bnAct = new float[maxT * bnWidth];
        output = adapter != null && adapter.lmHead != null
                ? new Weight("lm_head", GgmlType.F32, adapter.lmHead.segment(), c.vocabSize(), c.dim())
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
        norms = new float[c.nLayers()][LinearModule.values().length][];
        boolean dora = adapter != null && adapter.layers().stream().anyMatch(LoraLayer::dora);
        dScaled = dora ? new float[dLoraIn.length] : new float[0];
        dyRest = dora && dropout > 0 ? new float[dLoraIn.length] : new float[0];
        dDoraIn = dora && dropout > 0 ? new float[dLoraIn.length] : new float[0];
    }

    /**
     * Keeps DoRA's row norms as the last forward took them, instead of taking them again from the adapter at
     * each forward: the norm is a constant of the backward (PEFT detaches it), so a finite-difference check
     * of the hand-written gradients must hold it constant too.
     */
    public void holdDoraNorms(boolean hold) {
        holdNorms = hold;
    }

    /** DoRA's row norms of every DoRA projection, from the adapter's current A and B (cached per optimizer step by the layer). */
    private void takeNorms() {
        if (ad == null || holdNorms) {
            return;
        }
        for (LoraLayer ll : ad.layers()) {
            if (ll.dora()) {
                norms[ll.layer][ll.module.ordinal()] = ll.weightNorm(ll.module.weight(m.layer(ll.layer)), ll.scaling);
            }
        }
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
                + dAtt.length + dh.length + dgate.length + dup.length + dLoraIn.length + dlosses.length + dScaled.length
                + dyRest.length + dDoraIn.length + dProj.length + bnDz.length + bnAct.length);
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
                System.arraycopy(ad.embedTokens.values(), ad.embedTokens.off() + tok * C, x, t * C, C);
            } else {
                Dequant.row(m.tokenEmbedding(), tok, x, t * C);
            }
        }
        exec.start(T, training);
        takeNorms();
        for (int l = 0; l < c.nLayers(); l++) {
            LayerActs a = checkpointing ? work : acts[l];
            if (checkpointing) {
                System.arraycopy(acts[l].xIn, 0, a.xIn, 0, T * C);
            }
            exec.at(l, a, l + 1 < c.nLayers() ? acts[l + 1].xIn : xFinal);
            LlamaBlock.forward(exec);
        }
        System.arraycopy(targets, 0, targetsBuf, 0, T);
        exec.head = true;
        LlamaBlock.head(exec, true);
        exec.head = false;
    }

    private void backward(int[] tokens, int T, float lossScale) {
        int C = c.dim();
        Arrays.fill(dlosses, 0, T, lossScale);
        exec.head = true;
        LlamaBlock.headBackward(exec);
        exec.head = false;
        for (int l = c.nLayers() - 1; l >= 0; l--) {
            LayerActs a = acts[l];
            if (checkpointing) {
                a = work;
                System.arraycopy(acts[l].xIn, 0, a.xIn, 0, T * C);
                exec.at(l, a, tmpC);
                LlamaBlock.forward(exec); // recompute: same masks from the same seeds
            }
            exec.at(l, a, null);
            LlamaBlock.backward(exec);
        }
        if (ad != null && ad.embedTokens != null) {
            float[] g = ad.embedTokens.grads();
            int off = ad.embedTokens.off();
            for (int t = 0; t < T; t++) {
                int tok = tokens[t];
                for (int i = 0; i < C; i++) {
                    g[off + tok * C + i] += dResid[t * C + i];
                }
            }
        }
    }

    /**
     * The block's ops over one block's saved activations ({@link LayerActs}) and the shared backward
     * scratch. ATT_PROJ is computed into X_MID and FFN_PROJ into X_OUT (the residual adds then run in
     * place); K and V are attended directly (no cache: the whole sequence is one chunk at position 0).
     */
    private final class Exec extends JvmOps implements BlockOps.Backward {
        boolean training;
        boolean head;
        private int l;
        private LayerActs a;
        private float[] out;

        Exec() {
            super(TrainGraph.this.c, TrainGraph.this.m.ropeFreqs());
        }

        /** A sequence of T tokens from position 0; dropout only when {@code training}. */
        void start(int tokens, boolean training) {
            T = tokens;
            pos = 0;
            this.training = training;
        }

        void at(int layer, LayerActs acts, float[] blockOut) {
            l = layer;
            a = acts;
            out = blockOut;
        }

        @Override
        protected float[] buf(Buf b) {
            if (head) {
                return switch (b) {
                    case X -> xFinal;
                    case RSTD_F -> rstdF;
                    case XF -> xbF;
                    case LOGITS, PROBS, D_LOGITS -> logits; // probabilities, then their gradient, in place
                    case LOSSES -> losses;
                    case D_XF -> dxb;
                    case D_X -> dResid;
                    default -> throw new IllegalArgumentException(b + " is not a head buffer");
                };
            }
            return switch (b) {
                case X -> a.xIn;
                case RSTD1 -> a.rstd1;
                case XB1 -> a.xb1;
                case Q -> a.q;
                case K -> a.k;
                case V -> a.v;
                case ATT -> a.att;
                case ATT_OUT -> a.attOut;
                case ATT_PROJ, X_MID -> a.xMid;
                case RSTD2 -> a.rstd2;
                case XB2 -> a.xb2;
                case GATE -> a.gate;
                case UP -> a.up;
                case HB -> a.hb;
                case FFN_PROJ, X_OUT -> out;
                case D_X -> dResid;
                case D_XB -> dxb;
                case D_Q -> dq;
                case D_K -> dk;
                case D_V -> dv;
                case D_ATT_OUT -> dAttOut;
                case D_GATE -> dgate;
                case D_UP -> dup;
                case D_HB -> dh;
                case D_SCALED -> dScaled;
                case D_PROJ -> dProj;
                default -> throw new IllegalArgumentException(b + " is not a block buffer");
            };
        }

        @Override
        protected Layer layer() {
            return m.layer(l);
        }

        @Override
        protected float[] outputNorm() {
            return m.outputNorm();
        }

        private LoraLayer branch(LinearModule mod, int i) {
            return ad.get(l, mod);
        }

        @Override
        public int adapters(LinearModule mod) {
            return ad != null && ad.get(l, mod) != null ? 1 : 0;
        }

        @Override
        public void lowRank(LinearModule mod, int i, Buf y, Buf x) {
            LoraLayer ll = branch(mod, i);
            float[] in = buf(x);
            if (dropout > 0 && training) {
                in = a.loraIn[mod.ordinal()];
                Dropout.forward(in, buf(x), maskSeed(l, mod), dropout, T * ll.in);
            }
            Lora.forward(buf(y), a.ax[mod.ordinal()], in, ll.values(), ll.a.off(), ll.eOff(), ll.b.off(), ll.scaling, T, ll.in,
                    ll.out, ll.r);
        }

        @Override
        public void bias(LinearModule mod, int i, Buf y) {
            LoraLayer ll = branch(mod, i);
            if (ll.bias == null) {
                return;
            }
            addBias(y, ll.values(), ll.bias.off(), ll.scaling, ll.out);
        }

        @Override
        public boolean decomposed(LinearModule mod, int i) {
            return branch(mod, i).dora();
        }

        /** Keeps the rows before the rescale for the backward (while training); PEFT's form with dropout. */
        @Override
        public void magnitude(LinearModule mod, int i, Buf y) {
            LoraLayer ll = branch(mod, i);
            int j = mod.ordinal();
            float[] norm = norms[l][j];
            if (dropout > 0 && training) {
                // PEFT: base_result recomputed from the dropped-out input, plus the low-rank output
                float[] pre = a.pre[j], in = a.loraIn[j];
                Matmul.forward(pre, in, mod.weight(m.layer(l)), T);
                Lora.forward(pre, a.ax[j], in, ll.values(), ll.a.off(), ll.eOff(), ll.b.off(), ll.scaling, T, ll.in, ll.out, ll.r);
                Dora.forwardDropout(buf(y), pre, ll.values(), ll.magnitude.off(), norm, T, ll.out);
            } else {
                Dora.forward(buf(y), training ? a.pre[j] : null, ll.values(), ll.magnitude.off(), norm, T, ll.out);
            }
        }

        @Override
        public int bottlenecks(Sublayer s) {
            return ad != null && ad.bottleneck(l, s) != null ? 1 : 0;
        }

        /** Keeps the module's input and pre-activation for the backward. */
        @Override
        public void bottleneck(Sublayer s, int i, Buf y) {
            BottleneckLayer b = ad.bottleneck(l, s);
            Bottleneck.forward(buf(y), a.bnIn[s.ordinal()], a.bnZ[s.ordinal()], bnAct, b.values(), b.down.off(), b.downBias.off(),
                    b.up.off(), b.upBias.off(), ad.bottleneckConfig().activation(), ad.bottleneckConfig().scaling(), T, b.C, b.d);
        }

        @Override
        public void bottleneckBackward(Sublayer s, int i, Buf dx, Buf dy) {
            BottleneckLayer b = ad.bottleneck(l, s);
            Bottleneck.backward(buf(dx), b.grads(), bnDz, bnAct, buf(dy), a.bnIn[s.ordinal()], a.bnZ[s.ordinal()], b.values(),
                    b.down.off(), b.downBias.off(), b.up.off(), b.upBias.off(), ad.bottleneckConfig().activation(),
                    ad.bottleneckConfig().scaling(), T, b.C, b.d);
        }

        @Override
        public void attention(Buf out, Buf att, Buf q, Buf k, Buf v) {
            Attention.forward(buf(out), buf(att), buf(q), buf(k), buf(v), T, 0, c.nHeads(), c.nKvHeads(), c.headSize(), T);
        }

        @Override
        public void logits(Buf logits, Buf x) {
            Matmul.forward(buf(logits), buf(x), output, T);
        }

        @Override
        public void crossEntropy(Buf losses, Buf probs, Buf logits) {
            CrossEntropy.forward(buf(losses), buf(probs), buf(logits), targetsBuf, T, c.vocabSize());
        }

        @Override
        public void matmulBackward(LinearModule mod, Buf dx, boolean accumulate, Buf dy) {
            Matmul.backward(buf(dx), buf(dy), mod.weight(m.layer(l)), T, accumulate);
        }

        @Override
        public void lowRankBackward(LinearModule mod, int i, Buf dx, Buf dy, Buf x) {
            LoraLayer ll = branch(mod, i);
            int j = mod.ordinal();
            if (dropout > 0) {
                Arrays.fill(dLoraIn, 0, T * ll.in, 0f);
                Lora.backward(dLoraIn, ll.grads(), tmpAx(ll, T), buf(dy), a.ax[j], a.loraIn[j], ll.values(), ll.a.off(), ll.eOff(),
                        ll.b.off(), ll.scaling, T, ll.in, ll.out, ll.r);
                if (ll.dora()) {
                    // PEFT's W·dropout(x) term: Wᵀ((g − 1) ⊙ dy) through the mask, while the undropped input gets
                    // the rest of the base's Wᵀ dy (matmulBackward gave it Wᵀ(g ⊙ dy))
                    VectorOps.axpy(dLoraIn, dDoraIn, -1f, T * ll.in);
                    VectorOps.axpy(buf(dx), dDoraIn, 1f, T * ll.in);
                }
                // through the mask: kept elements were scaled by 1/(1-p), dropped ones get no gradient
                Dropout.backward(buf(dx), dLoraIn, maskSeed(l, mod), dropout, T * ll.in);
            } else {
                Lora.backward(buf(dx), ll.grads(), tmpAx(ll, T), buf(dy), a.ax[j], buf(x), ll.values(), ll.a.off(), ll.eOff(),
                        ll.b.off(), ll.scaling, T, ll.in, ll.out, ll.r);
            }
        }

        @Override
        public void biasBackward(LinearModule mod, int i, Buf dy) {
            LoraLayer ll = branch(mod, i);
            if (ll.bias == null) {
                return;
            }
            float[] d = buf(dy), g = ll.grads();
            for (int t = 0; t < T; t++) {
                for (int o = 0; o < ll.out; o++) {
                    g[ll.bias.off() + o] += ll.scaling * d[t * ll.out + o];
                }
            }
        }

        @Override
        public void magnitudeBackward(LinearModule mod, int i, Buf dyOut, Buf dy) {
            LoraLayer ll = branch(mod, i);
            int j = mod.ordinal();
            float[] g = buf(dyOut), d = buf(dy);
            Dora.backward(g, ll.grads(), d, a.pre[j], ll.values(), ll.magnitude.off(), norms[l][j], T, ll.out);
            if (dropout > 0) {
                for (int k = 0; k < T * ll.out; k++) {
                    dyRest[k] = d[k] - g[k]; // (1 − g) ⊙ dy
                }
                Matmul.backward(dDoraIn, dyRest, mod.weight(m.layer(l)), T, false);
            }
        }

        @Override
        public void rmsNormBackward(Buf dx, boolean accumulate, Buf dOut, Buf x, Norm w, Buf rstd) {
            rmsNormBackward(dx, accumulate, dOut, x, w, rstd, tmpC);
        }

        @Override
        public void ropeBackward(Buf dx, Heads h) {
            ropeBackward(dx, h, 0);
        }

        @Override
        public void attentionBackward(Buf dq, Buf dk, Buf dv, Buf dOut, Buf att, Buf q, Buf k, Buf v) {
            Attention.backward(buf(dq), buf(dk), buf(dv), dAtt, buf(dOut), buf(att), buf(q), buf(k), buf(v), T, c.nHeads(),
                    c.nKvHeads(), c.headSize());
        }

        @Override
        public void swigluBackward(Buf dGate, Buf dUp, Buf dOut, Buf gate, Buf up) {
            SwiGlu.backward(buf(dGate), buf(dUp), buf(dOut), buf(gate), buf(up), T * c.hiddenDim());
        }

        @Override
        public void logitsBackward(Buf dx, Buf dLogits, Buf x) {
            if (ad != null && ad.lmHead != null) {
                Matmul.backwardWeight(ad.lmHead.grads(), ad.lmHead.off(), buf(dLogits), buf(x), T, c.vocabSize(), c.dim());
            }
            Matmul.backward(buf(dx), buf(dLogits), output, T, false);
        }

        @Override
        public void crossEntropyBackward(Buf dLogits, Buf probs) {
            CrossEntropy.backward(buf(dLogits), buf(probs), targetsBuf, dlosses, T, c.vocabSize());
        }
    }

    private float[] daxScratch = new float[0];

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

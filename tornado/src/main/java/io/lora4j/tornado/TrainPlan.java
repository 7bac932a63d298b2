package io.lora4j.tornado;

import io.lora4j.kernels.AdamW;
import io.lora4j.kernels.Attention;
import io.lora4j.kernels.CrossEntropy;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Dropout;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.Sgd;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.VectorOps;
import io.lora4j.model.Llama;
import io.lora4j.model.LlamaConfig;
import io.lora4j.model.lora.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.train.DeviceTraining;
import io.lora4j.model.train.TrainGraph;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * LoRA training on a device: the forward pass, the hand-written backward pass and the optimizer
 * step as task graphs; the same math as {@link TrainGraph} with gradient checkpointing (which gives
 * TrainGraph's gradients exactly) and the JVM optimizers.
 * <p>
 * Layout, llm.c style: every adapter tensor lives in one flat {@code params} buffer, its gradient at
 * the same offset of {@code grads}, the optimizer moments in {@code m} and {@code v}, so zeroing is
 * one fill, the norm one reduction and the update one loop. Each block keeps only its input
 * {@code xs[l]} between the forward and the backward sweep; the backward graph of a block recomputes
 * its activations (same dropout masks, from the same seeds) right before differentiating it. This
 * keeps what crosses graphs small, which TornadoVM needs: a graph shares device buffers only with
 * the graph run just before it ({@link DevicePlan#linkChain}), and a graph has a bounded size.
 * <p>
 * Sequences are padded to {@code maxT} tokens: padded positions have no target and a zero
 * embedding, causal attention keeps them out of the real positions, and their gradients are exact
 * zeros. Per sequence only embeddings, targets and dropout seeds go in and the per-position losses
 * come back; per step the partial sums of squares of the gradient come back (for clipping) and the
 * step's hyper-parameters go in. The adapter and the moments come back on demand ({@link #syncToHost}).
 *
 * <pre>
 * graphs, in execution order (evaluation runs the first L+1):
 *   fwd_0 .. fwd_{L-1}   one block each: xs[l] → xs[l+1]
 *   loss                 output norm, logits, cross-entropy → losses (copied out), probabilities
 *   head_bwd             dlogits (over the logits) → dResid, through the output projection and norm
 *   bwd_{L-1} .. bwd_0   recompute block l from xs[l], then its backward; dResid in place, grads +=
 *   norm                 partial Σg² of grads (copied out)            } once per optimizer step
 *   update               AdamW or SGD on params, then grads := 0      }
 * </pre>
 * Glossary: T = maxT tokens, C dim, H hidden, V vocab, L layers, r rank, P adapter parameters.
 */
final class TrainPlan implements DeviceTraining, AutoCloseable {
    private static final int CHUNK = 4096;

    private final DevicePlan plan = new DevicePlan();
    private final Llama m;
    private final LlamaConfig c;
    private final int T;
    private final boolean adam;
    private final float dropoutP;
    private final PlanRunner runner;
    // host ends of the per-sequence inputs and outputs
    private final float[] x0;       // (T, C) embeddings, zero beyond the sequence
    private final int[] targets;    // (T) -1 beyond the sequence
    private final float[] dlosses;  // (T)
    private final float[] losses;   // (T)
    private final List<Seed> seeds = new ArrayList<>();
    private final List<float[]> dropHolders = new ArrayList<>();
    // the adapter, flat
    private final List<Param> params = new ArrayList<>();
    private final float[] p, g, mom1, mom2, partial, hyper;
    private final int idxLoss, idxHead, idxNorm, idxUpdate;
    private final int[] idxFwd, idxBwd;
    private boolean updated;

    /** One adapter tensor: its host arrays and its offset in the flat buffers. */
    private record Param(String name, float[] value, float[] grad, int off) {
    }

    /** The dropout seed holder of one adapted projection in one graph. */
    private record Seed(long[] holder, int layer, LinearModule module) {
    }

    /** One adapted projection: where its tensors sit in params/grads, and its own scratch in one graph. */
    private static final class Branch {
        final LoraLayer ll;
        final int aOff, bOff, biasOff;
        final float[] ax, bax, in, dys, dax, dIn, ones, biasOut;
        final long[] seed = new long[1];

        Branch(LoraLayer ll, int aOff, int bOff, int biasOff, int T, boolean dropout, boolean backward) {
            this.ll = ll;
            this.aOff = aOff;
            this.bOff = bOff;
            this.biasOff = biasOff;
            ax = new float[T * ll.r];
            bax = new float[T * ll.out];
            in = dropout ? new float[T * ll.in] : null;
            dys = backward ? new float[T * ll.out] : null;
            dax = backward ? new float[T * ll.r] : null;
            dIn = backward && dropout ? new float[T * ll.in] : null;
            ones = ll.bias != null ? filled(T, 1f) : null;
            biasOut = ll.bias != null ? new float[T * ll.out] : null;
        }

        Object[] arrays() {
            return Arrays.stream(new Object[]{ax, bax, in, dys, dax, dIn, ones, biasOut}).filter(o -> o != null).toArray();
        }
    }

    /** A block's activations in one graph (llm.c style named buffers, all (T, ·)), its weights and its branches. */
    private static final class Block {
        final float[] xIn, rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb, out;
        final float[] freqs, attnNorm, ffnNorm, drop = new float[1];
        final int[] pos;
        final DeviceMatrix[] w;
        final Branch[] lora = new Branch[LinearModule.values().length];

        Block(LlamaConfig c, int T, float[] xIn, float[] out, DeviceMatrix[] w, Llama m, int l) {
            this.xIn = xIn;
            this.out = out;
            this.w = w;
            freqs = m.ropeFreqs().clone(); // each graph owns its small constant arrays
            attnNorm = m.layer(l).attnNorm().clone();
            ffnNorm = m.layer(l).ffnNorm().clone();
            pos = positions(T);
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
        }

        Object[] own() {
            return new Object[]{rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb, freqs, attnNorm, ffnNorm, pos};
        }
    }

    /**
     * @param optimizer "adamw" or "sgd"
     */
    TrainPlan(Llama m, LoraAdapter ad, int maxT, String optimizer, Function<DevicePlan, PlanRunner> runners) {
        if (ad.adaLora() != null) {
            throw new IllegalArgumentException("AdaLoRA training allocates ranks from gradients on the host; the tornado "
                    + "backend trains LoRA adapters only (use --backend jvm for --method adalora)");
        }
        if (ad.lmHead != null || ad.embedTokens != null) {
            throw new IllegalArgumentException("modules_to_save (lm_head, embed_tokens) is not supported by the tornado "
                    + "backend's training plan yet; train it with --backend jvm");
        }
        this.m = m;
        this.c = m.config();
        this.T = maxT;
        this.adam = optimizer.equals("adamw");
        this.dropoutP = ad.config().loraDropout();
        int C = c.dim(), L = c.nLayers();
        int n = 0;
        for (LoraLayer ll : ad.layers()) { // the Trainer's order
            params.add(new Param(ll.path() + ".lora_A", ll.a, ll.da, n));
            n += ll.a.length;
            params.add(new Param(ll.path() + ".lora_B", ll.b, ll.db, n));
            n += ll.b.length;
            if (ll.bias != null) {
                params.add(new Param(ll.path() + ".lora_B.bias", ll.bias, ll.dbias, n));
                n += ll.bias.length;
            }
        }
        p = new float[n];
        g = new float[n];
        mom1 = new float[n];
        mom2 = new float[adam ? n : 1];
        partial = new float[(n + CHUNK - 1) / CHUNK];
        hyper = new float[adam ? AdamW.HYPER : Sgd.HYPER];
        for (Param q : params) {
            System.arraycopy(q.value, 0, p, q.off, q.value.length);
        }
        x0 = new float[T * C];
        targets = new int[T];
        dlosses = new float[T];
        losses = new float[T];
        float[][] xs = new float[L + 1][];
        for (int l = 0; l <= L; l++) {
            xs[l] = l == 0 ? x0 : new float[T * C];
        }
        DeviceMatrix[][] w = new DeviceMatrix[L][];
        idxFwd = new int[L];
        for (int l = 0; l < L; l++) {
            io.lora4j.kernels.Weight[] ws = new io.lora4j.kernels.Weight[LinearModule.values().length];
            for (LinearModule mod : LinearModule.values()) {
                ws[mod.ordinal()] = mod.weight(m.layer(l));
            }
            w[l] = DeviceMatrix.pack(ws);
            Graph fg = plan.graph("fwd_" + l);
            if (l == 0) {
                fg.copyIn(Mode.FIRST_EXECUTION, p).copyIn(Mode.EVERY_EXECUTION, x0);
            }
            fg.copyIn(Mode.FIRST_EXECUTION, DeviceMatrix.buffers(w[l])); // uploaded once, used again by bwd_l
            fg.copyIn(Mode.FIRST_EXECUTION, xs[l + 1]);
            Block b = block(fg, l, ad, xs[l], xs[l + 1], w[l], false);
            blockForward(fg, b, "");
            idxFwd[l] = l;
        }
        float[] xbF = new float[T * C], rstdF = new float[T], logits = new float[Math.multiplyExact(T, c.vocabSize())];
        float[] probs = new float[logits.length];
        DeviceMatrix out = DeviceMatrix.of(m.baseOutput());
        lossGraph(xs[L], xbF, rstdF, logits, probs, out);
        idxLoss = L;
        float[] dResid = new float[T * C];
        headGraph(xs[L], xbF, rstdF, logits, probs, out, dResid);
        idxHead = L + 1;
        idxBwd = new int[L];
        for (int l = L - 1; l >= 0; l--) {
            Graph bg = plan.graph("bwd_" + l);
            if (l == L - 1) {
                bg.copyIn(Mode.FIRST_EXECUTION, g);
            }
            Block b = block(bg, l, ad, xs[l], new float[T * C], w[l], true);
            bg.copyIn(Mode.FIRST_EXECUTION, b.out);
            blockForward(bg, b, "recompute_");
            blockBackward(bg, b, dResid);
            idxBwd[l] = plan.graphs().size() - 1;
        }
        Graph ng = plan.graph("norm");
        ng.copyIn(Mode.FIRST_EXECUTION, partial);
        ng.task("grad_sumsq", VectorOps::sumSquaresNaive, partial, g, n, CHUNK);
        ng.copyOut(Mode.EVERY_EXECUTION, partial).copyOut(Mode.UNDER_DEMAND, g);
        idxNorm = plan.graphs().size() - 1;
        Graph ug = plan.graph("update");
        ug.copyIn(Mode.EVERY_EXECUTION, hyper).copyIn(Mode.FIRST_EXECUTION, mom1);
        if (adam) {
            ug.copyIn(Mode.FIRST_EXECUTION, mom2);
            ug.task("adamw", AdamW::updateNaive, p, g, mom1, mom2, hyper, n);
        } else {
            ug.task("sgd", Sgd::updateNaive, p, g, mom1, hyper, n);
        }
        ug.task("zero_grad", VectorOps::fillNaive, g, 0f, n);
        ug.copyOut(Mode.UNDER_DEMAND, p, mom1);
        if (adam) {
            ug.copyOut(Mode.UNDER_DEMAND, mom2);
        }
        idxUpdate = plan.graphs().size() - 1;
        plan.linkChain();
        runner = runners.apply(plan);
    }

    static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    private static int[] positions(int T) {
        int[] p = new int[T];
        for (int t = 0; t < T; t++) {
            p[t] = t;
        }
        return p;
    }

    /** A block's buffers in graph {@code gr}, which owns them; the adapted projections' branches and seeds. */
    private Block block(Graph gr, int l, LoraAdapter ad, float[] xIn, float[] out, DeviceMatrix[] w, boolean backward) {
        Block b = new Block(c, T, xIn, out, w, m, l);
        gr.copyIn(Mode.FIRST_EXECUTION, b.own()).copyIn(Mode.EVERY_EXECUTION, b.drop);
        dropHolders.add(b.drop);
        for (LinearModule mod : LinearModule.values()) {
            LoraLayer ll = ad.get(l, mod);
            if (ll == null) {
                continue;
            }
            int aOff = offset(ll.a), bOff = offset(ll.b), biasOff = ll.bias == null ? -1 : offset(ll.bias);
            Branch br = new Branch(ll, aOff, bOff, biasOff, T, dropoutP > 0, backward);
            b.lora[mod.ordinal()] = br;
            gr.copyIn(Mode.FIRST_EXECUTION, br.arrays()).copyIn(Mode.EVERY_EXECUTION, br.seed);
            seeds.add(new Seed(br.seed, l, mod));
        }
        return b;
    }

    private int offset(float[] hostArray) {
        for (Param q : params) {
            if (q.value == hostArray) {
                return q.off;
            }
        }
        throw new IllegalStateException("not an adapter tensor");
    }

    /** One block, b.xIn → b.out, filling b's activations; as TrainGraph.layerForward. */
    private void blockForward(Graph gr, Block b, String prefix) {
        int C = c.dim(), H = c.hiddenDim();
        int halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES ? 1 : 0;
        float eps = c.rmsEps();
        gr.task(prefix + "attn_norm", RmsNorm::forwardNaive, b.xb1, b.rstd1, b.xIn, b.attnNorm, T, C, eps);
        linear(gr, b, prefix, LinearModule.Q_PROJ, b.q, b.xb1);
        linear(gr, b, prefix, LinearModule.K_PROJ, b.k, b.xb1);
        linear(gr, b, prefix, LinearModule.V_PROJ, b.v, b.xb1);
        gr.task(prefix + "rope_q", Rope::forwardNaive, b.q, b.freqs, b.pos, T, c.nHeads(), c.headSize(), halves);
        gr.task(prefix + "rope_k", Rope::forwardNaive, b.k, b.freqs, b.pos, T, c.nKvHeads(), c.headSize(), halves);
        gr.task(prefix + "attention", Attention::forwardNaive, b.attOut, b.att, b.q, b.k, b.v, b.pos, T, c.nHeads(),
                c.nKvHeads(), c.headSize(), T);
        linear(gr, b, prefix, LinearModule.O_PROJ, b.xMid, b.attOut);
        gr.task(prefix + "attn_residual", VectorOps::axpyNaive, b.xMid, b.xIn, 1f, T * C);
        gr.task(prefix + "ffn_norm", RmsNorm::forwardNaive, b.xb2, b.rstd2, b.xMid, b.ffnNorm, T, C, eps);
        linear(gr, b, prefix, LinearModule.GATE_PROJ, b.gate, b.xb2);
        linear(gr, b, prefix, LinearModule.UP_PROJ, b.up, b.xb2);
        gr.task(prefix + "swiglu", SwiGlu::forwardNaive, b.hb, b.gate, b.up, T * H);
        linear(gr, b, prefix, LinearModule.DOWN_PROJ, b.out, b.hb);
        gr.task(prefix + "ffn_residual", VectorOps::axpyNaive, b.out, b.xMid, 1f, T * C);
    }

    /** y = W x (+ s·(B A dropout(x) + bias) when the module is adapted), as TrainGraph.linear. */
    private void linear(Graph gr, Block b, String prefix, LinearModule mod, float[] y, float[] x) {
        String id = prefix + mod.peftName;
        b.w[mod.ordinal()].matmul(gr, id, y, x, T);
        Branch br = b.lora[mod.ordinal()];
        if (br == null) {
            return;
        }
        LoraLayer ll = br.ll;
        float[] in = x;
        if (br.in != null) {
            gr.task(id + "_dropout", Dropout::forwardNaive, br.in, x, br.seed, b.drop, T * ll.in);
            in = br.in;
        }
        gr.task(id + "_lora_a", Matmul::forwardNaive, br.ax, in, p, br.aOff, T, ll.r, ll.in);
        gr.task(id + "_lora_b", Matmul::forwardNaive, br.bax, br.ax, p, br.bOff, T, ll.out, ll.r);
        gr.task(id + "_lora_add", VectorOps::axpyNaive, y, br.bax, ll.scaling, T * ll.out);
        if (ll.bias != null) {
            gr.task(id + "_lora_bias", Matmul::forwardNaive, br.biasOut, br.ones, p, br.biasOff, T, ll.out, 1);
            gr.task(id + "_lora_bias_add", VectorOps::axpyNaive, y, br.biasOut, ll.scaling, T * ll.out);
        }
    }

    private void lossGraph(float[] xL, float[] xbF, float[] rstdF, float[] logits, float[] probs, DeviceMatrix out) {
        Graph gr = plan.graph("loss");
        float[] norm = m.outputNorm().clone();
        gr.copyIn(Mode.FIRST_EXECUTION, DeviceMatrix.buffers(out)).copyIn(Mode.FIRST_EXECUTION, norm, xbF, rstdF, logits, probs, losses)
                .copyIn(Mode.EVERY_EXECUTION, targets);
        gr.task("output_norm", RmsNorm::forwardNaive, xbF, rstdF, xL, norm, T, c.dim(), c.rmsEps());
        out.matmul(gr, "output", logits, xbF, T);
        gr.task("cross_entropy", CrossEntropy::forwardNaive, losses, probs, logits, targets, T, c.vocabSize());
        gr.copyOut(Mode.EVERY_EXECUTION, losses);
    }

    /** dlogits overwrite the logits. */
    private void headGraph(float[] xL, float[] xbF, float[] rstdF, float[] logits, float[] probs, DeviceMatrix out,
                           float[] dResid) {
        Graph gr = plan.graph("head_bwd");
        float[] norm = m.outputNorm().clone();
        float[] dxbF = new float[T * c.dim()];
        gr.copyIn(Mode.EVERY_EXECUTION, dlosses).copyIn(Mode.FIRST_EXECUTION, norm, dxbF, dResid);
        gr.task("cross_entropy_bwd", CrossEntropy::backwardNaive, logits, probs, targets, dlosses, T, c.vocabSize());
        out.backward(gr, "output_bwd", dxbF, logits, T, false);
        gr.task("output_norm_bwd", RmsNorm::backwardNaive, dResid, dxbF, xL, norm, rstdF, T, c.dim());
    }

    /** dResid holds dL/d(block output) on entry and dL/d(block input) on exit; as TrainGraph.layerBackward. */
    private void blockBackward(Graph gr, Block b, float[] dResid) {
        int C = c.dim(), H = c.hiddenDim();
        int halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES ? 1 : 0;
        float[] dxb = new float[T * C], tmpC = new float[T * C], dq = new float[T * c.qDim()], dk = new float[T * c.kvDim()],
                dv = new float[T * c.kvDim()], dAttOut = new float[T * c.qDim()], dAtt = new float[T * c.nHeads() * T],
                dh = new float[T * H], dgate = new float[T * H], dup = new float[T * H];
        gr.copyIn(Mode.FIRST_EXECUTION, dxb, tmpC, dq, dk, dv, dAttOut, dAtt, dh, dgate, dup);
        // FFN: out = xMid + down(silu(gate)·up)
        linearBackward(gr, b, LinearModule.DOWN_PROJ, dh, false, dResid, b.hb);
        gr.task("swiglu_bwd", SwiGlu::backwardNaive, dgate, dup, dh, b.gate, b.up, T * H);
        linearBackward(gr, b, LinearModule.GATE_PROJ, dxb, false, dgate, b.xb2);
        linearBackward(gr, b, LinearModule.UP_PROJ, dxb, true, dup, b.xb2);
        gr.task("ffn_norm_bwd", RmsNorm::backwardNaive, tmpC, dxb, b.xMid, b.ffnNorm, b.rstd2, T, C);
        gr.task("ffn_residual_bwd", VectorOps::axpyNaive, dResid, tmpC, 1f, T * C);
        // attention: xMid = xIn + o(attention(rope(q), rope(k), v))
        linearBackward(gr, b, LinearModule.O_PROJ, dAttOut, false, dResid, b.attOut);
        gr.task("attention_bwd_q", Attention::backwardQueryNaive, dq, dAtt, dAttOut, b.att, b.k, b.v, T, c.nHeads(),
                c.nKvHeads(), c.headSize());
        gr.task("attention_bwd_kv", Attention::backwardKeyValueNaive, dk, dv, dAtt, dAttOut, b.att, b.q, T, c.nHeads(),
                c.nKvHeads(), c.headSize());
        gr.task("rope_q_bwd", Rope::backwardNaive, dq, b.freqs, b.pos, T, c.nHeads(), c.headSize(), halves);
        gr.task("rope_k_bwd", Rope::backwardNaive, dk, b.freqs, b.pos, T, c.nKvHeads(), c.headSize(), halves);
        linearBackward(gr, b, LinearModule.Q_PROJ, dxb, false, dq, b.xb1);
        linearBackward(gr, b, LinearModule.K_PROJ, dxb, true, dk, b.xb1);
        linearBackward(gr, b, LinearModule.V_PROJ, dxb, true, dv, b.xb1);
        gr.task("attn_norm_bwd", RmsNorm::backwardNaive, tmpC, dxb, b.xIn, b.attnNorm, b.rstd1, T, C);
        gr.task("attn_residual_bwd", VectorOps::axpyNaive, dResid, tmpC, 1f, T * C);
    }

    /** dx (=, or += with accumulate) = Wᵀ dy + the LoRA branch's; its gradients accumulate. As TrainGraph.linearBackward. */
    private void linearBackward(Graph gr, Block b, LinearModule mod, float[] dx, boolean accumulate, float[] dy, float[] x) {
        String id = mod.peftName + "_bwd";
        b.w[mod.ordinal()].backward(gr, id, dx, dy, T, accumulate);
        Branch br = b.lora[mod.ordinal()];
        if (br == null) {
            return;
        }
        LoraLayer ll = br.ll;
        gr.task(id + "_lora_dy", VectorOps::scaleNaive, br.dys, dy, ll.scaling, T * ll.out);
        if (ll.bias != null) {
            gr.task(id + "_lora_dbias", Matmul::backwardWeightNaive, g, br.biasOff, br.dys, br.ones, T, ll.out, 1);
        }
        gr.task(id + "_lora_db", Matmul::backwardWeightNaive, g, br.bOff, br.dys, br.ax, T, ll.out, ll.r);
        gr.task(id + "_lora_dax", Matmul::backwardNaive, br.dax, br.dys, p, br.bOff, T, ll.out, ll.r, 0);
        gr.task(id + "_lora_da", Matmul::backwardWeightNaive, g, br.aOff, br.dax, br.in != null ? br.in : x, T, ll.r, ll.in);
        if (br.in != null) {
            gr.task(id + "_lora_dx", Matmul::backwardNaive, br.dIn, br.dax, p, br.aOff, T, ll.r, ll.in, 0);
            gr.task(id + "_dropout_bwd", Dropout::backwardNaive, dx, br.dIn, br.seed, b.drop, T * ll.in);
        } else {
            gr.task(id + "_lora_dx", Matmul::backwardNaive, dx, br.dax, p, br.aOff, T, ll.r, ll.in, 1);
        }
    }

    // ---- host side ----

    private void load(int[] tokens, int[] tgt, int n, boolean training, float lossScale, long seed) {
        if (n < 1 || n > T) {
            throw new IllegalArgumentException("sequence of " + n + " tokens; this plan takes 1.." + T);
        }
        int C = c.dim();
        Arrays.fill(x0, 0f);
        Arrays.fill(targets, -1);
        Arrays.fill(dlosses, 0f);
        for (int t = 0; t < n; t++) {
            int tok = tokens[t];
            if (tok < 0 || tok >= c.vocabSize()) {
                throw new IllegalArgumentException("token id " + tok + " outside the vocabulary");
            }
            Dequant.row(m.tokenEmbedding(), tok, x0, t * C);
            targets[t] = tgt[t];
            dlosses[t] = lossScale;
        }
        float drop = training ? dropoutP : 0f;
        for (float[] d : dropHolders) {
            d[0] = drop;
        }
        for (Seed s : seeds) {
            s.holder[0] = TrainGraph.maskSeed(seed, s.layer, s.module);
        }
    }

    private double forward(int[] tokens, int[] tgt, int n, boolean training, float lossScale, long seed) {
        load(tokens, tgt, n, training, lossScale, seed);
        for (int l = 0; l < c.nLayers(); l++) {
            runner.execute(idxFwd[l]);
        }
        runner.execute(idxLoss);
        double sum = 0;
        for (int t = 0; t < n; t++) {
            sum += losses[t];
        }
        return sum;
    }

    /** Forward only (no dropout): the summed loss over counted positions, as {@link TrainGraph#loss}. */
    @Override
    public double loss(int[] tokens, int[] tgt, int n) {
        return forward(tokens, tgt, n, false, 0f, 0);
    }

    /** Forward and backward of one sequence; gradients accumulate on the device, as {@link TrainGraph#forwardBackward}. */
    @Override
    public double forwardBackward(int[] tokens, int[] tgt, int n, float lossScale, long seed) {
        double sum = forward(tokens, tgt, n, true, lossScale, seed);
        runner.execute(idxHead);
        for (int l = c.nLayers() - 1; l >= 0; l--) {
            runner.execute(idxBwd[l]);
        }
        return sum;
    }

    /** Σ g² over the gradient accumulated since the last update (from device partial sums). */
    @Override
    public double gradNormSquared() {
        runner.execute(idxNorm);
        double s = 0;
        for (float x : partial) {
            s += x;
        }
        return s;
    }

    /** Copies the gradients into the adapter's host gradient arrays (to name a non-finite one). Call after {@link #gradNormSquared}. */
    @Override
    public void gradientsToHost() {
        runner.copyToHost(idxNorm, g);
        for (Param q : params) {
            System.arraycopy(g, q.off, q.grad, 0, q.grad.length);
        }
    }

    /**
     * One optimizer step on the device with the gradients scaled by {@code gradScale} (clipping), then
     * zeroes the gradients. {@code step} is 1-based; with SGD, beta1 is the momentum.
     */
    @Override
    public void update(float lr, float beta1, float beta2, float eps, float weightDecay, int step, float gradScale) {
        if (adam) {
            AdamW.hyper(hyper, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        } else {
            Sgd.hyper(hyper, lr, beta1, weightDecay, gradScale);
        }
        runner.execute(idxUpdate);
        updated = true;
    }

    /**
     * Sets the optimizer moments the first update starts from (a resumed run), one array per tensor in
     * {@link #paramNames} order; null entries stay zero. Must come before the first {@link #update}.
     */
    @Override
    public void loadMoments(List<float[]> firstMoments, List<float[]> secondMoments) {
        if (updated) {
            throw new IllegalStateException("the moments are on the device already");
        }
        for (int i = 0; i < params.size(); i++) {
            Param q = params.get(i);
            if (firstMoments != null && firstMoments.get(i) != null) {
                System.arraycopy(firstMoments.get(i), 0, mom1, q.off, q.value.length);
            }
            if (adam && secondMoments != null && secondMoments.get(i) != null) {
                System.arraycopy(secondMoments.get(i), 0, mom2, q.off, q.value.length);
            }
        }
    }

    /**
     * Copies the adapter's weights into its host arrays and the moments into {@code firstMoments} /
     * {@code secondMoments} (one array per tensor, or null to skip), after at least one update.
     */
    @Override
    public void syncToHost(List<float[]> firstMoments, List<float[]> secondMoments) {
        if (!updated) {
            return; // nothing has changed on the device
        }
        runner.copyToHost(idxUpdate, adam ? new Object[]{p, mom1, mom2} : new Object[]{p, mom1});
        for (int i = 0; i < params.size(); i++) {
            Param q = params.get(i);
            System.arraycopy(p, q.off, q.value, 0, q.value.length);
            if (firstMoments != null && firstMoments.get(i) != null) {
                System.arraycopy(mom1, q.off, firstMoments.get(i), 0, q.value.length);
            }
            if (adam && secondMoments != null && secondMoments.get(i) != null) {
                System.arraycopy(mom2, q.off, secondMoments.get(i), 0, q.value.length);
            }
        }
    }

    @Override
    public long deviceBytes() {
        long n = 0;
        for (Graph gr : plan.graphs()) {
            for (Object a : gr.copyIn().keySet()) {
                n += java.lang.reflect.Array.getLength(a) * (long) switch (a) {
                    case byte[] b -> 1;
                    case short[] h -> 2;
                    case long[] l -> 8;
                    default -> 4;
                };
            }
        }
        return n;
    }

    /** The trainable tensors in the order the plan holds them, by name. */
    List<String> paramNames() {
        return params.stream().map(Param::name).toList();
    }

    @Override
    public String device() {
        return runner.device();
    }

    @Override
    public void close() {
        runner.close();
    }
}

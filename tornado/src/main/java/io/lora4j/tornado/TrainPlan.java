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
import io.lora4j.model.train.TrainGraph;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * LoRA training on a device: the forward pass with saved activations, the hand-written backward
 * pass and the optimizer step as task graphs, the same math as {@link TrainGraph} and the JVM
 * optimizer. Sequences are padded to {@code maxT} tokens (padded positions have no target and a zero
 * embedding: causal attention keeps them out of the real positions, and their gradients are exact
 * zeros). Frozen weights, saved activations, adapter factors, their gradients and the optimizer
 * moments live on the device; per sequence only embeddings, targets and dropout seeds go in and the
 * per-position losses come back; per step the partial sums of squares of the gradients come back (for
 * clipping) and the step's hyper-parameters go in. Adapter weights and moments come back on demand
 * ({@link #syncToHost}).
 *
 * <pre>
 * graphs, in execution order for one sequence:
 *   fwd_0 .. fwd_{L-1}   one block each: xs[l] → xs[l+1], saving what bwd_l needs
 *   loss                 output norm, logits, cross-entropy → losses (copied out), probabilities
 *   head_bwd             dlogits (over the logits) → dResid (through the output projection and norm)
 *   bwd_{L-1} .. bwd_0   one block each, dResid in place; LoRA gradients accumulate (+=)
 * per optimizer step:
 *   norm                 partial Σg² of every gradient (copied out)
 *   update               AdamW or SGD with the step's hyper-parameters, then gradients := 0
 * </pre>
 * Each graph hands everything on the device to the next ({@link #chain}).
 * Glossary: T = maxT tokens, C dim, Q = NH·HS, KV = NKV·HS, H hidden, V vocab, L layers, r rank.
 */
final class TrainPlan implements AutoCloseable {
    private static final int CHUNK = 4096;

    private final DevicePlan plan = new DevicePlan();
    private final Llama m;
    private final LlamaConfig c;
    private final LoraAdapter ad;
    private final int T;
    private final boolean adam;
    private final float dropoutP;
    private final PlanRunner runner;
    // host ends of the per-sequence inputs and outputs
    private final float[] x0;          // (T, C) embeddings, zero beyond the sequence
    private final int[] targets;       // (T) -1 beyond the sequence
    private final float[] dlosses;     // (T)
    private final float[] losses;      // (T)
    private final List<long[]> seeds = new ArrayList<>();   // per adapted module and graph: the dropout seed
    private final List<long[]> seedModules = new ArrayList<>(); // parallel: {layer, module ordinal}
    private final List<float[]> dropHolders = new ArrayList<>();
    // optimizer state
    private final List<Param> params = new ArrayList<>();
    private final float[] hyper;
    private final int idxLoss, idxHead, idxNorm, idxUpdate;
    private boolean updated;
    private Graph previous; // the last graph of the chain so far
    private final int[] idxFwd, idxBwd;

    /** A trainable tensor on the device: the adapter's array, its gradient, moments, and its partial norms. */
    private record Param(String name, float[] value, float[] grad, float[] m, float[] v, float[] partial) {
    }

    /** One adapted projection of one layer: its factors, gradients and the buffers its branch needs. */
    private static final class Branch {
        final LoraLayer ll;
        final float[] ax, bax, in, dys, dax, dIn, ones, biasOut;
        final long[] fwdSeed, bwdSeed;

        Branch(LoraLayer ll, int T, boolean dropout) {
            this.ll = ll;
            ax = new float[T * ll.r];
            bax = new float[T * ll.out];
            in = dropout ? new float[T * ll.in] : null;
            dys = new float[T * ll.out];
            dax = new float[T * ll.r];
            dIn = dropout ? new float[T * ll.in] : null;
            ones = ll.bias != null ? filled(T, 1f) : null;
            biasOut = ll.bias != null ? new float[T * ll.out] : null;
            fwdSeed = new long[1];
            bwdSeed = new long[1];
        }
    }

    /** What one block's forward saves for its backward (llm.c style named buffers), all (T, ·). */
    private static final class Acts {
        final float[] xIn, rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb;
        final Branch[] lora = new Branch[LinearModule.values().length];
        final float[] freqs, attnNorm, ffnNorm;
        final int[] pos;

        Acts(LlamaConfig c, int T, float[] xIn, Llama m, int l) {
            this.xIn = xIn;
            freqs = m.ropeFreqs().clone(); // each block's graph has its own small arrays
            attnNorm = m.layer(l).attnNorm();
            ffnNorm = m.layer(l).ffnNorm();
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

        Object[] arrays() {
            return new Object[]{rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb};
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
        this.ad = ad;
        this.T = maxT;
        this.adam = optimizer.equals("adamw");
        this.dropoutP = ad.config().loraDropout();
        int C = c.dim(), L = c.nLayers();
        x0 = new float[T * C];
        targets = new int[T];
        dlosses = new float[T];
        losses = new float[T];
        hyper = new float[adam ? AdamW.HYPER : Sgd.HYPER];
        float[][] xs = new float[L + 1][];
        for (int l = 0; l <= L; l++) {
            xs[l] = l == 0 ? x0 : new float[T * C];
        }
        Acts[] acts = new Acts[L];
        DeviceMatrix[][] w = new DeviceMatrix[L][];
        idxFwd = new int[L];
        for (int l = 0; l < L; l++) {
            acts[l] = new Acts(c, T, xs[l], m, l);
            w[l] = forwardGraph(l, acts[l], xs[l + 1]);
            idxFwd[l] = plan.graphs().size() - 1;
        }
        float[] xbF = new float[T * C], rstdF = new float[T], logits = new float[Math.multiplyExact(T, c.vocabSize())];
        float[] probs = new float[logits.length];
        DeviceMatrix out = DeviceMatrix.of(m.baseOutput());
        lossGraph(xs[L], xbF, rstdF, logits, probs, out);
        idxLoss = plan.graphs().size() - 1;
        float[] dResid = new float[T * C];
        headGraph(xs[L], xbF, rstdF, logits, probs, out, dResid);
        idxHead = plan.graphs().size() - 1;
        idxBwd = new int[L];
        for (int l = L - 1; l >= 0; l--) {
            backwardGraph(l, acts[l], w[l], dResid);
            idxBwd[l] = plan.graphs().size() - 1;
        }
        for (LoraLayer ll : ad.layers()) { // the Trainer's order
            addParam(ll.path() + ".lora_A", ll.a, ll.da);
            addParam(ll.path() + ".lora_B", ll.b, ll.db);
            if (ll.bias != null) {
                addParam(ll.path() + ".lora_B.bias", ll.bias, ll.dbias);
            }
        }
        normGraph();
        idxNorm = plan.graphs().size() - 1;
        updateGraph();
        idxUpdate = plan.graphs().size() - 1;
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

    // ---- forward ----

    private DeviceMatrix[] forwardGraph(int l, Acts a, float[] out) {
        int C = c.dim(), H = c.hiddenDim();
        Llama.Layer lw = m.layer(l);
        int halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES ? 1 : 0;
        Graph g = chain("fwd_" + l);
        if (l == 0) {
            g.copyIn(Mode.EVERY_EXECUTION, a.xIn);
        }
        DeviceMatrix[] w = new DeviceMatrix[LinearModule.values().length];
        for (LinearModule mod : LinearModule.values()) {
            w[mod.ordinal()] = DeviceMatrix.of(mod.weight(lw));
            g.copyIn(Mode.FIRST_EXECUTION, w[mod.ordinal()].arrays());
        }
        float[] freqs = a.freqs, attnNorm = a.attnNorm, ffnNorm = a.ffnNorm;
        int[] pos = a.pos;
        float[] drop = new float[1];
        dropHolders.add(drop);
        g.copyIn(Mode.FIRST_EXECUTION, freqs, attnNorm, ffnNorm, pos, out).copyIn(Mode.EVERY_EXECUTION, drop);
        g.copyIn(Mode.FIRST_EXECUTION, a.arrays());
        for (LinearModule mod : LinearModule.values()) {
            LoraLayer ll = ad.get(l, mod);
            if (ll != null) {
                Branch b = new Branch(ll, T, dropoutP > 0);
                a.lora[mod.ordinal()] = b;
                g.copyIn(Mode.FIRST_EXECUTION, ll.a, ll.b, b.ax, b.bax).copyIn(Mode.EVERY_EXECUTION, b.fwdSeed);
                if (b.in != null) {
                    g.copyIn(Mode.FIRST_EXECUTION, b.in);
                }
                if (ll.bias != null) {
                    g.copyIn(Mode.FIRST_EXECUTION, ll.bias, b.ones, b.biasOut);
                }
                seeds.add(b.fwdSeed);
                seedModules.add(new long[]{l, mod.ordinal()});
            }
        }
        float eps = c.rmsEps();
        g.task("attn_norm", RmsNorm::forwardNaive, a.xb1, a.rstd1, a.xIn, attnNorm, T, C, eps);
        linear(g, a, w, drop, LinearModule.Q_PROJ, a.q, a.xb1);
        linear(g, a, w, drop, LinearModule.K_PROJ, a.k, a.xb1);
        linear(g, a, w, drop, LinearModule.V_PROJ, a.v, a.xb1);
        g.task("rope_q", Rope::forwardNaive, a.q, freqs, pos, T, c.nHeads(), c.headSize(), halves);
        g.task("rope_k", Rope::forwardNaive, a.k, freqs, pos, T, c.nKvHeads(), c.headSize(), halves);
        g.task("attention", Attention::forwardNaive, a.attOut, a.att, a.q, a.k, a.v, pos, T, c.nHeads(), c.nKvHeads(),
                c.headSize(), T);
        linear(g, a, w, drop, LinearModule.O_PROJ, a.xMid, a.attOut);
        g.task("attn_residual", VectorOps::axpyNaive, a.xMid, a.xIn, 1f, T * C);
        g.task("ffn_norm", RmsNorm::forwardNaive, a.xb2, a.rstd2, a.xMid, ffnNorm, T, C, eps);
        linear(g, a, w, drop, LinearModule.GATE_PROJ, a.gate, a.xb2);
        linear(g, a, w, drop, LinearModule.UP_PROJ, a.up, a.xb2);
        g.task("swiglu", SwiGlu::forwardNaive, a.hb, a.gate, a.up, T * H);
        linear(g, a, w, drop, LinearModule.DOWN_PROJ, out, a.hb);
        g.task("ffn_residual", VectorOps::axpyNaive, out, a.xMid, 1f, T * C);
        return w;
    }

    /** y = W x (+ s·(B A dropout(x) + bias) when the module is adapted), as TrainGraph.linear. */
    private void linear(Graph g, Acts a, DeviceMatrix[] w, float[] drop, LinearModule mod, float[] y, float[] x) {
        String id = mod.peftName;
        w[mod.ordinal()].matmul(g, id, y, x, T);
        Branch b = a.lora[mod.ordinal()];
        if (b == null) {
            return;
        }
        LoraLayer ll = b.ll;
        float[] in = x;
        if (b.in != null) {
            g.task(id + "_dropout", Dropout::forwardNaive, b.in, x, b.fwdSeed, drop, T * ll.in);
            in = b.in;
        }
        g.task(id + "_lora_a", Matmul::forwardNaive, b.ax, in, ll.a, T, ll.r, ll.in);
        g.task(id + "_lora_b", Matmul::forwardNaive, b.bax, b.ax, ll.b, T, ll.out, ll.r);
        g.task(id + "_lora_add", VectorOps::axpyNaive, y, b.bax, ll.scaling, T * ll.out);
        if (ll.bias != null) {
            g.task(id + "_lora_bias", Matmul::forwardNaive, b.biasOut, b.ones, ll.bias, T, ll.out, 1);
            g.task(id + "_lora_bias_add", VectorOps::axpyNaive, y, b.biasOut, ll.scaling, T * ll.out);
        }
    }

    /** logits (T, V) from the forward; probs (T, V) the softmax (device tasks never alias arguments). */
    private void lossGraph(float[] xL, float[] xbF, float[] rstdF, float[] logits, float[] probs, DeviceMatrix out) {
        Graph g = chain("loss");
        float[] norm = m.outputNorm();
        g.copyIn(Mode.FIRST_EXECUTION, out.arrays()).copyIn(Mode.FIRST_EXECUTION, norm, xbF, rstdF, logits, probs, losses)
                .copyIn(Mode.EVERY_EXECUTION, targets);
        g.task("output_norm", RmsNorm::forwardNaive, xbF, rstdF, xL, norm, T, c.dim(), c.rmsEps());
        out.matmul(g, "output", logits, xbF, T);
        g.task("cross_entropy", CrossEntropy::forwardNaive, losses, probs, logits, targets, T, c.vocabSize());
        g.copyOut(Mode.EVERY_EXECUTION, losses);
    }

    /** dlogits overwrite logits. */
    private void headGraph(float[] xL, float[] xbF, float[] rstdF, float[] logits, float[] probs, DeviceMatrix out, float[] dResid) {
        Graph g = chain("head_bwd");
        float[] norm = m.outputNorm();
        float[] dxbF = new float[T * c.dim()];
        g.copyIn(Mode.EVERY_EXECUTION, dlosses).copyIn(Mode.FIRST_EXECUTION, dxbF, dResid);
        g.task("cross_entropy_bwd", CrossEntropy::backwardNaive, logits, probs, targets, dlosses, T, c.vocabSize());
        out.backward(g, "output_bwd", dxbF, logits, T, false);
        g.task("output_norm_bwd", RmsNorm::backwardNaive, dResid, dxbF, xL, norm, rstdF, T, c.dim());
    }

    // ---- backward ----

    private void backwardGraph(int l, Acts a, DeviceMatrix[] w, float[] dResid) {
        int C = c.dim(), H = c.hiddenDim();
        int halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES ? 1 : 0;
        Graph g = chain("bwd_" + l);
        float[] freqs = a.freqs, attnNorm = a.attnNorm, ffnNorm = a.ffnNorm;
        int[] pos = a.pos;
        float[] drop = new float[1];
        dropHolders.add(drop);
        g.copyIn(Mode.EVERY_EXECUTION, drop);
        float[] dxb = new float[T * C], tmpC = new float[T * C], dq = new float[T * c.qDim()], dk = new float[T * c.kvDim()],
                dv = new float[T * c.kvDim()], dAttOut = new float[T * c.qDim()], dAtt = new float[T * c.nHeads() * T],
                dh = new float[T * H], dgate = new float[T * H], dup = new float[T * H];
        g.copyIn(Mode.FIRST_EXECUTION, dxb, tmpC, dq, dk, dv, dAttOut, dAtt, dh, dgate, dup);
        for (LinearModule mod : LinearModule.values()) {
            Branch b = a.lora[mod.ordinal()];
            if (b == null) {
                continue;
            }
            LoraLayer ll = b.ll;
            if (b.in != null) {
                g.copyIn(Mode.FIRST_EXECUTION, b.dIn);
            }
            g.copyIn(Mode.EVERY_EXECUTION, b.bwdSeed).copyIn(Mode.FIRST_EXECUTION, b.dys, b.dax, ll.da, ll.db);
            if (ll.bias != null) {
                g.copyIn(Mode.FIRST_EXECUTION, ll.dbias);
            }
            seeds.add(b.bwdSeed);
            seedModules.add(new long[]{l, mod.ordinal()});
        }
        // FFN: out = xMid + down(silu(gate)·up)
        linearBackward(g, a, w, drop, LinearModule.DOWN_PROJ, dh, false, dResid, a.hb);
        g.task("swiglu_bwd", SwiGlu::backwardNaive, dgate, dup, dh, a.gate, a.up, T * H);
        linearBackward(g, a, w, drop, LinearModule.GATE_PROJ, dxb, false, dgate, a.xb2);
        linearBackward(g, a, w, drop, LinearModule.UP_PROJ, dxb, true, dup, a.xb2);
        g.task("ffn_norm_bwd", RmsNorm::backwardNaive, tmpC, dxb, a.xMid, ffnNorm, a.rstd2, T, C);
        g.task("ffn_residual_bwd", VectorOps::axpyNaive, dResid, tmpC, 1f, T * C);
        // attention: xMid = xIn + o(attention(rope(q), rope(k), v))
        linearBackward(g, a, w, drop, LinearModule.O_PROJ, dAttOut, false, dResid, a.attOut);
        g.task("attention_bwd_q", Attention::backwardQueryNaive, dq, dAtt, dAttOut, a.att, a.k, a.v, T, c.nHeads(),
                c.nKvHeads(), c.headSize());
        g.task("attention_bwd_kv", Attention::backwardKeyValueNaive, dk, dv, dAtt, dAttOut, a.att, a.q, T, c.nHeads(),
                c.nKvHeads(), c.headSize());
        g.task("rope_q_bwd", Rope::backwardNaive, dq, freqs, pos, T, c.nHeads(), c.headSize(), halves);
        g.task("rope_k_bwd", Rope::backwardNaive, dk, freqs, pos, T, c.nKvHeads(), c.headSize(), halves);
        linearBackward(g, a, w, drop, LinearModule.Q_PROJ, dxb, false, dq, a.xb1);
        linearBackward(g, a, w, drop, LinearModule.K_PROJ, dxb, true, dk, a.xb1);
        linearBackward(g, a, w, drop, LinearModule.V_PROJ, dxb, true, dv, a.xb1);
        g.task("attn_norm_bwd", RmsNorm::backwardNaive, tmpC, dxb, a.xIn, attnNorm, a.rstd1, T, C);
        g.task("attn_residual_bwd", VectorOps::axpyNaive, dResid, tmpC, 1f, T * C);
    }

    /** dx (=, or += with accumulate) = Wᵀ dy + the LoRA branch's; its gradients accumulate. As TrainGraph.linearBackward. */
    private void linearBackward(Graph g, Acts a, DeviceMatrix[] w, float[] drop, LinearModule mod, float[] dx,
                                boolean accumulate, float[] dy, float[] x) {
        String id = mod.peftName + "_bwd";
        w[mod.ordinal()].backward(g, id, dx, dy, T, accumulate);
        Branch b = a.lora[mod.ordinal()];
        if (b == null) {
            return;
        }
        LoraLayer ll = b.ll;
        g.task(id + "_lora_dy", VectorOps::scaleNaive, b.dys, dy, ll.scaling, T * ll.out);
        if (ll.bias != null) {
            g.task(id + "_lora_dbias", Matmul::backwardWeightNaive, ll.dbias, b.dys, b.ones, T, ll.out, 1);
        }
        g.task(id + "_lora_db", Matmul::backwardWeightNaive, ll.db, b.dys, b.ax, T, ll.out, ll.r);
        g.task(id + "_lora_dax", Matmul::backwardNaive, b.dax, b.dys, ll.b, T, ll.out, ll.r, 0);
        g.task(id + "_lora_da", Matmul::backwardWeightNaive, ll.da, b.dax, b.in != null ? b.in : x, T, ll.r, ll.in);
        if (b.in != null) {
            g.task(id + "_lora_dx", Matmul::backwardNaive, b.dIn, b.dax, ll.a, T, ll.r, ll.in, 0);
            g.task(id + "_dropout_bwd", Dropout::backwardNaive, dx, b.dIn, b.bwdSeed, drop, T * ll.in);
        } else {
            g.task(id + "_lora_dx", Matmul::backwardNaive, dx, b.dax, ll.a, T, ll.r, ll.in, 1);
        }
    }

    // ---- optimizer ----

    private void addParam(String name, float[] value, float[] grad) {
        int n = value.length;
        params.add(new Param(name, value, grad, new float[n], adam ? new float[n] : null, new float[(n + CHUNK - 1) / CHUNK]));
    }

    private void normGraph() {
        Graph g = chain("norm");
        int i = 0;
        for (Param p : params) {
            g.copyIn(Mode.FIRST_EXECUTION, p.partial);
            g.task("sumsq_" + i++, VectorOps::sumSquaresNaive, p.partial, p.grad, p.grad.length, CHUNK);
            g.copyOut(Mode.EVERY_EXECUTION, p.partial).copyOut(Mode.UNDER_DEMAND, p.grad);
        }
    }

    private void updateGraph() {
        Graph g = chain("update");
        g.copyIn(Mode.EVERY_EXECUTION, hyper);
        int i = 0;
        for (Param p : params) {
            g.copyIn(Mode.FIRST_EXECUTION, p.m);
            if (adam) {
                g.copyIn(Mode.FIRST_EXECUTION, p.v);
                g.task("adamw_" + i, AdamW::updateNaive, p.value, p.grad, p.m, p.v, hyper, p.value.length);
            } else {
                g.task("sgd_" + i, Sgd::updateNaive, p.value, p.grad, p.m, hyper, p.value.length);
            }
            g.task("zero_grad_" + i, VectorOps::fillNaive, p.grad, 0f, p.grad.length);
            g.copyOut(Mode.UNDER_DEMAND, p.value, p.m);
            if (adam) {
                g.copyOut(Mode.UNDER_DEMAND, p.v);
            }
            i++;
        }
    }

    /**
     * A new graph that continues the chain: TornadoVM binds consumed arrays only from the graph executed
     * immediately before, and the graphs always run in creation order (a prefix of it for evaluation),
     * so every graph consumes from its predecessor everything the earlier graphs hold on the device,
     * and persists it for its successor. Binding is bookkeeping; nothing is copied.
     */
    private Graph chain(String name) {
        Graph g = plan.graph(name);
        if (previous != null) {
            List<Object> all = new ArrayList<>(previous.consumed().keySet());
            all.addAll(previous.copyIn().keySet());
            Object[] arrays = all.toArray();
            previous.persist(arrays);
            g.consume(previous.name(), arrays);
        }
        previous = g;
        return g;
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
        float p = training ? dropoutP : 0f;
        for (float[] d : dropHolders) {
            d[0] = p;
        }
        for (int i = 0; i < seeds.size(); i++) {
            long[] lm = seedModules.get(i);
            seeds.get(i)[0] = TrainGraph.maskSeed(seed, (int) lm[0], LinearModule.values()[(int) lm[1]]);
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
    double loss(int[] tokens, int[] tgt, int n) {
        return forward(tokens, tgt, n, false, 0f, 0);
    }

    /** Forward and backward of one sequence; gradients accumulate on the device, as {@link TrainGraph#forwardBackward}. */
    double forwardBackward(int[] tokens, int[] tgt, int n, float lossScale, long seed) {
        double sum = forward(tokens, tgt, n, true, lossScale, seed);
        runner.execute(idxHead);
        for (int l = c.nLayers() - 1; l >= 0; l--) {
            runner.execute(idxBwd[l]);
        }
        return sum;
    }

    /** Σ g² over every gradient accumulated since the last update (from device partial sums). */
    double gradNormSquared() {
        runner.execute(idxNorm);
        double s = 0;
        for (Param p : params) {
            for (float x : p.partial) {
                s += x;
            }
        }
        return s;
    }

    /** Copies the gradients to the adapter's host arrays (to name a non-finite one). Call after {@link #gradNormSquared}. */
    void gradientsToHost() {
        for (Param p : params) {
            runner.copyToHost(idxNorm, p.grad);
        }
    }

    /**
     * One optimizer step on the device with the gradients scaled by {@code gradScale} (clipping), then
     * zeroes the gradients. {@code step} is 1-based.
     */
    void update(float lr, float beta1, float beta2, float eps, float weightDecay, int step, float gradScale) {
        if (adam) {
            AdamW.hyper(hyper, lr, beta1, beta2, eps, weightDecay, step, gradScale);
        } else {
            Sgd.hyper(hyper, lr, beta1, weightDecay, gradScale);
        }
        runner.execute(idxUpdate);
        updated = true;
    }

    /**
     * Sets the optimizer moments the first update starts from (a resumed run), in {@link #paramNames}
     * order; null entries stay zero. Must come before the first {@link #update}.
     */
    void loadMoments(List<float[]> firstMoments, List<float[]> secondMoments) {
        if (updated) {
            throw new IllegalStateException("the moments are on the device already");
        }
        for (int i = 0; i < params.size(); i++) {
            Param p = params.get(i);
            if (firstMoments != null && firstMoments.get(i) != null) {
                System.arraycopy(firstMoments.get(i), 0, p.m, 0, p.m.length);
            }
            if (adam && secondMoments != null && secondMoments.get(i) != null) {
                System.arraycopy(secondMoments.get(i), 0, p.v, 0, p.v.length);
            }
        }
    }

    /** Copies the adapter's weights and the optimizer moments back into host arrays (after at least one update). */
    void syncToHost(List<float[]> firstMoments, List<float[]> secondMoments) {
        if (!updated) {
            return; // nothing has changed on the device
        }
        int i = 0;
        for (Param p : params) {
            runner.copyToHost(idxUpdate, adam ? new Object[]{p.value, p.m, p.v} : new Object[]{p.value, p.m});
            if (firstMoments != null) {
                System.arraycopy(p.m, 0, firstMoments.get(i), 0, p.m.length);
            }
            if (secondMoments != null && adam) {
                System.arraycopy(p.v, 0, secondMoments.get(i), 0, p.v.length);
            }
            i++;
        }
    }

    /** The trainable tensors in the order the plan holds them, by name. */
    List<String> paramNames() {
        return params.stream().map(Param::name).toList();
    }

    String device() {
        return runner.device();
    }

    @Override
    public void close() {
        runner.close();
    }
}

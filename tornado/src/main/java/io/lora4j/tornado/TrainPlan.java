package io.lora4j.tornado;

import io.lora4j.kernels.AdamW;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Sgd;
import io.lora4j.kernels.VectorOps;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.block.Buf;
import io.lora4j.model.block.LlamaBlock;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.ParamStore;
import io.lora4j.model.train.DeviceTraining;
import io.lora4j.model.train.TrainGraph;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * LoRA and AdaLoRA training on a device: {@link LlamaBlock}'s forward and backward recorded by {@link DeviceOps}
 * as task graphs, and the optimizer step; the same math as {@link TrainGraph} with gradient
 * checkpointing (which gives TrainGraph's gradients exactly) and the JVM optimizers.
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
 * zeros. AdaLoRA branches carry their singular values E (gradients dA, dE, dB on the device); the
 * orthogonal regulariser's gradient and the rank allocator's cut come from the host ({@link #addToGradients},
 * {@link #maskValues}), which keeps the allocator. {@code modules_to_save}: a trainable lm_head is the output
 * projection from the parameter buffer (with its weight gradient), a trainable embed_tokens is gathered
 * there by token id on the device (its gradient scattered back from the first block's input gradient). Per sequence only embeddings, targets and dropout seeds go in and the per-position losses
 * come back; per step the partial sums of squares of the gradient come back (for clipping) and the
 * step's hyper-parameters go in. The adapter and the moments come back on demand ({@link #syncToHost}).
 *
 * <pre>
 * graphs, in execution order (evaluation runs the first L+1):
 *   fwd_0 .. fwd_{L-1}   one block each: xs[l] → xs[l+1] (fwd_0 first: the rank mask, the embed_tokens rows)
 *   loss                 output norm, logits, cross-entropy → losses (copied out), probabilities
 *   head_bwd             dlogits (over the logits) → dResid, through the output projection and norm
 *   bwd_{L-1} .. bwd_0   recompute block l from xs[l], then its backward; dResid in place, grads += (bwd_0 last:
 *                        the embed_tokens gradient)
 *   norm                 (+ the host's gradient) partial Σg² of grads (copied out)   } once per optimizer step
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
    private final float[] x0;       // (T, C) embeddings, zero beyond the sequence (gathered on the device with embed_tokens)
    private final int[] tokens;     // (T) -1 beyond the sequence (embed_tokens: the device gathers the rows)
    private final int[] targets;    // (T) -1 beyond the sequence
    private final float[] dlosses;  // (T)
    private final float[] losses;   // (T)
    private final List<Seed> seeds = new ArrayList<>();
    private final List<float[]> dropHolders = new ArrayList<>();
    // the adapter's store, flat: uploaded as it is, brought back on demand
    private final ParamStore store;
    private final float[] p, g, mom1, mom2, partial, hyper;
    /** AdaLoRA: the host's gradient to add before the norm (orthogonal regulariser) and the allocator's mask; else null. */
    private final float[] extraGrad, keep;
    private final ParamStore.View embed;
    private boolean maskPending;
    private final int idxLoss, idxHead, idxNorm, idxUpdate;
    private final int[] idxFwd, idxBwd;
    private boolean updated;


    /** The dropout seed holder of one adapted projection in one graph. */
    private record Seed(long[] holder, int layer, LinearModule module) {
    }

    /** A block's activations in one graph (llm.c style named buffers, all (T, ·)), its constants and its executor. */
    private static final class Block {
        final float[] xIn, rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb, out;
        final float[] freqs, attnNorm, ffnNorm, drop = new float[1];
        final int[] pos, n;
        DeviceOps ops;

        Block(LlamaConfig c, int T, float[] xIn, float[] out, Llama m, int l) {
            this.xIn = xIn;
            this.out = out;
            freqs = m.ropeFreqs().clone(); // each graph owns its small constant arrays
            attnNorm = m.layer(l).attnNorm().clone();
            ffnNorm = m.layer(l).ffnNorm().clone();
            pos = positions(T);
            n = new int[]{T};
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
            return new Object[]{rstd1, xb1, q, k, v, att, attOut, xMid, rstd2, xb2, gate, up, hb, freqs, attnNorm, ffnNorm, pos, n};
        }

        /** The block's buffer names: ATT_PROJ is computed into X_MID and FFN_PROJ into X_OUT, so the residual adds run in place. */
        float[] forward(Buf name) {
            return switch (name) {
                case X -> xIn;
                case RSTD1 -> rstd1;
                case XB1 -> xb1;
                case Q -> q;
                case K -> k;
                case V -> v;
                case ATT -> att;
                case ATT_OUT -> attOut;
                case ATT_PROJ, X_MID -> xMid;
                case RSTD2 -> rstd2;
                case XB2 -> xb2;
                case GATE -> gate;
                case UP -> up;
                case HB -> hb;
                case FFN_PROJ, X_OUT -> out;
                default -> null;
            };
        }
    }

    /**
     * @param optimizer "adamw" or "sgd"
     */
    TrainPlan(Llama m, LoraAdapter ad, int maxT, String optimizer, Function<DevicePlan, PlanRunner> runners) {
        DeviceOps.refuseBottlenecks(ad);
        if (ad.config().useDora()) {
            throw new IllegalArgumentException("DoRA (use_dora) needs the row norms of W + s·B·A again after every step; the "
                    + "tornado backend's training plan does not compute them (it runs DoRA adapters for inference); train "
                    + "it with --backend jvm");
        }
        this.m = m;
        this.c = m.config();
        this.T = maxT;
        this.adam = optimizer.equals("adamw");
        this.dropoutP = ad.config().loraDropout();
        int C = c.dim(), L = c.nLayers();
        store = ad.store();
        int n = store.size();
        p = store.values;
        g = store.grads;
        mom1 = store.firstMoments();
        mom2 = adam ? store.secondMoments() : new float[1];
        partial = new float[(n + CHUNK - 1) / CHUNK];
        extraGrad = ad.adaLora() != null ? new float[n] : null;
        keep = ad.adaLora() != null ? filled(n, 1f) : null;
        embed = ad.embedTokens;
        hyper = new float[adam ? AdamW.HYPER : Sgd.HYPER];
        x0 = new float[T * C];
        tokens = new int[T];
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
                if (keep != null) {
                    fg.copyIn(Mode.EVERY_EXECUTION, keep);
                    fg.task("rank_mask", VectorOps::mulNaive, p, keep, n); // the allocator's cut after the last step (else ones)
                }
                if (embed != null) { // modules_to_save embed_tokens: the rows of the trainable copy, on the device
                    fg.copyIn(Mode.FIRST_EXECUTION, x0).copyIn(Mode.EVERY_EXECUTION, tokens);
                    fg.task("embed_tokens", VectorOps::gatherRowsNaive, x0, p, embed.off(), tokens, T, C);
                } else {
                    fg.copyIn(Mode.EVERY_EXECUTION, x0);
                }
            }
            fg.copyIn(Mode.FIRST_EXECUTION, DeviceMatrix.buffers(w[l])); // uploaded once, used again by bwd_l
            fg.copyIn(Mode.FIRST_EXECUTION, xs[l + 1]);
            LlamaBlock.forward(block(fg, l, ad, xs[l], xs[l + 1], w[l], null).ops);
            idxFwd[l] = l;
        }
        float[] xbF = new float[T * C], rstdF = new float[T], logits = new float[Math.multiplyExact(T, c.vocabSize())];
        float[] probs = new float[logits.length];
        // modules_to_save lm_head: the trainable copy in the parameter buffer (F32), else the frozen base output
        DeviceMatrix out = ad.lmHead != null ? DeviceMatrix.inParams("lm_head", p, ad.lmHead.off(), c.vocabSize(), C)
                : DeviceMatrix.of(m.baseOutput());
        float[] dResid = new float[T * C], dxbF = new float[T * C];
        Function<Buf, float[]> head = b -> switch (b) {
            case X -> xs[L];
            case XF -> xbF;
            case RSTD_F -> rstdF;
            case LOGITS, D_LOGITS -> logits; // dlogits overwrite the logits
            case PROBS -> probs;
            case LOSSES -> losses;
            case D_XF -> dxbF;
            case D_X -> dResid;
            default -> null;
        };
        Graph lg = plan.graph("loss");
        float[] norm = m.outputNorm().clone();
        int[] all = {T};
        for (Object a : DeviceMatrix.buffers(out)) {
            if (a != p) { // a trainable lm_head lives in the parameter buffer, which another graph copies in
                lg.copyIn(Mode.FIRST_EXECUTION, a);
            }
        }
        lg.copyIn(Mode.FIRST_EXECUTION, norm, xbF, rstdF, logits, probs, losses, all).copyIn(Mode.EVERY_EXECUTION, targets);
        LlamaBlock.head(new DeviceOps(lg, c, T, null, all, null, null, null, null, head).head(norm, out).loss(targets, dlosses), true);
        lg.copyOut(Mode.EVERY_EXECUTION, losses);
        idxLoss = L;
        Graph hg = plan.graph("head_bwd");
        hg.copyIn(Mode.EVERY_EXECUTION, dlosses).copyIn(Mode.FIRST_EXECUTION, dxbF, dResid);
        DeviceOps headOps = new DeviceOps(hg, c, T, null, all, null, null, null, null, head).head(norm, out).loss(targets, dlosses);
        if (ad.lmHead != null) {
            headOps.headGradient(g, ad.lmHead.off());
        }
        LlamaBlock.headBackward(headOps);
        idxHead = L + 1;
        idxBwd = new int[L];
        float[] dxb = new float[T * C], dq = new float[T * c.qDim()], dk = new float[T * c.kvDim()], dv = new float[T * c.kvDim()],
                dAttOut = new float[T * c.qDim()], dh = new float[T * c.hiddenDim()], dgate = new float[T * c.hiddenDim()],
                dup = new float[T * c.hiddenDim()];
        Function<Buf, float[]> grads = b -> switch (b) {
            case D_X -> dResid;
            case D_XB -> dxb;
            case D_Q -> dq;
            case D_K -> dk;
            case D_V -> dv;
            case D_ATT_OUT -> dAttOut;
            case D_HB -> dh;
            case D_GATE -> dgate;
            case D_UP -> dup;
            default -> null;
        };
        for (int l = L - 1; l >= 0; l--) {
            Graph bg = plan.graph("bwd_" + l);
            Block b = block(bg, l, ad, xs[l], new float[T * C], w[l], grads);
            bg.copyIn(Mode.FIRST_EXECUTION, b.out).copyIn(Mode.FIRST_EXECUTION, dxb, dq, dk, dv, dAttOut, dh, dgate, dup);
            LlamaBlock.forward(b.ops.prefix("recompute_")); // same dropout masks, from the same seeds
            LlamaBlock.backward(b.ops.prefix(""));
            if (l == 0 && embed != null) { // dResid is now the gradient of the embedded rows
                bg.task("embed_tokens_bwd", VectorOps::scatterAddRowsNaive, g, embed.off(), dResid, tokens, T, C);
            }
            idxBwd[l] = plan.graphs().size() - 1;
        }
        Graph ng = plan.graph("norm");
        ng.copyIn(Mode.FIRST_EXECUTION, partial);
        if (extraGrad != null) {
            ng.copyIn(Mode.EVERY_EXECUTION, extraGrad);
            ng.task("add_host_gradient", VectorOps::axpyNaive, g, extraGrad, 1f, n);
        }
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
        // the parameters and their gradients go to the device with the first graph whose tasks use them (TornadoVM
        // allocates no buffer for an array a graph only copies in, and a later graph consuming it would find none)
        plan.copyInAtFirstUse(Mode.FIRST_EXECUTION, p);
        plan.copyInAtFirstUse(Mode.FIRST_EXECUTION, g);
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

    /**
     * A block's buffers in graph {@code gr}, which owns them, and its executor over them (with the
     * backward's gradient buffers when {@code backward}); the adapted projections' branches and seeds.
     */
    private Block block(Graph gr, int l, LoraAdapter ad, float[] xIn, float[] out, DeviceMatrix[] w,
                        Function<Buf, float[]> grads) {
        boolean backward = grads != null;
        Block b = new Block(c, T, xIn, out, m, l);
        gr.copyIn(Mode.FIRST_EXECUTION, b.own()).copyIn(Mode.EVERY_EXECUTION, b.drop);
        dropHolders.add(b.drop);
        b.ops = new DeviceOps(gr, c, T, b.pos, b.n, b.freqs, b.attnNorm, b.ffnNorm, w, name -> {
            float[] a = b.forward(name);
            return a != null || grads == null ? a : grads.apply(name);
        });
        if (backward) {
            b.ops.backwardScratch();
        }
        for (LinearModule mod : LinearModule.values()) {
            LoraLayer ll = ad.get(l, mod);
            if (ll == null) {
                continue;
            }
            DeviceOps.Branch br = b.ops.branch(mod, new DeviceOps.Branch(p, g, ll.a.off(), ll.eOff(), ll.b.off(),
                    ll.bias == null ? -1 : ll.bias.off(), ll.scaling, ll.r, ll.in, ll.out, T), dropoutP > 0 ? b.drop : null, backward);
            if (br.seed != null) {
                seeds.add(new Seed(br.seed, l, mod));
            }
        }
        return b;
    }

    // ---- host side ----

    private void load(int[] tokens, int[] tgt, int n, boolean training, float lossScale, long seed) {
        if (n < 1 || n > T) {
            throw new IllegalArgumentException("sequence of " + n + " tokens; this plan takes 1.." + T);
        }
        int C = c.dim();
        Arrays.fill(x0, 0f);
        Arrays.fill(this.tokens, -1);
        Arrays.fill(targets, -1);
        Arrays.fill(dlosses, 0f);
        for (int t = 0; t < n; t++) {
            int tok = tokens[t];
            if (tok < 0 || tok >= c.vocabSize()) {
                throw new IllegalArgumentException("token id " + tok + " outside the vocabulary");
            }
            this.tokens[t] = tok;
            if (embed == null) {
                Dequant.row(m.tokenEmbedding(), tok, x0, t * C);
            }
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
            if (l == 0 && maskPending) {
                Arrays.fill(keep, 1f); // applied once: later steps may grow a cut singular value again
                maskPending = false;
            }
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
        if (extraGrad != null) {
            Arrays.fill(extraGrad, 0f); // added once
        }
        double s = 0;
        for (float x : partial) {
            s += x;
        }
        return s;
    }

    /** Copies the gradients into the store's gradients (to name a non-finite one). Call after {@link #gradNormSquared}. */
    @Override
    public void gradientsToHost() {
        runner.copyToHost(idxNorm, g);
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

    /** Copies the adapter's values and the moments back into the store, after at least one update. */
    @Override
    public void syncToHost() {
        if (!updated) {
            return; // nothing has changed on the device
        }
        runner.copyToHost(idxUpdate, adam ? new Object[]{p, mom1, mom2} : new Object[]{p, mom1});
    }

    @Override
    public void addToGradients(float[] extra) {
        requireAdaLora();
        for (int i = 0; i < extra.length; i++) {
            extraGrad[i] += extra[i];
        }
    }

    @Override
    public void maskValues(float[] mask) {
        requireAdaLora();
        System.arraycopy(mask, 0, keep, 0, keep.length);
        maskPending = true;
    }

    private void requireAdaLora() {
        if (extraGrad == null) {
            throw new IllegalStateException("only an AdaLoRA plan takes host gradients and masks");
        }
    }

    @Override
    public long deviceBytes() {
        return plan.deviceBytes();
    }

    /** The trainable tensors in the order the plan holds them, by name. */
    List<String> paramNames() {
        return store.views().stream().map(ParamStore.View::name).toList();
    }

    void profile(DeviceProfile p) {
        runner.profile(p);
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

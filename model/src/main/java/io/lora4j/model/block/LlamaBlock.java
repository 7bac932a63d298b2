package io.lora4j.model.block;

import io.lora4j.model.block.BlockOps.Heads;
import io.lora4j.model.block.BlockOps.Norm;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.Sublayer;

import static io.lora4j.model.block.Buf.*;
import static io.lora4j.model.arch.LinearModule.*;

/**
 * The Llama block and its output head, written once: forward and backward side by side (llm.c's
 * order: the backward visits the forward's steps in reverse). Every executor runs this text: the JVM
 * backend (batched inference), JVM training, and the TornadoVM backend, which records it as task
 * graphs for inference and for training. No executor knows the order of a block.
 *
 * <pre>
 * block (names are {@link Buf}s; "linear m" = W_m·x, then the adapter hook of every adapter on m):
 *   X ─rmsnorm(attn)→ XB1 ─linear q→ Q ─rope─┐
 *                      ├──linear k→ K ─rope─┼─attention→ ATT_OUT ─linear o→ ATT_PROJ ─bottleneck→ ─(+X)→ X_MID
 *                      └──linear v→ V ──────┘
 *   X_MID ─rmsnorm(ffn)→ XB2 ─linear gate→ GATE ─┐
 *                         └──linear up──→ UP ───┴─swiglu→ HB ─linear down→ FFN_PROJ ─bottleneck→ ─(+X_MID)→ X_OUT
 * adapter hook of branch i on m:  y += s_i·B_i(e_i ⊙ A_i·dropout(x)) (+ s_i·bias_i)
 *                                 DoRA: then y = m_i / ‖W + s_i·B_i A_i‖ ⊙ y  (row norms, constant in backward)
 * bottleneck adapter i (Houlsby):  y = y + s_i·(W_up f(W_down y + b_down) + b_up), in place, adapter after adapter
 * head:
 *   X ─rmsnorm(output)→ XF ─output→ LOGITS ─cross-entropy→ LOSSES (training)
 * </pre>
 */
public final class LlamaBlock {
    private LlamaBlock() {
    }

    private static final LinearModule[] QKV = {Q_PROJ, K_PROJ, V_PROJ};
    private static final Buf[] QKV_OUT = {Q, K, V};
    private static final LinearModule[] GATE_UP = {GATE_PROJ, UP_PROJ};
    private static final Buf[] GATE_UP_OUT = {GATE, UP};
    private static final LinearModule[] O = {O_PROJ};
    private static final Buf[] O_OUT = {ATT_PROJ};
    private static final LinearModule[] DOWN = {DOWN_PROJ};
    private static final Buf[] DOWN_OUT = {FFN_PROJ};

    /** One block: X → X_OUT. */
    public static void forward(BlockOps o) {
        o.rmsNorm(XB1, RSTD1, X, Norm.ATTN);
        linear(o, QKV, QKV_OUT, XB1);
        o.rope(Q, Heads.QUERY);
        o.rope(K, Heads.KEY_VALUE);
        o.attention(ATT_OUT, ATT, Q, K, V);
        linear(o, O, O_OUT, ATT_OUT);
        bottlenecks(o, Sublayer.ATTENTION, ATT_PROJ);
        o.add(X_MID, X, ATT_PROJ);
        o.rmsNorm(XB2, RSTD2, X_MID, Norm.FFN);
        linear(o, GATE_UP, GATE_UP_OUT, XB2);
        o.swiglu(HB, GATE, UP);
        linear(o, DOWN, DOWN_OUT, HB);
        bottlenecks(o, Sublayer.FFN, FFN_PROJ);
        o.add(X_OUT, X_MID, FFN_PROJ);
    }

    /**
     * One block's backward over the activations its forward left: D_X holds dL/dX_OUT on entry and
     * dL/dX on exit. The residual adds pass D_X through unchanged, so D_X also stands for dL/dX_MID,
     * dL/dFFN_PROJ and dL/dATT_PROJ where they are used (after a bottleneck adapter, the projection's gradient is D_PROJ).
     */
    public static void backward(BlockOps.Backward o) {
        linearBackward(o, DOWN_PROJ, D_HB, false, bottlenecksBackward(o, Sublayer.FFN), HB);
        o.swigluBackward(D_GATE, D_UP, D_HB, GATE, UP);
        linearBackward(o, GATE_PROJ, D_XB, false, D_GATE, XB2);
        linearBackward(o, UP_PROJ, D_XB, true, D_UP, XB2);
        o.rmsNormBackward(D_X, true, D_XB, X_MID, Norm.FFN, RSTD2);
        linearBackward(o, O_PROJ, D_ATT_OUT, false, bottlenecksBackward(o, Sublayer.ATTENTION), ATT_OUT);
        o.attentionBackward(D_Q, D_K, D_V, D_ATT_OUT, ATT, Q, K, V);
        o.ropeBackward(D_Q, Heads.QUERY);
        o.ropeBackward(D_K, Heads.KEY_VALUE);
        linearBackward(o, Q_PROJ, D_XB, false, D_Q, XB1);
        linearBackward(o, K_PROJ, D_XB, true, D_K, XB1);
        linearBackward(o, V_PROJ, D_XB, true, D_V, XB1);
        o.rmsNormBackward(D_X, true, D_XB, X, Norm.ATTN, RSTD1);
    }

    /** The output head: X (the last block's output) → LOGITS, and with {@code loss} the per-token LOSSES. */
    public static void head(BlockOps o, boolean loss) {
        o.rmsNorm(XF, RSTD_F, X, Norm.OUTPUT);
        o.logits(LOGITS, XF);
        if (loss) {
            o.crossEntropy(LOSSES, PROBS, LOGITS);
        }
    }

    /** The head's backward from the per-token loss weights: leaves dL/dX in D_X (assigned). */
    public static void headBackward(BlockOps.Backward o) {
        o.crossEntropyBackward(D_LOGITS, PROBS);
        o.logitsBackward(D_XF, D_LOGITS, XF);
        o.rmsNormBackward(D_X, false, D_XF, X, Norm.OUTPUT, RSTD_F);
    }

    /** The bottleneck adapters after sublayer s, one after another, in place on its output y. */
    private static void bottlenecks(BlockOps o, Sublayer s, Buf y) {
        for (int i = 0, n = o.bottlenecks(s); i < n; i++) {
            o.bottleneck(s, i, y);
        }
    }

    /**
     * The backward of the bottleneck adapter after sublayer s, from the residual stream's D_X: returns the buffer
     * that then holds the gradient of the sublayer's own output (D_X itself when there is none). Trainers train
     * one adapter at a time, so a sublayer has at most one.
     */
    private static Buf bottlenecksBackward(BlockOps.Backward o, Sublayer s) {
        int n = o.bottlenecks(s);
        if (n > 1) {
            throw new UnsupportedOperationException(s.moduleName + ": backward through " + n + " stacked bottleneck adapters");
        }
        if (n == 0) {
            return D_X;
        }
        o.bottleneckBackward(s, 0, D_PROJ, D_X);
        return D_PROJ;
    }

    /** Projections sharing input x, then the adapter hook of each, branch after branch. */
    private static void linear(BlockOps o, LinearModule[] ms, Buf[] ys, Buf x) {
        o.matmul(ms, ys, x);
        for (int j = 0; j < ms.length; j++) {
            for (int i = 0, n = o.adapters(ms[j]); i < n; i++) {
                o.lowRank(ms[j], i, ys[j], x);
                o.bias(ms[j], i, ys[j]);
                if (o.decomposed(ms[j], i)) {
                    o.magnitude(ms[j], i, ys[j]);
                }
            }
        }
    }

    /**
     * A DoRA branch's magnitude step first (it rescaled everything before it, so the base projection and
     * the branch see its rescaled gradient, in D_SCALED: dy may be the residual stream's D_X); then dx (=, or
     * += with accumulate) W_mᵀ dy, then each branch's gradients and its share of dx. A DoRA branch must be
     * its projection's only one: the others would each need the gradient at their own place in the order.
     */
    private static void linearBackward(BlockOps.Backward o, LinearModule m, Buf dx, boolean accumulate, Buf dy, Buf x) {
        int n = o.adapters(m);
        Buf d = dy;
        if (n == 1 && o.decomposed(m, 0)) {
            o.magnitudeBackward(m, 0, D_SCALED, dy);
            d = D_SCALED;
        }
        o.matmulBackward(m, dx, accumulate, d);
        for (int i = 0; i < n; i++) {
            if (n > 1 && o.decomposed(m, i)) {
                throw new UnsupportedOperationException(m.peftName + ": backward through a DoRA branch "
                        + "beside other branches on the same projection");
            }
            o.biasBackward(m, i, d);
            o.lowRankBackward(m, i, dx, d, x);
        }
    }
}

package io.lora4j.model.block;

import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.Sublayer;

/**
 * The operations a {@link LlamaBlock} program is written in: each is one kernel op of
 * {@code kernels/} over named {@link Buf buffers}. An executor implements them: the JVM backend calls
 * the Vector-API kernels, the TornadoVM backend records device tasks. Which block, which tokens and
 * positions, and which adapters are active are the executor's state, not arguments.
 */
public interface BlockOps {

    /** Which norm gain: the block's attention or FFN norm, or the model's final norm. */
    enum Norm { ATTN, FFN, OUTPUT }

    /** Which heads a RoPE rotates: the NH query heads or the NKV key heads. */
    enum Heads { QUERY, KEY_VALUE }

    /** {@code out = x / rms(x) ⊙ w}, one row per token; rstd keeps 1/rms. */
    void rmsNorm(Buf out, Buf rstd, Buf x, Norm w);

    /** {@code ys[i] = W_{ms[i]} x} for every i: the base projections that share input x (one pass over x where the executor can). */
    void matmul(LinearModule[] ms, Buf[] ys, Buf x);

    /** How many adapter branches projection m has in this block (0 when no active adapter targets it). */
    int adapters(LinearModule m);

    /**
     * Branch i of projection m: {@code y += s·B(e ⊙ A·x)} (e = 1 for LoRA, AdaLoRA's lora_E), with s the
     * branch's scaling times its adapter's weight; while training with lora_dropout, on dropout(x).
     */
    void lowRank(LinearModule m, int i, Buf y, Buf x);

    /** Branch i's {@code lora_B} bias, when it has one: {@code y += s·bias}. */
    void bias(LinearModule m, int i, Buf y);

    /** Whether branch i of projection m is weight-decomposed (DoRA): its hook ends with {@link #magnitude}. */
    boolean decomposed(LinearModule m, int i);

    /**
     * DoRA branch i of m, after its low-rank product: {@code y = (m / ‖W + s·B A‖) ⊙ y}, each output row
     * rescaled by the magnitude over the row norm of the adapted weight (PEFT's {@code lora_magnitude_vector};
     * y holds the result so far, as PEFT's {@code base_result} is). While training with lora_dropout, PEFT's
     * form instead: {@code y += (g − 1) ⊙ (W·dropout(x) + s·B A dropout(x))}.
     */
    void magnitude(LinearModule m, int i, Buf y);

    /** How many bottleneck adapters follow sublayer s in this block (0 when no active adapter has one there). */
    int bottlenecks(Sublayer s);

    /**
     * Bottleneck adapter i after sublayer s, in place on the sublayer's output y (AdapterHub's {@code Adapter}):
     * {@code y = y + scaling·(W_up f(W_down y + b_down) + b_up)}; several apply one after another (AdapterHub's Stack).
     */
    void bottleneck(Sublayer s, int i, Buf y);

    /** Rotates the heads of x in place at the executor's positions. */
    void rope(Buf x, Heads h);

    /**
     * Causal attention of the queries over this block's keys and values: with a KV cache, k and v are
     * stored at the chunk's positions first and the queries attend to every cached position up to
     * their own. att keeps the probabilities when bound.
     */
    void attention(Buf out, Buf att, Buf q, Buf k, Buf v);

    /** {@code out = a + b} element-wise (out may be a or b). */
    void add(Buf out, Buf a, Buf b);

    /** {@code out = silu(gate) ⊙ up}. */
    void swiglu(Buf out, Buf gate, Buf up);

    /** {@code logits = W_out x}: the output projection (an adapter's trained lm_head when it has one). */
    void logits(Buf logits, Buf x);

    /** Per-token cross-entropy against the executor's targets; probs keeps the softmax (may be logits itself). */
    void crossEntropy(Buf losses, Buf probs, Buf logits);

    /**
     * The backward ops, for executors that train. Parameter gradients accumulate ({@code +=}); activation
     * gradients are assigned unless {@code accumulate} says otherwise.
     */
    interface Backward extends BlockOps {

        /** {@code dx (=, or += with accumulate) W_mᵀ dy}. */
        void matmulBackward(LinearModule m, Buf dx, boolean accumulate, Buf dy);

        /** Branch i: its A, B (and E) gradients {@code +=}, and {@code dx +=} the gradient through it (and its dropout mask). */
        void lowRankBackward(LinearModule m, int i, Buf dx, Buf dy, Buf x);

        /** Branch i's bias gradient {@code += s·Σ_t dy}. */
        void biasBackward(LinearModule m, int i, Buf dy);

        /**
         * DoRA branch i's magnitude step backward, the norm a constant: its magnitude gradient {@code +=}, and
         * {@code dyOut = g ⊙ dy}, the gradient of what it rescaled (the base projection and the low-rank branch;
         * with lora_dropout the executor also keeps the base's share through the mask for {@link #lowRankBackward}).
         */
        void magnitudeBackward(LinearModule m, int i, Buf dyOut, Buf dy);

        /**
         * Bottleneck adapter i after sublayer s backward: its parameter gradients {@code +=}, and
         * {@code dx = dy + W_downᵀ(f'(z) ⊙ scaling·W_upᵀ dy)}, the gradient of the sublayer's output before it.
         */
        void bottleneckBackward(Sublayer s, int i, Buf dx, Buf dy);

        void rmsNormBackward(Buf dx, boolean accumulate, Buf dOut, Buf x, Norm w, Buf rstd);

        void ropeBackward(Buf dx, Heads h);

        void attentionBackward(Buf dq, Buf dk, Buf dv, Buf dOut, Buf att, Buf q, Buf k, Buf v);

        void swigluBackward(Buf dGate, Buf dUp, Buf dOut, Buf gate, Buf up);

        /** {@code dx = W_outᵀ dLogits}, and a trained lm_head's gradient {@code +=}. */
        void logitsBackward(Buf dx, Buf dLogits, Buf x);

        /** dLogits from the probabilities and the executor's targets and per-token loss weights. */
        void crossEntropyBackward(Buf dLogits, Buf probs);
    }
}

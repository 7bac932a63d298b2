package io.lora4j.model.block;

/**
 * The named buffers a {@link LlamaBlock} program reads and writes. Each executor binds a name to its
 * own storage: the JVM's inference run state (where several names share one array, e.g. the
 * residual stream is updated in place), a training step's saved activations of one block, or the
 * arrays of a device task graph. Shapes: T tokens, C dim, Q = NH·HS, KV = NKV·HS, H hidden, V vocab.
 */
public enum Buf {
    /** (T, C) the block's input: the residual stream. */
    X,
    /** (T) reciprocal RMS of the attention norm, kept for the backward. */
    RSTD1,
    /** (T, C) normalised input of the attention. */
    XB1,
    /** (T, Q) queries (after RoPE). */
    Q,
    /** (T, KV) keys (after RoPE) and values of the chunk. */
    K, V,
    /** (T·NH, attention stride) attention probabilities kept for the backward; unbound in inference. */
    ATT,
    /** (T, Q) attention output. */
    ATT_OUT,
    /** (T, C) output projection of the attention. */
    ATT_PROJ,
    /** (T, C) the residual stream after the attention. */
    X_MID,
    /** (T) reciprocal RMS of the FFN norm. */
    RSTD2,
    /** (T, C) normalised input of the FFN. */
    XB2,
    /** (T, H) gate and up projections (pre-activation). */
    GATE, UP,
    /** (T, H) silu(gate)·up. */
    HB,
    /** (T, C) down projection. */
    FFN_PROJ,
    /** (T, C) the block's output: the residual stream after the FFN. */
    X_OUT,

    /** Output head: (T) reciprocal RMS of the final norm, (T, C) the normalised stream, (T, V) logits, (T) losses, (T, V) probabilities. */
    RSTD_F, XF, LOGITS, LOSSES, PROBS,

    // gradients: D_X is the residual stream's (dL/dX_OUT on entry to a block's backward, dL/dX on exit)
    D_X, D_XB, D_Q, D_K, D_V, D_ATT_OUT, D_GATE, D_UP, D_HB, D_XF, D_LOGITS,
    /** (T, OUT) a DoRA projection's output gradient rescaled by g (its dy may be the residual stream's D_X, left as it is). */
    D_SCALED,
    /** (T, C) the gradient of a sublayer's output before its bottleneck adapter (dy is the residual stream's D_X, left as it is). */
    D_PROJ
}

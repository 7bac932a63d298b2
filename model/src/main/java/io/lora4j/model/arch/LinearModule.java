package io.lora4j.model.arch;

import io.lora4j.kernels.Weight;

/** The seven linear projections of a Llama block, under their Hugging Face / PEFT names. */
public enum LinearModule {
    Q_PROJ("q_proj", "self_attn"),
    K_PROJ("k_proj", "self_attn"),
    V_PROJ("v_proj", "self_attn"),
    O_PROJ("o_proj", "self_attn"),
    GATE_PROJ("gate_proj", "mlp"),
    UP_PROJ("up_proj", "mlp"),
    DOWN_PROJ("down_proj", "mlp");

    /** PEFT's short name, e.g. {@code q_proj}. */
    public final String peftName;
    private final String parent;

    LinearModule(String peftName, String parent) {
        this.peftName = peftName;
        this.parent = parent;
    }

    /** The module's name in a Hugging Face LlamaForCausalLM, e.g. {@code model.layers.3.self_attn.q_proj}. */
    public String path(int layer) {
        return "model.layers." + layer + "." + parent + "." + peftName;
    }

    public int inDim(LlamaConfig c) {
        return switch (this) {
            case O_PROJ -> c.qDim();
            case DOWN_PROJ -> c.hiddenDim();
            default -> c.dim();
        };
    }

    public int outDim(LlamaConfig c) {
        return switch (this) {
            case Q_PROJ -> c.qDim();
            case K_PROJ, V_PROJ -> c.kvDim();
            case O_PROJ, DOWN_PROJ -> c.dim();
            case GATE_PROJ, UP_PROJ -> c.hiddenDim();
        };
    }

    /** The frozen base weight of this projection in a block. */
    public Weight weight(Layer w) {
        return switch (this) {
            case Q_PROJ -> w.wq();
            case K_PROJ -> w.wk();
            case V_PROJ -> w.wv();
            case O_PROJ -> w.wo();
            case GATE_PROJ -> w.gate();
            case UP_PROJ -> w.up();
            case DOWN_PROJ -> w.down();
        };
    }
}

package io.lora4j.model.arch;

import io.lora4j.kernels.Weight;

/** The weights of one transformer block: its two norm gains and seven projections. */
public record Layer(float[] attnNorm, Weight wq, Weight wk, Weight wv, Weight wo,
                    float[] ffnNorm, Weight gate, Weight up, Weight down) {

    /** This block with projection {@code m} replaced by {@code w} (merging an adapter). */
    public Layer with(LinearModule m, Weight w) {
        return switch (m) {
            case Q_PROJ -> new Layer(attnNorm, w, wk, wv, wo, ffnNorm, gate, up, down);
            case K_PROJ -> new Layer(attnNorm, wq, w, wv, wo, ffnNorm, gate, up, down);
            case V_PROJ -> new Layer(attnNorm, wq, wk, w, wo, ffnNorm, gate, up, down);
            case O_PROJ -> new Layer(attnNorm, wq, wk, wv, w, ffnNorm, gate, up, down);
            case GATE_PROJ -> new Layer(attnNorm, wq, wk, wv, wo, ffnNorm, w, up, down);
            case UP_PROJ -> new Layer(attnNorm, wq, wk, wv, wo, ffnNorm, gate, w, down);
            case DOWN_PROJ -> new Layer(attnNorm, wq, wk, wv, wo, ffnNorm, gate, up, w);
        };
    }
}

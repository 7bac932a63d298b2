package io.lora4j.model.lora;

import io.lora4j.model.arch.Sublayer;

import java.util.List;
import java.util.SplittableRandom;

/**
 * One bottleneck adapter module (AdapterHub's {@code Adapter}, src/adapters/methods/modeling.py) after
 * {@link #site} of block {@link #layer}: {@code adapter_down.0} (nn.Linear C → d, then the nonlinearity)
 * and {@code adapter_up} (nn.Linear d → C), views of the adapter's {@link ParamStore} named by their
 * AdapterHub paths without the adapter's name, e.g. {@code model.layers.0.attention_adapters.adapter_down.0.weight}.
 * Glossary: C the model's width, d the bottleneck width.
 */
public final class BottleneckLayer {
    public final int layer;
    public final Sublayer site;
    public final int C, d;
    /** (d, C) W_down, (d) b_down, (C, d) W_up, (C) b_up. */
    public final ParamStore.View down, downBias, up, upBias;

    BottleneckLayer(int layer, Sublayer site, int C, int d, ParamStore store) {
        this.layer = layer;
        this.site = site;
        this.C = C;
        this.d = d;
        String p = site.path(layer);
        down = store.view(p + ".adapter_down.0.weight");
        downBias = store.view(p + ".adapter_down.0.bias");
        up = store.view(p + ".adapter_up.weight");
        upBias = store.view(p + ".adapter_up.bias");
    }

    /** The store entries of one module, in the order the constructor reads them. */
    static List<ParamStore.Spec> specs(int layer, Sublayer site, int C, int d) {
        String p = site.path(layer);
        return List.of(new ParamStore.Spec(p + ".adapter_down.0.weight", Math.multiplyExact(d, C)),
                new ParamStore.Spec(p + ".adapter_down.0.bias", d),
                new ParamStore.Spec(p + ".adapter_up.weight", Math.multiplyExact(C, d)),
                new ParamStore.Spec(p + ".adapter_up.bias", C));
    }

    /** The flat value array the views index (from their offsets). */
    public float[] values() {
        return down.values();
    }

    /** The flat gradient array. */
    public float[] grads() {
        return down.grads();
    }

    public long parameterCount() {
        return (long) down.len() + downBias.len() + up.len() + upBias.len();
    }

    /**
     * AdapterHub's {@code init_weights} (biases zero in each): "bert" → both weights N(0, 0.02²); "houlsby" →
     * both N(0, 0.01²) truncated to ±0.02; "mam_adapter" → W_down Kaiming-uniform (a = √5: U(±1/√C)), W_up zero.
     */
    void initialise(String how, SplittableRandom rnd) {
        float[] w = values();
        for (ParamStore.View v : List.of(down, up)) {
            for (int i = 0; i < v.len(); i++) {
                w[v.off() + i] = switch (how) {
                    case "bert" -> (float) (LoraLayer.gaussian(rnd) * 0.02);
                    case "houlsby" -> (float) (truncatedGaussian(rnd) * 0.01);
                    case "mam_adapter" -> v == up ? 0f : (float) ((rnd.nextDouble() * 2 - 1) / Math.sqrt(C));
                    default -> throw new IllegalArgumentException("init_weights " + how);
                };
            }
        }
    }

    /** A standard normal sample within ±2 (torch's trunc_normal_(std=σ, a=−2σ, b=2σ) over σ). */
    private static double truncatedGaussian(SplittableRandom rnd) {
        double g;
        do {
            g = LoraLayer.gaussian(rnd);
        } while (g < -2 || g > 2);
        return g;
    }
}

package io.lora4j.model.lora;

import io.lora4j.kernels.Bottleneck;

import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * A bottleneck adapter's settings, in AdapterHub's vocabulary ({@code adapters}' {@code BnConfig},
 * src/adapters/configuration/adapter_config.py). Houlsby et al. ({@code DoubleSeqBnConfig}, "double_seq_bn"):
 * an adapter after the attention ({@code mh_adapter}) and after the feed-forward sublayer
 * ({@code output_adapter}) of every block, each {@code h + scaling·(W_up f(W_down h + b_down) + b_up)} on the
 * sublayer's output h before the block's residual add; AdapterHub's defaults for the keys not listed here
 * ({@code original_ln_before} false, {@code original_ln_after} true, no adapter layer norms, no gating, not
 * parallel, no PHM layers).
 *
 * @param mhAdapter        an adapter after each block's attention (AdapterHub's {@code attention_adapters})
 * @param outputAdapter    an adapter after each block's feed-forward sublayer ({@code output_adapters})
 * @param reductionFactor  the bottleneck width is {@code int(hidden_size // reduction_factor)}, at least 1
 * @param layerFactors     per-layer reduction factors (AdapterHub's mapping form {@code {"1": 8, "default": 16}},
 *                         whose "default" is {@code reductionFactor}); empty for a scalar
 * @param nonLinearity     AdapterHub's {@code non_linearity}: swish (= silu), relu, tanh or gelu_new
 * @param initWeights      bert (N(0, 0.02) weights, zero biases), houlsby (truncated N(0, 0.01) in ±0.02,
 *                         zero biases) or mam_adapter (Kaiming-uniform down, zero up)
 * @param scaling          the constant factor on the adapter's output (He et al.)
 * @param leaveOut         layers without adapters
 * @param dropout          dropout on the adapter's output while training (inference ignores it)
 */
public record BottleneckConfig(boolean mhAdapter, boolean outputAdapter, double reductionFactor, Map<Integer, Double> layerFactors,
                               String nonLinearity, String initWeights, float scaling, List<Integer> leaveOut, float dropout) {

    /** AdapterHub's non_linearity names this accepts, and the kernel's activation for each. */
    private static final Map<String, Integer> ACTIVATIONS = Map.of("swish", Bottleneck.SILU, "silu", Bottleneck.SILU,
            "relu", Bottleneck.RELU, "tanh", Bottleneck.TANH, "gelu_new", Bottleneck.GELU_TANH,
            "gelu_pytorch_tanh", Bottleneck.GELU_TANH);

    public BottleneckConfig {
        if (!mhAdapter && !outputAdapter) {
            throw new IllegalArgumentException("mh_adapter and output_adapter are both false: the adapter would have no module");
        }
        if (!(reductionFactor > 0) || Double.isInfinite(reductionFactor)) {
            throw new IllegalArgumentException("reduction_factor must be a number > 0, got " + reductionFactor);
        }
        layerFactors = Map.copyOf(new TreeMap<>(layerFactors));
        for (var e : layerFactors.entrySet()) {
            if (!(e.getValue() > 0) || Double.isInfinite(e.getValue())) {
                throw new IllegalArgumentException("reduction_factor of layer " + e.getKey() + " must be a number > 0, got " + e.getValue());
            }
        }
        nonLinearity = nonLinearity.toLowerCase(java.util.Locale.ROOT);
        if (!ACTIVATIONS.containsKey(nonLinearity)) {
            throw new IllegalArgumentException("non_linearity '" + nonLinearity + "' is not supported (use one of "
                    + new java.util.TreeSet<>(ACTIVATIONS.keySet()) + ")");
        }
        if (!List.of("bert", "houlsby", "mam_adapter").contains(initWeights)) {
            throw new IllegalArgumentException("init_weights must be bert, houlsby or mam_adapter, got '" + initWeights + "'");
        }
        if (!Float.isFinite(scaling)) {
            throw new IllegalArgumentException("scaling must be a finite number, got " + scaling);
        }
        if (!(dropout >= 0 && dropout < 1)) {
            throw new IllegalArgumentException("dropout must be in [0, 1), got " + dropout);
        }
        leaveOut = List.copyOf(leaveOut);
    }

    /** Houlsby et al.'s adapter as AdapterHub's {@code DoubleSeqBnConfig} defines it, with this reduction factor. */
    public static BottleneckConfig houlsby(double reductionFactor) {
        return new BottleneckConfig(true, true, reductionFactor, Map.of(), "swish", "bert", 1f, List.of(), 0f);
    }

    /** The kernel's code for {@link #nonLinearity}. */
    public int activation() {
        return ACTIVATIONS.get(nonLinearity);
    }

    /** The bottleneck width in layer {@code l} of a model of width {@code hidden}: AdapterHub's {@code int(hidden // factor)}, at least 1. */
    public int width(int l, int hidden) {
        double f = layerFactors.getOrDefault(l, reductionFactor);
        return (int) Math.max(1, Math.floor(hidden / f));
    }

    /** Whether layer {@code l} has adapters. */
    public boolean adapts(int l) {
        return !leaveOut.contains(l);
    }
}

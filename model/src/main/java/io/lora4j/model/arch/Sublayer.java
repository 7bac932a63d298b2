package io.lora4j.model.arch;

/**
 * The two sublayers of a Llama block whose output a bottleneck adapter follows, under AdapterHub's names:
 * the attention ({@code mh_adapter}, modules {@code attention_adapters}) and the feed-forward sublayer
 * ({@code output_adapter}, modules {@code output_adapters}); adapters' Llama mixin
 * (src/adapters/models/llama/mixin_llama.py) places them on the output of o_proj and of down_proj.
 */
public enum Sublayer {
    ATTENTION("mh_adapter", "attention_adapters"),
    FFN("output_adapter", "output_adapters");

    /** AdapterHub's config key that switches this position on. */
    public final String configKey;
    /** AdapterHub's module name in a decoder layer. */
    public final String moduleName;

    Sublayer(String configKey, String moduleName) {
        this.configKey = configKey;
        this.moduleName = moduleName;
    }

    /** The module's path in a Hugging Face LlamaForCausalLM, e.g. {@code model.layers.3.attention_adapters}. */
    public String path(int layer) {
        return "model.layers." + layer + "." + moduleName;
    }
}

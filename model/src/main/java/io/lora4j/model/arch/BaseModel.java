package io.lora4j.model.arch;

import io.lora4j.kernels.Weight;

/** What an adapter needs of the model it adapts: the shapes, and the weights that modules_to_save copies. */
public interface BaseModel {
    LlamaConfig config();

    /** The token embedding in use. */
    Weight tokenEmbedding();

    /** The output projection in use. */
    Weight output();

    /** The base model as adapter_config.json's {@code base_model_name_or_path} names it. */
    String baseModelName();

    /** The base weight of projection {@code m} in block {@code layer}, without any merged adapter. */
    Weight projection(int layer, LinearModule m);

    /**
     * Replaces that base weight for good: PiSSA and OLoRA leave the residual {@code W − s·B₀A₀} in the
     * base (PEFT mutates the base layer's weight); merges start from it and unmerging restores it.
     */
    void replaceProjection(int layer, LinearModule m, Weight w);
}

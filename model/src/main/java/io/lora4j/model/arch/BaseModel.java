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
}

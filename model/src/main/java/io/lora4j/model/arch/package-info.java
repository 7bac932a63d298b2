/**
 * The architecture every other package shares without seeing each other: a Llama's hyper-parameters
 * ({@link io.lora4j.model.arch.LlamaConfig}), its seven projections ({@link io.lora4j.model.arch.LinearModule}),
 * one block's weights ({@link io.lora4j.model.arch.Layer}) and what adapters need of a base model
 * ({@link io.lora4j.model.arch.BaseModel}). It depends on the kernels only.
 */
package io.lora4j.model.arch;

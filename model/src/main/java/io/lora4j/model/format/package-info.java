/**
 * Weight files, memory-mapped once and never copied onto the heap: {@link io.lora4j.model.format.GgufFile}
 * (GGUF v2/v3), {@link io.lora4j.model.format.HfModel} (HuggingFace config.json + safetensors, single or
 * sharded), {@link io.lora4j.model.format.Llama2cFile} (llama2.c .bin), all behind
 * {@link io.lora4j.model.format.WeightSource} with canonical GGUF tensor names and ggml-order shapes;
 * {@link io.lora4j.model.format.ModelFiles#open} picks the reader. Writers ({@link io.lora4j.model.format.GgufWriter},
 * {@link io.lora4j.model.format.SafetensorsWriter}) stream tensors into a mapped temp file and rename it;
 * {@link io.lora4j.model.format.Quantizer} holds ggml's reference quantizers and
 * {@link io.lora4j.model.format.RandomModel} writes seeded random Llama GGUFs for benchmarks.
 */
package io.lora4j.model.format;

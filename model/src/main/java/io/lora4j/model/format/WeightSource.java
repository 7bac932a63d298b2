package io.lora4j.model.format;

import io.lora4j.model.arch.LlamaConfig;

import java.nio.file.Path;
import java.util.Map;

/**
 * A memory-mapped model file (GGUF, HF safetensors directory, llama2.c checkpoint, Arrow): the tensors
 * under their canonical GGUF names ({@code token_embd.weight}, {@code blk.0.attn_q.weight}, …),
 * the format's metadata, and the Llama hyper-parameters. Closing it unmaps the file; every
 * {@link TensorInfo#data()} is invalid afterwards.
 */
public interface WeightSource extends AutoCloseable {
    Path path();

    /** "gguf", "safetensors", "llama2c" or "arrow". */
    String format();

    /**
     * Key/value metadata. GGUF values: integers as Long, f32 as Float, f64 as Double, bool as
     * Boolean, strings as String; arrays as String[], float[], int[] (i32 and u32 bits), long[],
     * short[], byte[], boolean[], double[], nested arrays as Object[].
     */
    Map<String, Object> metadata();

    /** Tensors by canonical name, in file order. */
    Map<String, TensorInfo> tensors();

    LlamaConfig config();

    /** The tensor called {@code name}; a {@link ModelFormatException} naming the file if missing. */
    default TensorInfo tensor(String name) {
        TensorInfo t = tensors().get(name);
        if (t == null) {
            throw new ModelFormatException(path(), "missing tensor " + name);
        }
        return t;
    }

    @Override
    void close();
}

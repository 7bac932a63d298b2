package io.lora4j.tests;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.SafetensorsWriter;
import io.lora4j.model.format.TensorInfo;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

/**
 * stories260K written as a Hugging Face directory (config.json + model.safetensors, Q and K rows
 * in HF's rotate-half order, as transformers stores them) generates llama.cpp's tokens: the
 * safetensors reader, the HF name mapping and the rotate-half RoPE agree with the GGUF path.
 */
class HfFormatGoldenTest {

    @Test
    void huggingFaceLayoutGivesTheSameGreedyTokens(@TempDir Path dir) throws Exception {
        try (GgufFile g = GgufFile.open(Shared.stories())) {
            LlamaConfig c = g.config();
            SafetensorsWriter w = new SafetensorsWriter();
            Map<String, String> names = Map.of("attn_q", "self_attn.q_proj", "attn_k", "self_attn.k_proj",
                    "attn_v", "self_attn.v_proj", "attn_output", "self_attn.o_proj", "ffn_gate", "mlp.gate_proj",
                    "ffn_up", "mlp.up_proj", "ffn_down", "mlp.down_proj", "attn_norm", "input_layernorm",
                    "ffn_norm", "post_attention_layernorm");
            for (TensorInfo t : g.tensors().values()) {
                String n = t.name();
                String hf;
                float[] v = t.data().toArray(ValueLayout.JAVA_FLOAT);
                if (n.equals("token_embd.weight")) {
                    hf = "model.embed_tokens.weight";
                } else if (n.equals("output_norm.weight")) {
                    hf = "model.norm.weight";
                } else if (n.equals("output.weight")) {
                    hf = "lm_head.weight";
                } else {
                    String[] p = n.split("\\.");
                    hf = "model.layers." + p[1] + "." + names.get(p[2]) + ".weight";
                    if (p[2].equals("attn_q")) {
                        v = toHalves(v, c.nHeads(), c.headSize(), c.dim());
                    } else if (p[2].equals("attn_k")) {
                        v = toHalves(v, c.nKvHeads(), c.headSize(), c.dim());
                    }
                }
                long[] shape = t.shape().length == 1 ? new long[]{t.shape()[0]} : new long[]{t.shape()[1], t.shape()[0]};
                w.add(hf, GgmlType.F32, shape, MemorySegment.ofArray(v));
            }
            w.write(dir.resolve("model.safetensors"));
            Files.writeString(dir.resolve("config.json"), """
                    {"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 172,
                     "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
                     "max_position_embeddings": 512, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
                     "tie_word_embeddings": false, "torch_dtype": "float32"}""");
            Files.copy(Shared.models().resolve("stories260K/tok512.model"), dir.resolve("tokenizer.model"));
        }
        assertArrayEquals(GoldenGenerationTest.LLAMA_CPP_64, GoldenGenerationTest.greedy(dir, null, "Once upon a time", 64));
    }

    /** GGUF's adjacent-pair rows (h, 2i+e) → HF's rotate-half rows (h, e·HS/2 + i). */
    static float[] toHalves(float[] m, int heads, int hs, int cols) {
        float[] r = new float[m.length];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < hs / 2; i++) {
                for (int e = 0; e < 2; e++) {
                    System.arraycopy(m, (h * hs + 2 * i + e) * cols, r, (h * hs + e * hs / 2 + i) * cols, cols);
                }
            }
        }
        return r;
    }
}

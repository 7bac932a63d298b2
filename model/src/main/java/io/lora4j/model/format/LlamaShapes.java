package io.lora4j.model.format;

import io.lora4j.model.arch.LlamaConfig;

import java.util.Arrays;

/**
 * Checks that a source's tensors have the shapes its {@link LlamaConfig} implies, in ggml order
 * (ne0 = input dim): attn_q [C, NH*HS], attn_k/v [C, NKV*HS], attn_output [NH*HS, C],
 * ffn_gate/up [C, H], ffn_down [H, C], norms [C], token_embd/output [C, V].
 */
public final class LlamaShapes {
    private LlamaShapes() {
    }

    /** Throws a ModelFormatException naming the first missing tensor or the first wrong shape. */
    public static void check(WeightSource src, LlamaConfig c) {
        long dim = c.dim();
        long hidden = c.hiddenDim();
        long q = c.qDim();
        long kv = c.kvDim();
        expect(src, "token_embd.weight", dim, c.vocabSize());
        expect(src, "output_norm.weight", dim);
        if (src.tensors().containsKey("output.weight")) {
            expect(src, "output.weight", dim, c.vocabSize());
        }
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "blk." + l + ".";
            expect(src, p + "attn_norm.weight", dim);
            expect(src, p + "attn_q.weight", dim, q);
            expect(src, p + "attn_k.weight", dim, kv);
            expect(src, p + "attn_v.weight", dim, kv);
            expect(src, p + "attn_output.weight", q, dim);
            expect(src, p + "ffn_norm.weight", dim);
            expect(src, p + "ffn_gate.weight", dim, hidden);
            expect(src, p + "ffn_up.weight", dim, hidden);
            expect(src, p + "ffn_down.weight", hidden, dim);
        }
    }

    private static void expect(WeightSource src, String name, long... shape) {
        TensorInfo t = src.tensor(name);
        if (!Arrays.equals(t.shape(), shape)) {
            throw new ModelFormatException(src.path(), "tensor " + name + " has shape " + Arrays.toString(t.shape())
                    + ", expected " + Arrays.toString(shape) + " (ggml order) for the config");
        }
    }
}

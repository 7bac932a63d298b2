package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class GgufFileTest {
    @TempDir
    Path tmp;

    @Test
    void tinyRandomLlama2() {
        try (GgufFile f = GgufFile.open(TestFiles.tinyRandomGguf())) {
            assertEquals(3, f.version());
            assertEquals("gguf", f.format());
            assertEquals(18, f.metadata().size());
            assertEquals(12, f.tensors().size());
            assertEquals(1L, f.metadata().get("general.file_type"));
            assertEquals(GgufFile.UINT32, f.valueType("general.file_type"));
            String[] tokens = (String[]) f.metadata().get("tokenizer.ggml.tokens");
            assertEquals(32000, tokens.length);
            assertEquals("<unk>", tokens[0]);
            assertEquals("<0x00>", tokens[3]);
            assertEquals(32000, ((float[]) f.metadata().get("tokenizer.ggml.scores")).length);
            int[] types = (int[]) f.metadata().get("tokenizer.ggml.token_type");
            assertEquals(32000, types.length);
            assertEquals(2, types[0]);
            assertEquals(3, types[1]);
            assertEquals(6, types[3]);
            assertEquals(1L, f.metadata().get("tokenizer.ggml.bos_token_id"));
            TensorInfo emb = f.tensor("token_embd.weight");
            assertEquals(GgmlType.F16, emb.type());
            assertArrayEquals(new long[]{8, 32000}, emb.shape());
            assertEquals(8L * 32000 * 2, emb.data().byteSize());
            assertEquals(GgmlType.F32, f.tensor("output_norm.weight").type());
            assertEquals(1.0f, f.tensor("blk.0.attn_norm.weight").data().get(Mapped.F32, 12));
            assertArrayEquals(new long[]{32, 8}, f.tensor("blk.0.ffn_down.weight").shape());
            // the data section ends exactly at the end of the file
            long end = 0;
            for (TensorInfo t : f.tensors().values()) {
                end = Math.max(end, t.data().address() - f.segment().address() + t.data().byteSize());
            }
            assertEquals(f.segment().byteSize(), end);
            LlamaConfig c = f.config();
            assertEquals(new LlamaConfig(8, 32, 1, 2, 2, 4, 32000, 4096, 1e-5f, 10000f, null,
                    LlamaConfig.RopeStyle.ADJACENT, false), c);
        }
    }

    @Test
    void vocabOnlyGguf() {
        try (GgufFile f = GgufFile.open(TestFiles.vocabSpmGguf())) {
            assertEquals(0, f.tensors().size());
            assertEquals(32000, ((String[]) f.metadata().get("tokenizer.ggml.tokens")).length);
            assertEquals(4096L, f.metadata().get("llama.embedding_length"));
            assertEquals(Boolean.TRUE, f.metadata().get("tokenizer.ggml.add_bos_token"));
            ModelFormatException e = assertThrows(ModelFormatException.class, f::config);
            assertTrue(e.getMessage().contains("ggml-vocab-llama-spm.gguf"), e.getMessage());
            assertTrue(e.getMessage().contains("token_embd.weight"), e.getMessage());
        }
    }

    @Test
    void realStories260kGguf() throws IOException {
        Path p = TestFiles.stories260kGguf();
        try (GgufFile f = GgufFile.open(p); Llama2cFile bin = Llama2cFile.open(TestFiles.stories260kBin())) {
            assertEquals(19, f.metadata().size());
            assertEquals(48, f.tensors().size());
            assertEquals(14176, f.dataStart());
            assertEquals(32, f.alignment());
            assertEquals("llama", f.metadata().get("general.architecture"));
            assertEquals(0xFFFFFFFFL, f.metadata().get("tokenizer.ggml.seperator_token_id"));
            assertEquals(512, ((String[]) f.metadata().get("tokenizer.ggml.tokens")).length);
            assertEquals(1e-5f, f.metadata().get("llama.attention.layer_norm_rms_epsilon"));
            assertArrayEquals(new long[]{64, 512}, f.tensor("token_embd.weight").shape());
            assertArrayEquals(new long[]{64}, f.tensor("output_norm.weight").shape());
            assertArrayEquals(new long[]{64, 172}, f.tensor("blk.4.ffn_gate.weight").shape());
            assertArrayEquals(new long[]{64, 32}, f.tensor("blk.0.attn_v.weight").shape());
            for (TensorInfo t : f.tensors().values()) {
                assertEquals(GgmlType.F32, t.type(), t.name());
            }
            LlamaConfig c = f.config();
            assertEquals(new LlamaConfig(64, 172, 5, 8, 4, 8, 512, 2048, 1e-5f, 10000f, null,
                    LlamaConfig.RopeStyle.ADJACENT, false), c);
            for (TensorInfo t : bin.tensors().values()) {
                TensorInfo g = f.tensor(t.name());
                assertArrayEquals(t.shape(), g.shape(), t.name());
                assertEquals(-1, t.data().mismatch(g.data()), t.name());
            }
        }
    }

    @Test
    void stories260kGgufFromBinMatchesBin() throws IOException {
        Path p = TestFiles.storiesGgufFromBin(tmp);
        try (GgufFile f = GgufFile.open(p); Llama2cFile bin = Llama2cFile.open(TestFiles.stories260kBin())) {
            assertEquals(48, f.tensors().size());
            LlamaConfig c = f.config();
            assertEquals(new LlamaConfig(64, 172, 5, 8, 4, 8, 512, 2048, 1e-5f, 10000f, null,
                    LlamaConfig.RopeStyle.ADJACENT, false), c);
            assertArrayEquals(new long[]{64, 32}, f.tensor("blk.3.attn_k.weight").shape());
            assertArrayEquals(new long[]{172, 64}, f.tensor("blk.3.ffn_down.weight").shape());
            for (TensorInfo t : bin.tensors().values()) {
                assertEquals(-1, t.data().mismatch(f.tensor(t.name()).data()), t.name());
                assertEquals(0, (f.tensor(t.name()).data().address() - f.segment().address() - f.dataStart()) % 32);
            }
            assertEquals(-1, f.tensor("output.weight").data().mismatch(bin.tensor("token_embd.weight").data()));
        }
    }

    @Test
    void closeUnmaps() {
        GgufFile f = GgufFile.open(TestFiles.tinyRandomGguf());
        TensorInfo t = f.tensor("output_norm.weight");
        f.close();
        assertThrows(IllegalStateException.class, () -> t.data().get(Mapped.F32, 0));
        f.close(); // idempotent
    }

    @Test
    void metadataIsImmutable() {
        try (GgufFile f = GgufFile.open(TestFiles.tinyRandomGguf())) {
            Map<String, Object> m = f.metadata();
            assertThrows(UnsupportedOperationException.class, () -> m.put("x", 1L));
        }
    }
}

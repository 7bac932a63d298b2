package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class RandomModelTest {
    @TempDir
    Path tmp;

    private void checkTiny(Path p, GgmlType type) {
        try (GgufFile f = GgufFile.open(p)) {
            LlamaConfig c = f.config();
            assertEquals(RandomModel.Preset.TINY.config, c);
            assertEquals(3 + 9 * 2, f.tensors().size());
            assertEquals(type, f.tensor("token_embd.weight").type());
            assertEquals(type, f.tensor("output.weight").type());
            assertEquals(type, f.tensor("blk.1.ffn_up.weight").type());
            // ne0 = 172 is not a multiple of 32: quantized types fall back to F16 there
            assertEquals(type.isQuantized() ? GgmlType.F16 : type, f.tensor("blk.1.ffn_down.weight").type());
            assertEquals(GgmlType.F32, f.tensor("blk.1.ffn_norm.weight").type());
            assertEquals(1f, f.tensor("output_norm.weight").data().getAtIndex(Mapped.F32, 63));
            assertEquals(type.byteSize(64L * 32000), f.tensor("token_embd.weight").data().byteSize());
            assertEquals(32000, ((String[]) f.metadata().get("tokenizer.ggml.tokens")).length);
            assertEquals(GgufFile.UINT32, f.valueType("tokenizer.ggml.bos_token_id"));
            assertEquals(GgufFile.ARRAY, f.valueType("tokenizer.ggml.token_type"));
            assertEquals(GgufFile.INT32, f.arrayElementType("tokenizer.ggml.token_type"));
            assertEquals(GgufFile.FLOAT32, f.arrayElementType("tokenizer.ggml.scores"));
            // weights look like N(0, 0.02)
            TensorInfo w = f.tensor("blk.0.ffn_gate.weight");
            float[] x = new float[(int) w.elementCount()];
            Quantizer.dequantizeRow(type, x, 0, w.data(), 0, x.length);
            double s = 0, s2 = 0;
            for (float v : x) {
                s += v;
                s2 += v * v;
            }
            double mean = s / x.length;
            double std = Math.sqrt(s2 / x.length - mean * mean);
            assertEquals(0, mean, 0.001);
            assertEquals(0.02, std, 0.001);
        }
    }

    @Test
    void tinyF32AndQ8_0() throws IOException {
        Map<String, Object> tok = RandomModel.tokenizerMetadata(RandomModel.defaultTokenizerGguf(TestFiles.shared()));
        Path f32 = tmp.resolve("tiny-f32.gguf");
        Path q8 = tmp.resolve("tiny-q8.gguf");
        RandomModel.write(f32, RandomModel.Preset.TINY, GgmlType.F32, 42, tok);
        RandomModel.write(q8, RandomModel.Preset.TINY, GgmlType.Q8_0, 42, tok);
        checkTiny(f32, GgmlType.F32);
        checkTiny(q8, GgmlType.Q8_0);
        // Q8_0 is the reference quantization of the same F32 values
        try (GgufFile a = GgufFile.open(f32); GgufFile b = GgufFile.open(q8)) {
            TensorInfo t = a.tensor("blk.1.attn_v.weight");
            float[] x = new float[(int) t.elementCount()];
            Quantizer.dequantizeRow(GgmlType.F32, x, 0, t.data(), 0, x.length);
            byte[] q = new byte[(int) GgmlType.Q8_0.byteSize(x.length)];
            Quantizer.toQ8_0(java.lang.foreign.MemorySegment.ofArray(q), 0, x, 0, x.length);
            assertEquals(-1, b.tensor("blk.1.attn_v.weight").data().mismatch(java.lang.foreign.MemorySegment.ofArray(q)));
        }
        // same seed, same bytes; another seed, other bytes
        Path again = tmp.resolve("again.gguf");
        RandomModel.write(again, RandomModel.Preset.TINY, GgmlType.F32, 42, tok);
        assertEquals(-1, Files.mismatch(f32, again));
        RandomModel.write(again, RandomModel.Preset.TINY, GgmlType.F32, 43, tok);
        assertNotEquals(-1, Files.mismatch(f32, again));
    }

    @Test
    void tinyQ4_0WithoutTokenizer() throws IOException {
        Path p = tmp.resolve("q4.gguf");
        RandomModel.write(p, RandomModel.Preset.TINY, GgmlType.Q4_0, 1, Map.of());
        try (GgufFile f = GgufFile.open(p)) {
            assertEquals(GgmlType.Q4_0, f.tensor("blk.0.attn_q.weight").type());
            assertEquals(RandomModel.Preset.TINY.config, f.config());
            assertEquals(2L, f.metadata().get("general.file_type"));
        }
    }

    @Test
    @Tag("slow")
    void preset1bQ4_0() throws IOException {
        Path p = tmp.resolve("1b-q4_0.gguf");
        long t0 = System.nanoTime();
        RandomModel.write(p, RandomModel.Preset.B1, GgmlType.Q4_0, 7);
        double s = (System.nanoTime() - t0) / 1e9;
        System.out.printf("RandomModel 1b Q4_0: %.1f s, %d bytes%n", s, Files.size(p));
        try (GgufFile f = GgufFile.open(p)) {
            assertEquals(RandomModel.Preset.B1.config, f.config());
            assertEquals(32000, ((String[]) f.metadata().get("tokenizer.ggml.tokens")).length);
        }
        assertTrue(s < 60, "took " + s + " s");
    }
}

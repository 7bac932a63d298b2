package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

class Llama2cFileTest {
    @TempDir
    Path tmp;

    @Test
    void stories260kBinEqualsGgufBitForBit() {
        try (Llama2cFile bin = Llama2cFile.open(TestFiles.stories260kBin());
             GgufFile gguf = GgufFile.open(TestFiles.stories260kGguf())) {
            assertEquals("llama2c", bin.format());
            assertEquals(new LlamaConfig(64, 172, 5, 8, 4, 8, 512, 512, 1e-5f, 10000f, null,
                    LlamaConfig.RopeStyle.ADJACENT, true), bin.config());
            assertEquals(47, bin.tensors().size()); // the GGUF's 48 minus output.weight (tied)
            for (TensorInfo t : bin.tensors().values()) {
                TensorInfo g = gguf.tensor(t.name());
                assertEquals(GgmlType.F32, t.type());
                assertArrayEquals(g.shape(), t.shape(), t.name());
                assertEquals(-1, t.data().mismatch(g.data()), t.name());
            }
            assertEquals(-1, bin.tensor("token_embd.weight").data().mismatch(gguf.tensor("output.weight").data()));
            LlamaShapes.check(bin, bin.config());
            assertEquals(64L, bin.metadata().get("llama.embedding_length"));
        }
    }

    static byte[] header(int dim, int hidden, int layers, int heads, int kv, int vocab, int seq, int floats) {
        ByteBuffer b = ByteBuffer.allocate(28 + 4 * floats).order(ByteOrder.LITTLE_ENDIAN);
        b.putInt(dim).putInt(hidden).putInt(layers).putInt(heads).putInt(kv).putInt(vocab).putInt(seq);
        return b.array();
    }

    @Test
    void untiedClassifierWhenVocabNegative() throws IOException {
        // dim 4, hidden 8, 1 layer, 2 heads, 1 kv head (hs 2, kv 2), vocab -3, seq 2
        int floats = 3 * 4 + 4 + 16 + 2 * 2 * 4 + 16 + 4 + 3 * 8 * 4 + 4 + 2 * 2 / 2 * 2 + 3 * 4;
        byte[] b = header(4, 8, 1, 2, 1, -3, 2, floats);
        ByteBuffer bb = ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < floats; i++) {
            bb.putFloat(28 + 4 * i, i);
        }
        Path p = TestFiles.write(tmp, "tiny.bin", b);
        try (Llama2cFile f = Llama2cFile.open(p)) {
            assertFalse(f.config().tiedEmbeddings());
            assertEquals(3, f.config().vocabSize());
            TensorInfo cls = f.tensor("output.weight");
            assertArrayEquals(new long[]{4, 3}, cls.shape());
            assertEquals(floats - 12, cls.data().getAtIndex(Mapped.F32, 0));
            assertEquals(floats - 1, cls.data().getAtIndex(Mapped.F32, 11));
            assertArrayEquals(new long[]{4, 2}, f.tensor("blk.0.attn_k.weight").shape());
            assertArrayEquals(new long[]{8, 4}, f.tensor("blk.0.ffn_down.weight").shape());
            LlamaShapes.check(f, f.config());
        }
        // one float short
        Path shortFile = TestFiles.write(tmp, "short.bin", Arrays.copyOf(b, b.length - 4));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Llama2cFile.open(shortFile));
        assertTrue(e.getMessage().startsWith(shortFile.toString()), e.getMessage());
        assertTrue(e.getMessage().contains("implies " + b.length + " bytes"), e.getMessage());
    }

    @Test
    void wrongSizeAndBadHeader() throws IOException {
        byte[] good = Files.readAllBytes(TestFiles.stories260kBin());
        Path p = TestFiles.write(tmp, "long.bin", Arrays.copyOf(good, good.length + 4));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Llama2cFile.open(p));
        assertTrue(e.getMessage().contains("1056544 bytes") && e.getMessage().contains("implies 1056540"), e.getMessage());
        byte[] bad = good.clone();
        bad[12] = 7; // n_heads 7 does not divide dim 64
        Path q = TestFiles.write(tmp, "heads.bin", bad);
        e = assertThrows(ModelFormatException.class, () -> Llama2cFile.open(q));
        assertTrue(e.getMessage().contains("n_heads=7"), e.getMessage());
    }
}

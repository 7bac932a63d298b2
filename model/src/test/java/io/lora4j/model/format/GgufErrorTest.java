package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import static org.junit.jupiter.api.Assertions.*;

/** Corrupted copies of stories260K.gguf: every defect is a ModelFormatException naming the file and the key/tensor. */
class GgufErrorTest {
    @TempDir
    Path tmp;
    byte[] good;

    @BeforeEach
    void load() throws IOException {
        good = Files.readAllBytes(TestFiles.stories260kGguf());
    }

    private String fail(String name, byte[] bytes) throws IOException {
        Path p = TestFiles.write(tmp, name, bytes);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> GgufFile.open(p).close());
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        return e.getMessage();
    }

    private static void assertHas(String msg, String... parts) {
        for (String s : parts) {
            assertTrue(msg.contains(s), "expected \"" + s + "\" in: " + msg);
        }
    }

    /** Byte offset of the u32 type id in the tensor info of {@code name}. */
    private int typeField(String name) {
        int at = TestFiles.indexOf(good, "\0" + name, 0) + 1 - 8; // preceded by its u64 length (high bytes 0)
        int nDims = good[at + 8 + name.length()];
        return at + 8 + name.length() + 4 + 8 * nDims;
    }

    @Test
    void truncatedInHeader() throws IOException {
        assertHas(fail("h.gguf", Arrays.copyOf(good, 14)), "truncated", "header");
        assertHas(fail("empty.gguf", new byte[0]), "truncated");
    }

    @Test
    void truncatedInKv() throws IOException {
        int key = TestFiles.indexOf(good, "tokenizer.ggml.scores", 0);
        assertHas(fail("kv.gguf", Arrays.copyOf(good, key + "tokenizer.ggml.scores".length() + 40)),
                "truncated", "tokenizer.ggml.scores");
    }

    @Test
    void truncatedInTensorInfos() throws IOException {
        int at = typeField("blk.2.ffn_up.weight");
        assertHas(fail("ti.gguf", Arrays.copyOf(good, at + 2)), "truncated", "blk.2.ffn_up.weight");
    }

    @Test
    void truncatedInData() throws IOException {
        String m = fail("data.gguf", Arrays.copyOf(good, good.length - 100));
        assertHas(m, "blk.4.ffn_norm.weight", "beyond the end of the file");
    }

    @Test
    void wrongMagic() throws IOException {
        byte[] b = good.clone();
        b[0] = 'X';
        assertHas(fail("magic.gguf", b), "not a GGUF file", "magic");
    }

    @Test
    void badVersion() throws IOException {
        byte[] b = good.clone();
        TestFiles.putI32(b, 4, 1);
        assertHas(fail("v1.gguf", b), "version 1 is not supported");
        TestFiles.putI32(b, 4, 4);
        assertHas(fail("v4.gguf", b), "unsupported GGUF version 4");
    }

    @Test
    void version2IsAccepted() throws IOException {
        byte[] b = good.clone();
        TestFiles.putI32(b, 4, 2); // v2 has the same layout as v3
        Path p = TestFiles.write(tmp, "v2.gguf", b);
        try (GgufFile f = GgufFile.open(p)) {
            assertEquals(2, f.version());
            assertEquals(48, f.tensors().size());
            assertEquals(64, f.config().dim());
        }
    }

    @Test
    void absurdCounts() throws IOException {
        byte[] b = good.clone();
        TestFiles.putI64(b, 8, 1L << 50);
        assertHas(fail("tc.gguf", b), "absurd tensor_count");
        b = good.clone();
        TestFiles.putI64(b, 16, -1L);
        assertHas(fail("kc.gguf", b), "absurd metadata kv_count");
    }

    @Test
    void stringLengthBeyondFile() throws IOException {
        byte[] b = good.clone();
        int key = TestFiles.indexOf(good, "general.architecture", 0);
        TestFiles.putI64(b, key - 8, 1L << 40);
        assertHas(fail("str.gguf", b), "metadata key #", "string of length 1099511627776");
        b = good.clone();
        int arr = TestFiles.indexOf(good, "tokenizer.ggml.tokens", 0) + "tokenizer.ggml.tokens".length() + 4 + 4;
        TestFiles.putI64(b, arr, 1L << 40); // array count
        assertHas(fail("arr.gguf", b), "tokenizer.ggml.tokens", "array length");
    }

    @Test
    void unknownTensorType() throws IOException {
        byte[] b = good.clone();
        TestFiles.putI32(b, typeField("blk.1.attn_q.weight"), 99);
        assertHas(fail("type.gguf", b), "blk.1.attn_q.weight", "unknown ggml type id 99");
    }

    @Test
    void offsetOutOfRangeAndMisaligned() throws IOException {
        byte[] b = good.clone();
        int off = typeField("blk.0.attn_k.weight") + 4;
        TestFiles.putI64(b, off, 1L << 30);
        assertHas(fail("off.gguf", b), "blk.0.attn_k.weight", "beyond the end of the file");
        b = good.clone();
        TestFiles.putI64(b, off, TestFiles.getI64(good, off) + 4);
        assertHas(fail("align.gguf", b), "blk.0.attn_k.weight", "alignment 32");
    }

    @Test
    void duplicateTensorName() throws IOException {
        byte[] b = good.clone();
        int at = TestFiles.indexOf(good, "\0blk.1.attn_q.weight", 0) + 1;
        b[at + 4] = '0'; // rename blk.1.attn_q to blk.0.attn_q
        assertHas(fail("dup.gguf", b), "duplicate tensor name blk.0.attn_q.weight");
    }

    @Test
    void blockSizeMultiple() throws IOException {
        GgufWriter w = new GgufWriter().addTensor("q.weight", GgmlType.Q8_0, new long[]{32, 2}, new byte[68]);
        Path p = tmp.resolve("q.gguf");
        w.write(p);
        byte[] b = Files.readAllBytes(p);
        int ne0 = TestFiles.indexOf(b, "q.weight", 0) + "q.weight".length() + 4;
        TestFiles.putI64(b, ne0, 33);
        assertHas(fail("q33.gguf", b), "q.weight", "not a multiple of the block size 32");
    }

    @Test
    void shapeMismatchVsConfig() throws IOException {
        byte[] b = good.clone();
        // blk.3.attn_k.weight is [64, 32]; make it [32, 64] (same byte size)
        int at = TestFiles.indexOf(good, "\0blk.3.attn_k.weight", 0) + 1 + "blk.3.attn_k.weight".length() + 4;
        TestFiles.putI64(b, at, 32);
        TestFiles.putI64(b, at + 8, 64);
        Path p = TestFiles.write(tmp, "shape.gguf", b);
        try (GgufFile f = GgufFile.open(p)) {
            ModelFormatException e = assertThrows(ModelFormatException.class, f::config);
            assertHas(e.getMessage(), p.toString(), "blk.3.attn_k.weight", "[32, 64]", "expected [64, 32]");
        }
    }

    @Test
    void missingConfigKey() throws IOException {
        byte[] b = good.clone();
        int key = TestFiles.indexOf(good, "llama.block_count", 0);
        b[key + 6] = 'X'; // llama.Xlock_count
        Path p = TestFiles.write(tmp, "key.gguf", b);
        try (GgufFile f = GgufFile.open(p)) {
            ModelFormatException e = assertThrows(ModelFormatException.class, f::config);
            assertHas(e.getMessage(), p.toString(), "missing metadata key llama.block_count");
        }
    }

    @Test
    void missingFile() {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> GgufFile.open(tmp.resolve("nope.gguf")));
        assertHas(e.getMessage(), "nope.gguf", "no such file");
    }
}

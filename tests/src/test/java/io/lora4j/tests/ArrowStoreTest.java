package io.lora4j.tests;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.format.ArrowModel;
import io.lora4j.model.format.ModelFiles;
import io.lora4j.model.format.ModelFormatException;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** `convert` to Arrow: the same greedy tokens as the GGUF through the CLI, and every defect of the file is a clear error. */
class ArrowStoreTest {
    /** token_embd.weight of stories260K: F32 [64, 512]. */
    static final long EMBD_BYTES = 64 * 512 * 4;

    @TempDir
    Path tmp;
    Path good;
    byte[] bytes;

    @BeforeEach
    void convert() throws IOException {
        good = tmp.resolve("stories.arrow");
        Shared.Run r = Shared.cli("convert", "--model", Shared.stories().toString(), "-o", good.toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("48 tensors") && r.err().contains("GGUF tokenizer"), r.err());
        bytes = Files.readAllBytes(good);
    }

    @Test
    void generateFromArrowGivesLlamaCppsTokens() {
        assertArrayEquals(GoldenGenerationTest.LLAMA_CPP_64, GoldenGenerationTest.greedy(good, null, "Once upon a time", 64));
        Shared.Run r = Shared.cli("generate", "--model", good.toString(), "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "64");
        assertEquals(0, r.code(), r.err());
        try (LoadedModel lm = LoadedModel.open(good, null)) {
            assertEquals("Once upon a time" + lm.tokenizer().decode(GoldenGenerationTest.LLAMA_CPP_64) + "\n", r.out());
        }
        Shared.Run i = Shared.cli("inspect", "--model", good.toString(), "--no-tensors");
        assertEquals(0, i.code(), i.err());
        assertTrue(i.out().contains("format:  arrow") && i.out().contains("llama.block_count = 5"), i.out());
    }

    /** A merged model converts too: convert --adapter gives the tokens of generate --adapter on the GGUF. */
    @Test
    void convertWithAMergedAdapter() throws IOException {
        Path adapter = tmp.resolve("adapter");
        Path data = Files.writeString(tmp.resolve("data.txt"), "Spark the dragon flew over the hill.\n\nSpark liked red apples.\n");
        Shared.Run t = Shared.cli("train", "--model", Shared.stories().toString(), "--data", data.toString(), "--eval-split", "0",
                "--steps", "3", "--seq-len", "32", "--lr", "1e-2", "-o", adapter.toString());
        assertEquals(0, t.code(), t.err());
        Path merged = tmp.resolve("merged.arrow");
        Shared.Run c = Shared.cli("convert", "--model", Shared.stories().toString(), "--adapter", adapter.toString(), "-o", merged.toString());
        assertEquals(0, c.code(), c.err());
        Shared.Run a = Shared.cli("generate", "--model", Shared.stories().toString(), "--adapter", adapter.toString(),
                "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24");
        Shared.Run m = Shared.cli("generate", "--model", merged.toString(), "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "24");
        assertEquals(0, a.code(), a.err());
        assertEquals(0, m.code(), m.err());
        assertEquals(a.out(), m.out());
        Shared.Run base = Shared.cli("generate", "--model", Shared.stories().toString(), "--prompt", "Once upon a time", "--temperature", "0",
                "--max-tokens", "24");
        assertNotEquals(base.out(), a.out(), "the adapter changes the text (else the comparison above proves nothing)");
        try (var src = ModelFiles.open(merged)) {
            assertTrue(src.metadata().get("general.name").toString().contains("merged LoRA"));
        }
    }

    private String fail(String name, byte[] b) throws IOException {
        Path p = Files.write(tmp.resolve(name), b);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelFiles.open(p).close());
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        Shared.Run r = Shared.cli("generate", "--model", p.toString(), "--max-tokens", "1");
        CliErrorsTest.assertCleanError(r, 1, name);
        return e.getMessage();
    }

    private static void assertHas(String msg, String... parts) {
        for (String s : parts) {
            assertTrue(msg.contains(s), "expected \"" + s + "\" in: " + msg);
        }
    }

    @Test
    void wrongMagicAndTruncation() throws IOException {
        byte[] b = bytes.clone();
        b[0] = 'X';
        assertHas(fail("magic.arrow", b), "not an Arrow IPC file", "ARROW1");
        assertHas(fail("half.arrow", Arrays.copyOf(bytes, bytes.length / 2)), "truncated");
        assertHas(fail("tail.arrow", Arrays.copyOf(bytes, bytes.length - 3)), "truncated");
        assertHas(fail("empty.arrow", new byte[0]), "not an Arrow IPC file");
        b = bytes.clone();
        putLong(b, b.length - 10, 4, 0x7fff0000L); // footer length beyond the file
        assertHas(fail("footer.arrow", b), "footer length");
    }

    /** Byte offset of the 16-byte little-endian pair (a, b) in the file, searched from the start. */
    private int find(long a, long b) {
        ByteBuffer bb = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i + 16 <= bytes.length; i += 8) {
            if (bb.getLong(i) == a && bb.getLong(i + 8) == b) {
                return i;
            }
        }
        return -1;
    }

    /** The Buffer struct {offset, length} of token_embd.weight's data values in its RecordBatch message. */
    private int dataBufferStruct() {
        for (long off = 64; off < 4096; off += 64) {
            int at = find(off, EMBD_BYTES);
            if (at >= 0) {
                return at;
            }
        }
        throw new AssertionError("data buffer struct not found");
    }

    @Test
    void misalignedAndOutOfRangeBuffers() throws IOException {
        int at = dataBufferStruct();
        long off = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).getLong(at);
        byte[] b = bytes.clone();
        putLong(b, at, 8, off - 8); // still 8-aligned, no longer 64
        assertHas(fail("align64.arrow", b), "token_embd.weight", "not a multiple of 64");
        b = bytes.clone();
        putLong(b, at, 8, off - 4);
        assertHas(fail("align8.arrow", b), "misaligned", "8-byte");
        b = bytes.clone();
        putLong(b, at + 8, 8, 1L << 40);
        assertHas(fail("range.arrow", b), "buffer 12", "out of range");
        // the large_binary offsets {0, bytes}: a value shorter than its dtype and shape need
        int offsets = find(0, EMBD_BYTES);
        b = bytes.clone();
        putLong(b, offsets + 8, 8, EMBD_BYTES - 64);
        assertHas(fail("short.arrow", b), "token_embd.weight", "131008 bytes of data", "need 131072");
    }

    @Test
    void schemaWithoutTheExpectedColumns() throws IOException {
        Field name = Field.notNullable("name", ArrowType.Utf8.INSTANCE);
        Field dtype = Field.notNullable("dtype", ArrowType.Utf8.INSTANCE);
        Field shape = new Field("shape", FieldType.notNullable(ArrowType.List.INSTANCE),
                List.of(Field.notNullable("item", new ArrowType.Int(64, true))));
        Map<String, String> md = Map.of("lora4j.format", ArrowModel.FORMAT);
        writeTable("nodata.arrow", new Schema(List.of(name, dtype, shape), md));
        assertHas(fail("nodata.arrow", Files.readAllBytes(tmp.resolve("nodata.arrow"))), "has no column data", "large_binary");
        writeTable("binary.arrow", new Schema(List.of(name, dtype, shape, Field.notNullable("data", ArrowType.Binary.INSTANCE)), md));
        assertHas(fail("binary.arrow", Files.readAllBytes(tmp.resolve("binary.arrow"))), "column 4 is data: binary");
        writeTable("other.arrow", new Schema(List.of(Field.nullable("text", ArrowType.Utf8.INSTANCE))));
        assertHas(fail("other.arrow", Files.readAllBytes(tmp.resolve("other.arrow"))), "column 1 is text: utf8");
        writeTable("nokey.arrow", new Schema(List.of(name, dtype, shape, Field.notNullable("data", ArrowType.LargeBinary.INSTANCE))));
        assertHas(fail("nokey.arrow", Files.readAllBytes(tmp.resolve("nokey.arrow"))), "lora4j.format is missing");
    }

    /** An empty table with {@code schema}, written by Arrow Java. */
    private void writeTable(String file, Schema schema) throws IOException {
        try (BufferAllocator al = new RootAllocator(); VectorSchemaRoot root = VectorSchemaRoot.create(schema, al);
             FileChannel ch = FileChannel.open(tmp.resolve(file), StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             ArrowFileWriter w = new ArrowFileWriter(root, null, ch)) {
            w.start();
            root.setRowCount(0);
            w.writeBatch();
            w.end();
        }
    }

    private static void putLong(byte[] b, int at, int width, long v) {
        for (int i = 0; i < width; i++) {
            b[at + i] = (byte) (v >>> (8 * i));
        }
    }
}

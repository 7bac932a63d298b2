package io.lora4j.model.train;

import com.google.flatbuffers.FlatBufferBuilder;
import io.lora4j.model.format.ModelFormatException;
import org.apache.arrow.flatbuf.Endianness;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.MetadataVersion;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.impl.UnionListWriter;
import org.apache.arrow.vector.ipc.ArrowFileWriter;
import org.apache.arrow.vector.ipc.ArrowStreamWriter;
import org.apache.arrow.vector.ipc.ArrowWriter;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

/** Arrow IPC files and streams give exactly the examples of the equivalent JSONL. */
class ArrowDatasetsTest {
    static final List<String> TEXTS = List.of("Once upon a time there was a dragon.", "Lily liked the park.",
            "The cat sat on the mat and looked at the \"moon\".");

    @TempDir
    Path dir;

    static void assertSameExamples(Datasets.Loaded want, Datasets.Loaded got) {
        assertEquals(want.records(), got.records());
        assertEquals(want.truncated(), got.truncated());
        assertEquals(want.examples().size(), got.examples().size());
        for (int i = 0; i < want.examples().size(); i++) {
            assertArrayEquals(want.examples().get(i).tokens(), got.examples().get(i).tokens(), "example " + i + " tokens");
            assertArrayEquals(want.examples().get(i).targets(), got.examples().get(i).targets(), "example " + i + " targets");
        }
    }

    private Path jsonl(String name, List<String> lines) throws IOException {
        return Files.writeString(dir.resolve(name), String.join("\n", lines) + "\n");
    }

    private static String q(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    /** An Arrow IPC file written by Arrow Java: a text column and an extra id column, two record batches. */
    @Test
    void textFileWrittenByArrowJava() throws IOException {
        Path arrow = dir.resolve("texts.arrow");
        Schema schema = new Schema(List.of(Field.nullable("id", new ArrowType.Int(64, true)), Field.nullable("text", ArrowType.Utf8.INSTANCE)));
        try (BufferAllocator al = new RootAllocator(); VectorSchemaRoot root = VectorSchemaRoot.create(schema, al);
             FileChannel ch = FileChannel.open(arrow, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             ArrowWriter w = new ArrowFileWriter(root, null, ch)) {
            w.start();
            writeTexts(root, TEXTS.subList(0, 2), 0);
            w.writeBatch();
            writeTexts(root, TEXTS.subList(2, 3), 2);
            w.writeBatch();
            w.end();
        }
        Path json = jsonl("texts.jsonl", TEXTS.stream().map(t -> "{\"text\": " + q(t) + "}").toList());
        for (int seqLen : new int[]{8, 64}) {
            assertSameExamples(Datasets.load(json, DatasetsTest.TOK, seqLen), Datasets.load(arrow, DatasetsTest.TOK, seqLen));
        }
    }

    private static void writeTexts(VectorSchemaRoot root, List<String> texts, long firstId) {
        BigIntVector id = (BigIntVector) root.getVector("id");
        VarCharVector text = (VarCharVector) root.getVector("text");
        id.allocateNew(texts.size());
        text.allocateNew();
        for (int i = 0; i < texts.size(); i++) {
            id.set(i, firstId + i);
            text.setSafe(i, texts.get(i).getBytes(StandardCharsets.UTF_8));
        }
        root.setRowCount(texts.size());
    }

    /** An Arrow stream (as the Hugging Face datasets cache keeps) with prompt/completion and messages (content before role). */
    @Test
    void promptCompletionAndMessagesStream() throws IOException {
        Field content = Field.nullable("content", ArrowType.Utf8.INSTANCE);
        Field role = Field.nullable("role", ArrowType.Utf8.INSTANCE);
        Field msg = new Field("item", FieldType.nullable(ArrowType.Struct.INSTANCE), List.of(content, role));
        Schema schema = new Schema(List.of(Field.nullable("prompt", ArrowType.Utf8.INSTANCE), Field.nullable("completion", ArrowType.Utf8.INSTANCE),
                new Field("messages", FieldType.nullable(ArrowType.List.INSTANCE), List.of(msg))));
        String[][] pc = {{"Lily saw", " a cat."}, {null, null}, {"Tom ran", " home fast."}};
        String[][][] chats = {null, {{"user", "Hi"}, {"assistant", "Hello there"}}, null};
        Path arrow = dir.resolve("data-00000-of-00001.arrow");
        try (BufferAllocator al = new RootAllocator(); VectorSchemaRoot root = VectorSchemaRoot.create(schema, al);
             FileChannel ch = FileChannel.open(arrow, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             ArrowWriter w = new ArrowStreamWriter(root, null, ch)) {
            w.start();
            for (int b = 0; b < 3; b++) { // one row per batch: several record batches
                VarCharVector p = (VarCharVector) root.getVector("prompt");
                VarCharVector c = (VarCharVector) root.getVector("completion");
                ListVector m = (ListVector) root.getVector("messages");
                p.allocateNew();
                c.allocateNew();
                m.allocateNew();
                if (pc[b][0] != null) {
                    p.setSafe(0, pc[b][0].getBytes(StandardCharsets.UTF_8));
                    c.setSafe(0, pc[b][1].getBytes(StandardCharsets.UTF_8));
                } else {
                    p.setNull(0);
                    c.setNull(0);
                }
                UnionListWriter lw = m.getWriter();
                lw.setPosition(0);
                if (chats[b] != null) {
                    lw.startList();
                    for (String[] turn : chats[b]) {
                        var sw = lw.struct();
                        sw.start();
                        writeString(al, sw.varChar("content"), turn[1]);
                        writeString(al, sw.varChar("role"), turn[0]);
                        sw.end();
                    }
                    lw.endList();
                } else {
                    m.setNull(0);
                }
                m.setValueCount(1);
                root.setRowCount(1);
                w.writeBatch();
            }
            w.end();
        }
        Path json = jsonl("pc.jsonl", List.of("{\"prompt\": \"Lily saw\", \"completion\": \" a cat.\"}",
                "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there\"}]}",
                "{\"prompt\": \"Tom ran\", \"completion\": \" home fast.\"}"));
        assertSameExamples(Datasets.load(json, DatasetsTest.TOK, 256), Datasets.load(arrow, DatasetsTest.TOK, 256));
        assertSameExamples(Datasets.load(json, DatasetsTest.TOK, 5), Datasets.load(arrow, DatasetsTest.TOK, 5)); // truncated
    }

    private static void writeString(BufferAllocator al, org.apache.arrow.vector.complex.writer.VarCharWriter w, String s) {
        byte[] b = s.getBytes(StandardCharsets.UTF_8);
        try (var buf = al.buffer(b.length)) {
            buf.setBytes(0, b);
            w.writeVarChar(0, b.length, buf);
        }
    }

    /**
     * A stream assembled here byte by byte (no Arrow writer): schema message, two record batches of
     * a {@code text: utf8} column, end-of-stream marker.
     */
    @Test
    void handCraftedStream() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Schema schema = new Schema(List.of(Field.nullable("text", ArrowType.Utf8.INSTANCE)));
        out.write(schema.serializeAsMessage()); // Arrow Java frames it: 0xFFFFFFFF, length, Message, padding
        batch(out, TEXTS.subList(0, 2));
        batch(out, TEXTS.subList(2, 3));
        out.write(le(8).putInt(-1).putInt(0).array());
        Path arrow = Files.write(dir.resolve("hand.arrows"), out.toByteArray());
        Path json = jsonl("hand.jsonl", TEXTS.stream().map(t -> "{\"text\": " + q(t) + "}").toList());
        assertSameExamples(Datasets.load(json, DatasetsTest.TOK, 16), Datasets.load(arrow, DatasetsTest.TOK, 16));

        // cut inside the second record batch: a clear error, not garbage
        byte[] all = out.toByteArray();
        Path cut = Files.write(dir.resolve("cut.arrow"), Arrays.copyOf(all, all.length - 40));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Datasets.load(cut, DatasetsTest.TOK, 16));
        assertTrue(e.getMessage().startsWith(cut.toString()) && e.getMessage().contains("Arrow IPC stream"), e.getMessage());
    }

    /**
     * Lengths a stream declares beyond what it holds fail before anything of that size is
     * allocated (Arrow Java allocates first and reads after), and a big-endian schema is refused:
     * Arrow Java would read its offsets as little-endian.
     */
    @Test
    void declaredSizesAndEndiannessAreCheckedFirst() throws IOException {
        for (short endianness : new short[]{Endianness.Little, Endianness.Big}) {
            ByteArrayOutputStream out = new ByteArrayOutputStream();
            FlatBufferBuilder fb = new FlatBufferBuilder(256);
            int field = Field.nullable("text", ArrowType.Utf8.INSTANCE).getField(fb);
            int fields = org.apache.arrow.flatbuf.Schema.createFieldsVector(fb, new int[]{field});
            int schema = org.apache.arrow.flatbuf.Schema.createSchema(fb, endianness, fields, 0, 0);
            fb.finish(Message.createMessage(fb, MetadataVersion.V5, MessageHeader.Schema, schema, 0, 0));
            frame(out, fb.sizedByteArray(), new byte[0]);
            batch(out, TEXTS);
            out.write(le(8).putInt(-1).putInt(0).array());
            Path arrow = Files.write(dir.resolve("endian-" + endianness + ".arrows"), out.toByteArray());
            if (endianness == Endianness.Little) {
                assertEquals(TEXTS.size(), Datasets.load(arrow, DatasetsTest.TOK, 64).records());
            } else {
                ModelFormatException e = assertThrows(ModelFormatException.class, () -> Datasets.load(arrow, DatasetsTest.TOK, 64));
                assertTrue(e.getMessage().contains("big-endian"), e.getMessage());
            }
        }
        // a record batch that says its body is 10 GB, in a file of a few hundred bytes
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.write(new Schema(List.of(Field.nullable("text", ArrowType.Utf8.INSTANCE))).serializeAsMessage());
        FlatBufferBuilder fb = new FlatBufferBuilder(256);
        RecordBatch.startNodesVector(fb, 0);
        int nodes = fb.endVector();
        RecordBatch.startBuffersVector(fb, 0);
        int buffers = fb.endVector();
        int rb = RecordBatch.createRecordBatch(fb, 1, nodes, buffers, 0, 0);
        fb.finish(Message.createMessage(fb, MetadataVersion.V5, MessageHeader.RecordBatch, rb, 10L << 30, 0));
        frame(out, fb.sizedByteArray(), new byte[64]);
        Path huge = Files.write(dir.resolve("huge.arrows"), out.toByteArray());
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Datasets.load(huge, DatasetsTest.TOK, 64));
        assertTrue(e.getMessage().contains("declares a body of " + (10L << 30) + " bytes, but only 64 follow"), e.getMessage());
    }

    /** Body: validity (absent, no nulls), int32 offsets, UTF-8 bytes; each buffer 8-byte aligned. */
    private static void batch(ByteArrayOutputStream out, List<String> texts) throws IOException {
        int n = texts.size();
        ByteBuffer offsets = le(align8(4 * (n + 1)));
        ByteArrayOutputStream values = new ByteArrayOutputStream();
        offsets.putInt(0);
        for (String t : texts) {
            values.write(t.getBytes(StandardCharsets.UTF_8));
            offsets.putInt(values.size());
        }
        int valuesLen = values.size();
        byte[] body = new byte[offsets.capacity() + align8(valuesLen)];
        System.arraycopy(offsets.array(), 0, body, 0, offsets.capacity());
        System.arraycopy(values.toByteArray(), 0, body, offsets.capacity(), valuesLen);
        FlatBufferBuilder fb = new FlatBufferBuilder(256);
        RecordBatch.startNodesVector(fb, 1);
        FieldNode.createFieldNode(fb, n, 0);
        int nodes = fb.endVector();
        RecordBatch.startBuffersVector(fb, 3); // back to front: values, offsets, validity
        org.apache.arrow.flatbuf.Buffer.createBuffer(fb, offsets.capacity(), valuesLen);
        org.apache.arrow.flatbuf.Buffer.createBuffer(fb, 0, 4L * (n + 1));
        org.apache.arrow.flatbuf.Buffer.createBuffer(fb, 0, 0);
        int buffers = fb.endVector();
        int rb = RecordBatch.createRecordBatch(fb, n, nodes, buffers, 0, 0);
        fb.finish(Message.createMessage(fb, MetadataVersion.V5, MessageHeader.RecordBatch, rb, body.length, 0));
        frame(out, fb.sizedByteArray(), body);
    }

    /** 0xFFFFFFFF, int32 metadata length (padded to 8), the Message flatbuffer, padding, the body. */
    private static void frame(ByteArrayOutputStream out, byte[] message, byte[] body) throws IOException {
        int padded = align8(message.length);
        out.write(le(8).putInt(-1).putInt(padded).array());
        out.write(Arrays.copyOf(message, padded));
        out.write(body);
    }

    private static int align8(int x) {
        return (x + 7) / 8 * 8;
    }

    private static ByteBuffer le(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    @Test
    void wrongColumnsAndBadFilesAreNamed() throws IOException {
        Path ints = dir.resolve("ints.arrow");
        Schema schema = new Schema(List.of(Field.nullable("text", new ArrowType.Int(64, true))));
        writeEmptyBatch(ints, schema);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Datasets.load(ints, DatasetsTest.TOK, 16));
        assertTrue(e.getMessage().contains("ints.arrow") && e.getMessage().contains("column text") && e.getMessage().contains("string"), e.getMessage());

        Path other = dir.resolve("other.arrow");
        writeEmptyBatch(other, new Schema(List.of(Field.nullable("label", new ArrowType.Int(64, true)))));
        e = assertThrows(ModelFormatException.class, () -> Datasets.load(other, DatasetsTest.TOK, 16));
        assertTrue(e.getMessage().contains("no text, prompt+completion or messages column") && e.getMessage().contains("label"), e.getMessage());

        Path garbage = Files.writeString(dir.resolve("garbage.arrow"), "this is not arrow at all");
        e = assertThrows(ModelFormatException.class, () -> Datasets.load(garbage, DatasetsTest.TOK, 16));
        assertTrue(e.getMessage().contains("garbage.arrow") && e.getMessage().contains("not a readable Arrow IPC stream"), e.getMessage());

        Path noRows = dir.resolve("norows.arrow");
        writeEmptyBatch(noRows, new Schema(List.of(Field.nullable("text", ArrowType.Utf8.INSTANCE))));
        e = assertThrows(ModelFormatException.class, () -> Datasets.load(noRows, DatasetsTest.TOK, 16));
        assertTrue(e.getMessage().contains("no records"), e.getMessage());
    }

    private static void writeEmptyBatch(Path file, Schema schema) throws IOException {
        try (BufferAllocator al = new RootAllocator(); VectorSchemaRoot root = VectorSchemaRoot.create(schema, al);
             FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE);
             ArrowWriter w = new ArrowFileWriter(root, null, ch)) {
            w.start();
            root.setRowCount(0);
            w.writeBatch();
            w.end();
        }
    }
}

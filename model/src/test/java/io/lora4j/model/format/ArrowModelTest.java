package io.lora4j.model.format;

import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.MergedExport;
import io.lora4j.model.State;
import org.apache.arrow.flatbuf.Block;
import org.apache.arrow.flatbuf.Endianness;
import org.apache.arrow.flatbuf.Footer;
import org.apache.arrow.flatbuf.KeyValue;
import org.apache.arrow.flatbuf.Schema;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.LargeVarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.reflect.Array;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** GGUF / llama2.c → Arrow → the same tensors (zero copy, aligned), config, metadata, tokenizer and logits. */
class ArrowModelTest {
    @TempDir
    Path tmp;

    static Path convert(Path model, Path tokenizer, Path out) throws IOException {
        try (WeightSource src = ModelFiles.open(model)) {
            MergedExport.writeArrow(new Llama(src), tokenizer, out);
        }
        return out;
    }

    @Test
    void storiesGgufRoundTripsTensorsMetadataAndConfig() throws IOException {
        Path arrow = convert(TestFiles.stories260kGguf(), null, tmp.resolve("stories.arrow"));
        try (GgufFile g = GgufFile.open(TestFiles.stories260kGguf()); WeightSource a = ModelFiles.open(arrow)) {
            ArrowModel am = assertInstanceOf(ArrowModel.class, a);
            assertEquals("arrow", a.format());
            assertEquals("gguf", am.sourceFormat());
            assertEquals(g.config(), a.config());
            assertSameTensors(g, a);
            assertEquals(g.metadata().keySet(), a.metadata().keySet());
            for (Map.Entry<String, Object> e : g.metadata().entrySet()) {
                assertValueEquals(e.getKey(), e.getValue(), a.metadata().get(e.getKey()));
                assertEquals(MetadataJson.typeOf(g, e.getKey(), e.getValue()), am.metadataType(e.getKey()), e.getKey());
            }
        }
    }

    /** Same names, types, ggml shapes and bytes; every tensor is a 64-byte aligned slice of the mapped file. */
    static void assertSameTensors(WeightSource expected, WeightSource arrow) {
        assertEquals(new ArrayList<>(expected.tensors().keySet()), new ArrayList<>(arrow.tensors().keySet()));
        for (TensorInfo t : expected.tensors().values()) {
            TensorInfo u = arrow.tensor(t.name());
            assertEquals(t.type(), u.type(), t.name());
            assertArrayEquals(t.shape(), u.shape(), t.name());
            assertEquals(-1L, t.data().mismatch(u.data()), t.name() + ": bytes differ");
            assertTrue(u.data().isMapped(), t.name() + " is not a view of the mapping");
            assertEquals(0, u.data().address() % ArrowModel.ALIGNMENT, t.name() + " is not 64-byte aligned");
        }
    }

    private static void assertValueEquals(String key, Object want, Object got) {
        assertNotNull(got, key);
        assertEquals(want.getClass(), got.getClass(), key);
        if (want.getClass().isArray()) {
            assertEquals(Array.getLength(want), Array.getLength(got), key);
            for (int i = 0; i < Array.getLength(want); i++) {
                assertValueEquals(key + "[" + i + "]", Array.get(want, i), Array.get(got, i));
            }
        } else {
            assertEquals(want, got, key);
        }
    }

    /** Arrow Java's own reader (ArrowFileReader, buffers copied into its allocator) sees the table: one row per tensor. */
    @Test
    void arrowJavaReadsTheTable() throws IOException {
        Path gguf = tmp.resolve("tiny-q8.gguf");
        RandomModel.write(gguf, RandomModel.Preset.TINY, GgmlType.Q8_0, 3);
        Path arrow = convert(gguf, null, tmp.resolve("tiny-q8.arrow"));
        List<String> names = new ArrayList<>();
        try (GgufFile g = GgufFile.open(gguf); BufferAllocator al = new RootAllocator();
             FileChannel ch = FileChannel.open(arrow, StandardOpenOption.READ); ArrowFileReader r = new ArrowFileReader(ch, al)) {
            VectorSchemaRoot root = r.getVectorSchemaRoot();
            assertEquals(List.of("name", "dtype", "shape", "data"), root.getSchema().getFields().stream().map(f -> f.getName()).toList());
            assertEquals(ArrowType.LargeBinary.INSTANCE, root.getSchema().findField("data").getType());
            assertTrue(root.getSchema().getCustomMetadata().get("lora4j.config").contains("\"hidden_size\":64"));
            while (r.loadNextBatch()) {
                VarCharVector name = (VarCharVector) root.getVector("name");
                VarCharVector dtype = (VarCharVector) root.getVector("dtype");
                ListVector shape = (ListVector) root.getVector("shape");
                LargeVarBinaryVector data = (LargeVarBinaryVector) root.getVector("data");
                for (int i = 0; i < root.getRowCount(); i++) {
                    String n = name.getObject(i).toString();
                    TensorInfo t = g.tensor(n);
                    names.add(n);
                    assertEquals(t.type().name().toLowerCase(java.util.Locale.ROOT), dtype.getObject(i).toString());
                    List<?> dims = shape.getObject(i);
                    for (int d = 0; d < dims.size(); d++) { // row-major: outermost first
                        assertEquals(t.shape()[dims.size() - 1 - d], ((Number) dims.get(d)).longValue(), n);
                    }
                    assertEquals(-1L, MemorySegment.ofArray(data.getObject(i)).mismatch(t.data()), n + ": bytes differ");
                }
            }
            assertEquals(new ArrayList<>(g.tensors().keySet()), names);
            assertTrue(names.stream().anyMatch(n -> g.tensor(n).type() == GgmlType.Q8_0));
        }
    }

    /** The stream inside the file (after "ARROW1" and padding) reads on its own with ArrowStreamReader: schema, one batch per tensor, end. */
    @Test
    void embeddedStreamReadsWithArrowStreamReader() throws IOException {
        Path arrow = convert(TestFiles.stories260kGguf(), null, tmp.resolve("s.arrow"));
        try (GgufFile g = GgufFile.open(TestFiles.stories260kGguf()); BufferAllocator al = new RootAllocator();
             FileChannel ch = FileChannel.open(arrow, StandardOpenOption.READ)) {
            ch.position(8);
            try (ArrowStreamReader r = new ArrowStreamReader(ch, al)) {
                VectorSchemaRoot root = r.getVectorSchemaRoot();
                assertEquals(ArrowModel.FORMAT, root.getSchema().getCustomMetadata().get("lora4j.format"));
                int rows = 0;
                while (r.loadNextBatch()) {
                    rows += root.getRowCount();
                    String name = root.getVector("name").getObject(0).toString();
                    byte[] data = ((LargeVarBinaryVector) root.getVector("data")).getObject(0);
                    assertEquals(-1L, MemorySegment.ofArray(data).mismatch(g.tensor(name).data()), name);
                }
                assertEquals(g.tensors().size(), rows);
            }
        }
    }

    /** F16 and Q8_0 random models: identical tensors and bit-identical logits from the GGUF and the Arrow file. */
    @Test
    void randomF16AndQ8ModelsGiveTheSameLogits() throws IOException {
        for (GgmlType type : new GgmlType[]{GgmlType.F16, GgmlType.Q8_0}) {
            Path gguf = tmp.resolve("tiny-" + type + ".gguf");
            RandomModel.write(gguf, RandomModel.Preset.TINY, type, 7);
            Path arrow = convert(gguf, null, tmp.resolve("tiny-" + type + ".arrow"));
            try (LoadedModel g = LoadedModel.open(gguf, null); LoadedModel a = LoadedModel.open(arrow, null);
                 Backend b = Backend.named("jvm")) {
                assertSameTensors(g.source(), a.source());
                int[] ids = g.tokenizer().encode("Once upon a time there was a dragon");
                assertArrayEquals(ids, a.tokenizer().encode("Once upon a time there was a dragon"), "tokenizer");
                State sg = g.llama().newState(16, 64);
                State sa = a.llama().newState(16, 64);
                float[] lg = g.llama().forward(b, sg, ids, 0, ids.length, 0).clone();
                float[] la = a.llama().forward(b, sa, ids, 0, ids.length, 0);
                assertArrayEquals(lg, la, type + ": logits differ");
            }
        }
    }

    /** A llama2.c checkpoint has no tokenizer inside: the tok512.bin beside it is embedded and found again. */
    @Test
    void llama2cSourceEmbedsItsTokenizer() throws IOException {
        Path arrow = convert(TestFiles.stories260kBin(), null, tmp.resolve("bin.arrow"));
        try (LoadedModel bin = LoadedModel.open(TestFiles.stories260kBin(), null); LoadedModel a = LoadedModel.open(arrow, null)) {
            ArrowModel am = (ArrowModel) a.source();
            assertEquals("llama2c", am.sourceFormat());
            assertEquals("tok512.bin", am.embeddedTokenizer().fileName());
            assertSameTensors(bin.source(), a.source());
            assertArrayEquals(bin.tokenizer().encode("Once upon a time"), a.tokenizer().encode("Once upon a time"));
            assertEquals(bin.llama().config(), a.llama().config());
        }
    }

    /** Converting an Arrow model again gives the same file contents (metadata types survive). */
    @Test
    void arrowToArrowIsStable() throws IOException {
        Path a1 = convert(TestFiles.stories260kGguf(), null, tmp.resolve("a1.arrow"));
        Path a2 = convert(a1, null, tmp.resolve("a2.arrow"));
        assertEquals(-1L, Files.mismatch(a1, a2));
    }

    /**
     * Every single-byte corruption of the flatbuffers (the first and last record batch's metadata, the
     * footer's root, blocks and schema tables) either still opens or is a ModelFormatException naming
     * the file: flatbuffers return null for an absent table, which must not become a
     * NullPointerException (a stack trace at the CLI).
     */
    @Test
    void corruptMetadataBytesAreModelFormatErrors() throws IOException {
        Path good = convert(TestFiles.stories260kGguf(), null, tmp.resolve("good.arrow"));
        byte[] bytes = Files.readAllBytes(good);
        int footerStart = footerStart(bytes);
        Footer footer = footer(bytes);
        List<int[]> regions = new ArrayList<>();
        for (int b : new int[]{0, footer.recordBatchesLength() - 1}) {
            Block block = footer.recordBatches(new Block(), b);
            regions.add(new int[]{(int) block.offset(), (int) block.offset() + block.metaDataLength()});
        }
        regions.add(new int[]{footerStart, Math.min(footerStart + 1024, bytes.length - 10)}); // root table, blocks
        regions.add(new int[]{Math.max(footerStart, bytes.length - 10 - 1024), bytes.length - 10}); // schema fields, types
        Path bad = Files.write(tmp.resolve("bad.arrow"), bytes);
        int rejected = 0;
        try (FileChannel ch = FileChannel.open(bad, StandardOpenOption.WRITE)) {
            for (int[] r : regions) {
                for (int i = r[0]; i < r[1]; i++) {
                    for (int v : new int[]{0, 0xff, bytes[i] ^ 0x10}) {
                        ch.write(ByteBuffer.wrap(new byte[]{(byte) v}), i); // one byte changed in place, then put back
                        try (ArrowModel m = ArrowModel.open(bad)) {
                            assertEquals(48, m.tensors().size());
                        } catch (ModelFormatException e) {
                            assertTrue(e.getMessage().startsWith(bad.toString()), e.getMessage());
                            rejected++;
                        } catch (RuntimeException e) {
                            throw new AssertionError("byte " + i + " set to " + v + ": " + e, e);
                        }
                        ch.write(ByteBuffer.wrap(new byte[]{bytes[i]}), i);
                    }
                }
            }
        }
        assertTrue(rejected > 100, rejected + " corruptions rejected");
    }

    /**
     * A file whose schema declares big-endian buffers is refused with that reason: the tensors'
     * bytes are used in place as little-endian. The same file with its footer rebuilt as
     * little-endian (the rebuild itself changes nothing else) opens.
     */
    @Test
    void bigEndianSchemaIsRefused() throws IOException {
        Path good = convert(TestFiles.stories260kGguf(), null, tmp.resolve("good.arrow"));
        Path big = withEndianness(good, Endianness.Big, tmp.resolve("big.arrow"));
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ArrowModel.open(big).close());
        assertTrue(e.getMessage().startsWith(big + ": the schema says its buffers are big-endian"), e.getMessage());
        try (ArrowModel m = ArrowModel.open(withEndianness(good, Endianness.Little, tmp.resolve("little.arrow")))) {
            assertEquals(48, m.tensors().size());
        }
    }

    /** Where an Arrow file's footer starts: before its int32 length and the closing "ARROW1". */
    static int footerStart(byte[] file) {
        return file.length - 10 - ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).getInt(file.length - 10);
    }

    static Footer footer(byte[] file) {
        return Footer.getRootAsFooter(ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN).position(footerStart(file)).slice()
                .order(ByteOrder.LITTLE_ENDIAN));
    }

    /** {@code src} with its footer rebuilt, the schema's endianness field written out as {@code endianness}. */
    static Path withEndianness(Path src, short endianness, Path dst) throws IOException {
        byte[] bytes = Files.readAllBytes(src);
        int footerStart = footerStart(bytes);
        Footer old = footer(bytes);
        Schema schema = old.schema();
        com.google.flatbuffers.FlatBufferBuilder fb = new com.google.flatbuffers.FlatBufferBuilder(1 << 12).forceDefaults(true);
        org.apache.arrow.vector.types.pojo.Schema pojo = org.apache.arrow.vector.types.pojo.Schema.convertSchema(schema);
        int[] fields = new int[pojo.getFields().size()];
        for (int i = 0; i < fields.length; i++) {
            fields[i] = pojo.getFields().get(i).getField(fb);
        }
        int[] kvs = new int[schema.customMetadataLength()];
        for (int i = 0; i < kvs.length; i++) {
            KeyValue kv = schema.customMetadata(i);
            kvs[i] = KeyValue.createKeyValue(fb, fb.createString(kv.key()), fb.createString(kv.value()));
        }
        int schemaOff = Schema.createSchema(fb, endianness, Schema.createFieldsVector(fb, fields),
                Schema.createCustomMetadataVector(fb, kvs), 0);
        Footer.startRecordBatchesVector(fb, old.recordBatchesLength());
        for (int b = old.recordBatchesLength() - 1; b >= 0; b--) {
            Block k = old.recordBatches(new Block(), b);
            Block.createBlock(fb, k.offset(), k.metaDataLength(), k.bodyLength());
        }
        int blocks = fb.endVector();
        Footer.startFooter(fb);
        Footer.addVersion(fb, old.version());
        Footer.addSchema(fb, schemaOff);
        Footer.addRecordBatches(fb, blocks);
        fb.finish(Footer.endFooter(fb));
        byte[] footer = fb.sizedByteArray();
        ByteBuffer out = ByteBuffer.allocate(footerStart + footer.length + 10).order(ByteOrder.LITTLE_ENDIAN);
        out.put(bytes, 0, footerStart).put(footer).putInt(footer.length).put(ArrowModel.MAGIC);
        return Files.write(dst, out.array());
    }

    /**
     * A tied model whose lm_head was trained in full (modules_to_save) and merged: the Arrow file gets
     * its own output.weight, the merged q_proj and the untouched tensors, and gives the merged logits.
     */
    @Test
    void mergedTiedModelGetsItsOwnOutputMatrix() throws IOException {
        Llama m = new Llama(new io.lora4j.model.TinyModel(io.lora4j.model.TinyModel.config(io.lora4j.model.arch.LlamaConfig.RopeStyle.ADJACENT),
                5, true));
        io.lora4j.model.lora.LoraConfig c = new io.lora4j.model.lora.LoraConfig(2, 4f, 0f, List.of("q_proj"), null, "none", false,
                "false", List.of(), Map.of(), Map.of(), List.of("lm_head"));
        io.lora4j.model.lora.LoraAdapter ad = new io.lora4j.model.lora.LoraAdapter("default", c, m, 3);
        java.util.SplittableRandom r = new java.util.SplittableRandom(8);
        for (int i = 0; i < ad.lmHead.len(); i++) {
            ad.lmHead.set(i, ad.lmHead.get(i) + (float) (r.nextDouble() - 0.5));
        }
        m.merge(ad);
        assertFalse(m.source().tensors().containsKey("output.weight"));
        Path out = tmp.resolve("merged-tied.arrow");
        MergedExport.writeArrow(m, null, out);
        int[] ids = {1, 4, 7, 2, 9};
        try (ArrowModel a = ArrowModel.open(out); Backend b = Backend.named("jvm")) {
            assertEquals(m.source().tensors().size() + 1, a.tensors().size());
            assertTrue(a.tensors().containsKey("output.weight"));
            Llama back = new Llama(a);
            float[] want = m.forward(b, m.newState(8, 16), ids, 0, ids.length, 0).clone();
            float[] got = back.forward(b, back.newState(8, 16), ids, 0, ids.length, 0);
            assertArrayEquals(want, got, "merged logits");
            m.unmerge();
            float[] base = m.forward(b, m.newState(8, 16), ids, 0, ids.length, 0);
            assertFalse(java.util.Arrays.equals(base, got), "the file holds the merged model, not the base");
        }
    }
}

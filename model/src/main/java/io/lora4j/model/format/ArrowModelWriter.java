package io.lora4j.model.format;

import com.google.flatbuffers.FlatBufferBuilder;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.MetadataVersion;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.vector.ipc.message.ArrowBlock;
import org.apache.arrow.vector.ipc.message.ArrowFooter;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;
import org.apache.arrow.vector.types.pojo.FieldType;
import org.apache.arrow.vector.types.pojo.Schema;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes the Arrow model layout of {@link ArrowModel}: one record batch (one row) per tensor, every
 * message's metadata and every body padded to a multiple of {@link ArrowModel#ALIGNMENT} bytes and
 * the data buffer placed at a multiple of it inside its body, so each tensor's bytes start at a
 * 64-byte aligned file offset. Tensor bytes are filled straight into a mapping of the output file
 * (a multi-GB model never sits on the heap); {@link #write(Path)} writes it durably
 * ({@link DurableFiles}).
 */
public final class ArrowModelWriter {
    private static final int A = ArrowModel.ALIGNMENT;

    private record Pending(String name, GgmlType type, long[] shape, long bytes, GgufWriter.TensorFill fill) {
    }

    private final Map<String, String> schemaMetadata = new LinkedHashMap<>();
    private final Map<String, Object> metadata = new LinkedHashMap<>();
    private final Map<String, String> metadataTypes = new LinkedHashMap<>();
    private final List<Pending> tensors = new ArrayList<>();

    public ArrowModelWriter() {
        schemaMetadata.put(ArrowModel.KEY_FORMAT, ArrowModel.FORMAT);
    }

    /** The hyper-parameters ({@code lora4j.config}) and {@code lora4j.source_format} of {@code src}, and its metadata. */
    public ArrowModelWriter describe(WeightSource src) {
        config(src.config());
        schemaMetadata.put(ArrowModel.KEY_SOURCE, src instanceof ArrowModel a ? a.sourceFormat() : src.format());
        return addMetadataOf(src, "");
    }

    public ArrowModelWriter config(LlamaConfig c) {
        schemaMetadata.put(ArrowModel.KEY_CONFIG, ArrowConfig.toJson(c));
        return this;
    }

    /** Adds (or replaces) every metadata key of {@code src} that starts with {@code prefix}, keeping its exact type. */
    public ArrowModelWriter addMetadataOf(WeightSource src, String prefix) {
        for (Map.Entry<String, Object> e : src.metadata().entrySet()) {
            if (e.getKey().startsWith(prefix)) {
                metadata.put(e.getKey(), e.getValue());
                metadataTypes.put(e.getKey(), MetadataJson.typeOf(src, e.getKey(), e.getValue()));
            }
        }
        return this;
    }

    /** Adds (or replaces) one metadata value with its GGUF type name (u32, f32, string, array&lt;string&gt;, …). */
    public ArrowModelWriter putMetadata(String key, String type, Object value) {
        metadata.put(key, value);
        metadataTypes.put(key, type);
        return this;
    }

    /** Drops the metadata keys starting with {@code prefix} (e.g. "tokenizer." before adding another tokenizer's). */
    public ArrowModelWriter removeMetadata(String prefix) {
        metadata.keySet().removeIf(k -> k.startsWith(prefix));
        metadataTypes.keySet().removeIf(k -> k.startsWith(prefix));
        return this;
    }

    /** Embeds a tokenizer file ({@code tokenizer.json}, {@code tokenizer.model}, llama2.c {@code tokenizer.bin}) and its tokenizer_config.json. */
    public ArrowModelWriter tokenizer(String fileName, byte[] data, byte[] config) {
        schemaMetadata.put(ArrowModel.KEY_TOKENIZER_FILE, fileName);
        schemaMetadata.put(ArrowModel.KEY_TOKENIZER_DATA, Base64.getEncoder().encodeToString(data));
        if (config != null) {
            schemaMetadata.put(ArrowModel.KEY_TOKENIZER_CONFIG, Base64.getEncoder().encodeToString(config));
        } else {
            schemaMetadata.remove(ArrowModel.KEY_TOKENIZER_CONFIG);
        }
        return this;
    }

    /** Adds a tensor of {@code shape} in ggml order (ne0 first) whose bytes {@code fill} produces when the file is written. */
    public ArrowModelWriter addTensor(String name, GgmlType type, long[] shape, GgufWriter.TensorFill fill) {
        long bytes = GgufWriter.tensorBytes(name, type, shape);
        if (tensors.stream().anyMatch(p -> p.name.equals(name))) {
            throw new IllegalArgumentException("duplicate tensor " + name);
        }
        tensors.add(new Pending(name, type, shape.clone(), bytes, fill));
        return this;
    }

    /** Adds a tensor copied from {@code src} (e.g. a slice of another mapped file); its size must match. */
    public ArrowModelWriter addTensor(String name, GgmlType type, long[] shape, MemorySegment src) {
        return addTensor(name, type, shape, GgufWriter.copyOf(name, src));
    }

    public ArrowModelWriter addTensor(TensorInfo t) {
        return addTensor(t.name(), t.type(), t.shape(), t.data());
    }

    /** The table's schema: name, dtype, shape (row-major), data, and the schema metadata. */
    Schema schema() {
        Map<String, String> md = new LinkedHashMap<>(schemaMetadata);
        if (!metadata.isEmpty()) {
            MetadataJson.Encoded e = MetadataJson.encode(metadata, metadataTypes);
            md.put(ArrowModel.KEY_METADATA, e.values());
            md.put(ArrowModel.KEY_TYPES, e.types());
        }
        Field item = new Field("item", FieldType.notNullable(new ArrowType.Int(64, true)), null);
        return new Schema(List.of(
                new Field("name", FieldType.notNullable(ArrowType.Utf8.INSTANCE), null),
                new Field("dtype", FieldType.notNullable(ArrowType.Utf8.INSTANCE), null),
                new Field("shape", new FieldType(false, ArrowType.List.INSTANCE, null,
                        Map.of("lora4j.order", "row-major, outermost dimension first (numpy order; ggml's ne reversed)")), List.of(item)),
                new Field("data", FieldType.notNullable(ArrowType.LargeBinary.INSTANCE), null)), md);
    }

    /** Writes {@code target} durably (temp file, force, atomic rename: {@link DurableFiles}). */
    public void write(Path target) throws IOException {
        Schema schema = schema();
        DurableFiles.write(target, ch -> {
            long pos = put(ch, 0, ByteBuffer.wrap(new byte[]{'A', 'R', 'R', 'O', 'W', '1', 0, 0}));
            pos = put(ch, pos, message(schemaMessage(schema), pos));
            List<ArrowBlock> blocks = new ArrayList<>();
            for (Pending p : tensors) {
                long start = pos;
                Batch b = new Batch(p);
                ByteBuffer meta = message(b.message(), pos);
                pos = put(ch, pos, meta);
                long bodyStart = pos;
                put(ch, bodyStart, b.smallBuffers());
                if (p.bytes > 0) {
                    try (Arena arena = Arena.ofShared()) { // shared: a fill may write from several threads
                        p.fill.fill(ch.map(FileChannel.MapMode.READ_WRITE, bodyStart + b.dataOffset, p.bytes, arena));
                    }
                }
                pos = bodyStart + b.bodyLength;
                blocks.add(new ArrowBlock(start, meta.capacity(), b.bodyLength));
            }
            pos = put(ch, pos, le(8).putInt(-1).putInt(0).flip()); // end-of-stream marker
            FlatBufferBuilder fb = new FlatBufferBuilder(1 << 12);
            fb.finish(new ArrowFooter(schema, List.of(), blocks).writeTo(fb));
            byte[] footer = fb.sizedByteArray();
            pos = put(ch, pos, ByteBuffer.wrap(footer));
            pos = put(ch, pos, le(4).putInt(footer.length).flip());
            pos = put(ch, pos, ByteBuffer.wrap(ArrowModel.MAGIC));
            ch.truncate(pos);
        });
    }

    /**
     * One tensor's record batch: body buffers in field pre-order, each 8-byte aligned (validity
     * buffers empty: no nulls), the data values at a multiple of 64 and the body padded to 64.
     */
    private static final class Batch {
        final Pending p;
        final byte[] name;
        final byte[] dtype;
        final long[][] buffers = new long[ArrowModel.BUFFERS][2]; // {offset, length} relative to the body
        final long dataOffset;
        final long bodyLength;

        Batch(Pending p) {
            this.p = p;
            this.name = p.name.getBytes(StandardCharsets.UTF_8);
            this.dtype = ArrowModel.dtypeName(p.type).getBytes(StandardCharsets.UTF_8);
            long at = 0;
            int i = 0;
            at = buffer(i++, at, 0);                     // name validity
            at = buffer(i++, at, 8);                     // name offsets {0, len}
            at = buffer(i++, at, name.length);           // name bytes
            at = buffer(i++, at, 0);                     // dtype validity
            at = buffer(i++, at, 8);                     // dtype offsets
            at = buffer(i++, at, dtype.length);          // dtype bytes
            at = buffer(i++, at, 0);                     // shape validity
            at = buffer(i++, at, 8);                     // shape offsets {0, dims}
            at = buffer(i++, at, 0);                     // shape.item validity
            at = buffer(i++, at, 8L * p.shape.length);   // shape.item int64 values
            at = buffer(i++, at, 0);                     // data validity
            at = buffer(i++, at, 16);                    // data int64 offsets {0, bytes}
            dataOffset = align(at, A);
            buffer(i, dataOffset, p.bytes);              // data bytes
            bodyLength = align(dataOffset + p.bytes, A);
        }

        private long buffer(int i, long at, long len) {
            buffers[i][0] = at;
            buffers[i][1] = len;
            return align(at + len, 8);
        }

        /** The body up to the data values: offsets, names, shape. */
        ByteBuffer smallBuffers() {
            ByteBuffer b = le((int) dataOffset);
            b.putInt((int) buffers[1][0], 0).putInt((int) buffers[1][0] + 4, name.length).put((int) buffers[2][0], name);
            b.putInt((int) buffers[4][0], 0).putInt((int) buffers[4][0] + 4, dtype.length).put((int) buffers[5][0], dtype);
            b.putInt((int) buffers[7][0], 0).putInt((int) buffers[7][0] + 4, p.shape.length);
            for (int d = 0; d < p.shape.length; d++) { // row-major: outermost first
                b.putLong((int) buffers[9][0] + 8 * d, p.shape[p.shape.length - 1 - d]);
            }
            b.putLong((int) buffers[11][0], 0).putLong((int) buffers[11][0] + 8, p.bytes);
            return b;
        }

        /** The RecordBatch Message flatbuffer. */
        byte[] message() {
            FlatBufferBuilder fb = new FlatBufferBuilder(512);
            long[][] nodes = {{1, 0}, {1, 0}, {1, 0}, {p.shape.length, 0}, {1, 0}};
            RecordBatch.startNodesVector(fb, nodes.length);
            for (int i = nodes.length - 1; i >= 0; i--) { // flatbuffers vectors are built back to front
                FieldNode.createFieldNode(fb, nodes[i][0], nodes[i][1]);
            }
            int nodesVec = fb.endVector();
            RecordBatch.startBuffersVector(fb, buffers.length);
            for (int i = buffers.length - 1; i >= 0; i--) {
                org.apache.arrow.flatbuf.Buffer.createBuffer(fb, buffers[i][0], buffers[i][1]);
            }
            int buffersVec = fb.endVector();
            RecordBatch.startRecordBatch(fb);
            RecordBatch.addLength(fb, 1);
            RecordBatch.addNodes(fb, nodesVec);
            RecordBatch.addBuffers(fb, buffersVec);
            int rb = RecordBatch.endRecordBatch(fb);
            Message.startMessage(fb);
            Message.addVersion(fb, MetadataVersion.V5);
            Message.addHeaderType(fb, MessageHeader.RecordBatch);
            Message.addHeader(fb, rb);
            Message.addBodyLength(fb, bodyLength);
            fb.finish(Message.endMessage(fb));
            return fb.sizedByteArray();
        }
    }

    /**
     * An encapsulated message's metadata: 0xFFFFFFFF, int32 length, the flatbuffer, zero padding so
     * that what follows (the body) starts at a multiple of 64 in the file.
     */
    private static ByteBuffer message(byte[] flatbuffer, long filePos) {
        long end = align(filePos + 8 + flatbuffer.length, A);
        int total = (int) (end - filePos);
        ByteBuffer b = le(total);
        b.putInt(-1).putInt(total - 8).put(flatbuffer);
        return b.position(0);
    }

    /** The Schema Message flatbuffer (Arrow Java's serializeAsMessage returns it already framed: drop the 8-byte prefix). */
    static byte[] schemaMessage(Schema schema) {
        byte[] framed = schema.serializeAsMessage();
        int len = ByteBuffer.wrap(framed, 4, 4).order(ByteOrder.LITTLE_ENDIAN).getInt();
        return java.util.Arrays.copyOfRange(framed, 8, 8 + len);
    }

    private static ByteBuffer le(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static long put(FileChannel ch, long pos, ByteBuffer b) throws IOException {
        b.position(0);
        while (b.hasRemaining()) {
            pos += ch.write(b, pos);
        }
        return pos;
    }

    static long align(long x, long a) {
        return (x + a - 1) / a * a;
    }
}

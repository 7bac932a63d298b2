package io.lora4j.model.format;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import org.apache.arrow.flatbuf.Block;
import org.apache.arrow.flatbuf.Buffer;
import org.apache.arrow.flatbuf.Endianness;
import org.apache.arrow.flatbuf.Field;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Footer;
import org.apache.arrow.flatbuf.Int;
import org.apache.arrow.flatbuf.KeyValue;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.flatbuf.Schema;
import org.apache.arrow.flatbuf.Type;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.BufferUnderflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Base64;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Locale;
import java.util.Map;

/**
 * A model stored as one Arrow IPC file (random-access format), memory-mapped and used in place:
 * the tensors' bytes are slices of the mapping, nothing is copied, and opening reads only the
 * footer and one small record-batch header per tensor (O(tensors), not O(bytes)).
 *
 * <p>Layout. The file is a table with one row per tensor and the columns
 * {@code name: utf8} (canonical GGUF name), {@code dtype: utf8} (ggml type name: f32, f16, bf16,
 * q8_0, q4_0, q4_k, …), {@code shape: list<int64>} (row-major, outermost first, as numpy and
 * safetensors write it; the reverse of ggml's ne order) and {@code data: large_binary} (the raw
 * bytes, ggml block layout for quantized types). {@link ArrowModelWriter} writes one record batch
 * per tensor and pads each batch body so that every tensor's bytes start at a file offset that is
 * a multiple of {@link #ALIGNMENT}. Schema metadata (all strings): {@code lora4j.format} =
 * {@value #FORMAT}, {@code lora4j.config} (JSON hyper-parameters with Hugging Face config.json
 * names plus {@code rope_style}), {@code lora4j.source_format}, {@code lora4j.metadata} and
 * {@code lora4j.metadata_types} (the source's metadata, see {@link MetadataJson}, including a
 * GGUF's {@code tokenizer.ggml.*} keys), and for non-GGUF sources an embedded tokenizer file:
 * {@code lora4j.tokenizer.file} (its name), {@code lora4j.tokenizer.data} (base64) and optionally
 * {@code lora4j.tokenizer.config} (base64 tokenizer_config.json).
 *
 * <p>IPC framing (arrow/format/File.fbs, Message.fbs): "ARROW1", 2 padding bytes, the stream
 * (schema message, record batch messages, end-of-stream marker), the Footer flatbuffer, its int32
 * length and "ARROW1". A message is {0xFFFFFFFF, int32 metadata length, Message flatbuffer, padding}
 * followed by its body; the footer's blocks give each record batch's offset, metadata length
 * (prefix included) and body length. Buffers of a batch are in field pre-order: per utf8 or
 * large_binary column validity, offsets, values; per list validity and offsets, then its int64
 * child's validity and values.
 */
public final class ArrowModel implements WeightSource {
    public static final int ALIGNMENT = 64;
    public static final String FORMAT = "lora4j-weights-1";
    public static final String[] COLUMNS = {"name", "dtype", "shape", "data"};
    static final byte[] MAGIC = "ARROW1".getBytes(StandardCharsets.US_ASCII);
    static final String KEY_FORMAT = "lora4j.format", KEY_CONFIG = "lora4j.config", KEY_SOURCE = "lora4j.source_format",
            KEY_METADATA = "lora4j.metadata", KEY_TYPES = "lora4j.metadata_types", KEY_TOKENIZER_FILE = "lora4j.tokenizer.file",
            KEY_TOKENIZER_DATA = "lora4j.tokenizer.data", KEY_TOKENIZER_CONFIG = "lora4j.tokenizer.config";
    /** Buffers per record batch: name (3), dtype (3), shape list (2) + int64 child (2), data (3). */
    static final int BUFFERS = 13, NODES = 5;
    private static final String[] NODE_NAMES = {"name", "dtype", "shape", "shape.item", "data"};
    private static final int NAME_OFFSETS = 1, NAME_VALUES = 2, DTYPE_OFFSETS = 4, DTYPE_VALUES = 5, SHAPE_OFFSETS = 7,
            DIMS = 9, DATA_OFFSETS = 11, DATA_VALUES = 12;

    private final Path path;
    private final Arena arena;
    private final Map<String, String> schemaMetadata;
    private final Map<String, TensorInfo> tensors;
    private final LlamaConfig config;
    private Map<String, Object> metadata;
    private Map<String, String> metadataTypes;

    private ArrowModel(Path path, Arena arena, Map<String, String> schemaMetadata, Map<String, TensorInfo> tensors, LlamaConfig config) {
        this.path = path;
        this.arena = arena;
        this.schemaMetadata = Collections.unmodifiableMap(schemaMetadata);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.config = config;
    }

    /** Maps and checks {@code file}; any defect is a ModelFormatException naming the file and the tensor or buffer. */
    public static ArrowModel open(Path file) {
        Arena arena = Arena.ofShared();
        try {
            return parse(file, arena, Mapped.map(file, arena));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Whether {@code head} starts with the Arrow file magic "ARROW1". */
    public static boolean hasMagic(byte[] head, int n) {
        if (n < MAGIC.length) {
            return false;
        }
        for (int i = 0; i < MAGIC.length; i++) {
            if (head[i] != MAGIC[i]) {
                return false;
            }
        }
        return true;
    }

    private static boolean magicAt(MemorySegment seg, long pos) {
        for (int i = 0; i < MAGIC.length; i++) {
            if (seg.get(Mapped.U8, pos + i) != MAGIC[i]) {
                return false;
            }
        }
        return true;
    }

    /** Parses {@code seg} (the bytes of {@code path}, which errors name); the result keeps {@code arena} and closes it. */
    static ArrowModel parse(Path path, Arena arena, MemorySegment seg) {
        long size = seg.byteSize();
        if (size < MAGIC.length || !magicAt(seg, 0)) {
            byte[] head = seg.asSlice(0, Math.min(size, 8)).toArray(Mapped.U8);
            throw new ModelFormatException(path, "not an Arrow IPC file: it starts with " + hex(head) + ", expected the magic \"ARROW1\"");
        }
        // magic + padding, an end-of-stream marker at least, footer length and magic
        if (size < 8 + 8 + 4 + MAGIC.length || !magicAt(seg, size - MAGIC.length)) {
            throw new ModelFormatException(path, "truncated: an Arrow IPC file ends with a footer and the magic \"ARROW1\", this one ("
                    + size + " bytes) does not (cut short, or an Arrow stream rather than a file)");
        }
        int footerLen = seg.get(Mapped.I32, size - MAGIC.length - 4);
        long footerStart = size - MAGIC.length - 4 - footerLen;
        if (footerLen <= 0 || footerStart < 8) {
            throw new ModelFormatException(path, "corrupt Arrow footer length " + footerLen + " for a file of " + size + " bytes");
        }
        try {
            Footer footer = Footer.getRootAsFooter(slice(seg, footerStart, footerLen));
            Schema schema = footer.schema();
            if (schema == null) {
                throw new ModelFormatException(path, "the Arrow footer has no schema");
            }
            if (schema.endianness() != Endianness.Little) {
                throw new ModelFormatException(path, "the schema says its buffers are " + (schema.endianness() == Endianness.Big
                        ? "big-endian" : "of unknown endianness " + schema.endianness()) + "; lora4j reads little-endian Arrow "
                        + "files only (what `lora4j convert` and pyarrow on x86 and ARM write), and uses the bytes in place");
            }
            checkColumns(path, schema);
            Map<String, String> md = new LinkedHashMap<>();
            for (int i = 0; i < schema.customMetadataLength(); i++) {
                KeyValue kv = schema.customMetadata(i);
                md.put(kv.key(), kv.value());
            }
            String format = md.get(KEY_FORMAT);
            if (!FORMAT.equals(format)) {
                throw new ModelFormatException(path, "schema metadata lora4j.format is " + (format == null ? "missing" : "\"" + format + "\"")
                        + ", expected \"" + FORMAT + "\" (an Arrow file that `lora4j convert` did not write)");
            }
            Map<String, TensorInfo> tensors = new LinkedHashMap<>();
            Block block = new Block();
            for (int b = 0; b < footer.recordBatchesLength(); b++) {
                footer.recordBatches(block, b);
                readBatch(path, seg, footerStart, b, block.offset(), block.metaDataLength(), block.bodyLength(), tensors);
            }
            if (footer.dictionariesLength() != 0) {
                throw new ModelFormatException(path, "the Arrow file has dictionary batches; the model layout has no dictionary columns");
            }
            LlamaConfig config = ArrowConfig.fromJson(path, md.get(KEY_CONFIG));
            ArrowModel m = new ArrowModel(path, arena, md, tensors, config);
            LlamaShapes.check(m, config);
            return m;
        } catch (IndexOutOfBoundsException | BufferUnderflowException | IllegalArgumentException | NegativeArraySizeException
                 | ArithmeticException | NullPointerException e) { // flatbuffers give null for an absent table
            throw new ModelFormatException(path, "corrupt Arrow metadata: " + e, e);
        }
    }

    private static void checkColumns(Path path, Schema schema) {
        StringBuilder found = new StringBuilder();
        for (int i = 0; i < schema.fieldsLength(); i++) {
            Field f = schema.fields(i);
            found.append(i == 0 ? "" : ", ").append(f.name()).append(": ").append(typeName(f));
        }
        String expected = "name: utf8, dtype: utf8, shape: list<int64>, data: large_binary";
        for (int i = 0; i < COLUMNS.length; i++) {
            Field f = i < schema.fieldsLength() ? schema.fields(i) : null;
            if (f == null || !COLUMNS[i].equals(f.name()) || !typeName(f).equals(expected.split(", ")[i].split(": ")[1])
                    || f.dictionary() != null) {
                String what = f == null ? "has no column " + COLUMNS[i] : "column " + (i + 1) + " is " + f.name() + ": " + typeName(f)
                        + (f.dictionary() != null ? " (dictionary-encoded)" : "");
                throw new ModelFormatException(path, "the schema " + what + "; a model table has the columns (" + expected
                        + "), found (" + found + ")");
            }
        }
        if (schema.fieldsLength() != COLUMNS.length) {
            throw new ModelFormatException(path, "the schema has extra columns; a model table has the columns (" + expected
                    + "), found (" + found + ")");
        }
    }

    /** A short Arrow type name for messages: utf8, large_binary, list<int64>, int32, … */
    private static String typeName(Field f) {
        return typeName(f, 0);
    }

    /** {@code depth}: lists around this field; a flatbuffer can make a field its own child, so the recursion stops at 8. */
    private static String typeName(Field f, int depth) {
        if (depth > 8) {
            return "…";
        }
        byte t = f.typeType();
        if (t == Type.Int) {
            Int i = (Int) f.type(new Int());
            return i == null ? "int (no type table)" : (i.isSigned() ? "int" : "uint") + i.bitWidth();
        }
        if (t == Type.List || t == Type.LargeList) {
            String inner = f.childrenLength() == 1 ? typeName(f.children(0), depth + 1) : "?";
            return (t == Type.List ? "list<" : "large_list<") + inner + ">";
        }
        return switch (t) {
            case Type.Utf8 -> "utf8";
            case Type.LargeUtf8 -> "large_utf8";
            case Type.Binary -> "binary";
            case Type.LargeBinary -> "large_binary";
            default -> Type.name(t).toLowerCase(Locale.ROOT);
        };
    }

    private static void readBatch(Path path, MemorySegment seg, long footerStart, int b, long offset, int metaLen, long bodyLen,
                                  Map<String, TensorInfo> tensors) {
        String where = "record batch " + b;
        if (offset < 8 || offset % 8 != 0 || metaLen < 8 || bodyLen < 0 || offset > footerStart - metaLen
                || bodyLen > footerStart - offset - metaLen) {
            throw new ModelFormatException(path, where + " (offset " + offset + ", metadata " + metaLen + " bytes, body " + bodyLen
                    + " bytes) is out of range of the file's " + footerStart + " bytes before the footer (truncated or corrupt)");
        }
        int cont = seg.get(Mapped.I32, offset);
        long msgStart = cont == -1 ? offset + 8 : offset + 4;
        int msgLen = cont == -1 ? seg.get(Mapped.I32, offset + 4) : cont;
        if (msgLen <= 0 || msgLen > offset + metaLen - msgStart) {
            throw new ModelFormatException(path, where + ": message length " + msgLen + " does not fit its " + metaLen + "-byte metadata block");
        }
        Message msg = Message.getRootAsMessage(slice(seg, msgStart, msgLen));
        if (msg.headerType() != MessageHeader.RecordBatch) {
            throw new ModelFormatException(path, where + " is a " + MessageHeader.name(msg.headerType()) + " message, expected RecordBatch");
        }
        if (msg.bodyLength() != bodyLen) {
            throw new ModelFormatException(path, where + ": the message says its body is " + msg.bodyLength()
                    + " bytes, the footer says " + bodyLen);
        }
        RecordBatch rb = (RecordBatch) msg.header(new RecordBatch());
        if (rb == null) {
            throw new ModelFormatException(path, where + ": the RecordBatch message has no header table (corrupt metadata)");
        }
        if (rb.compression() != null) {
            throw new ModelFormatException(path, where + " is compressed; tensors must be stored uncompressed to be used in place");
        }
        if (rb.nodesLength() != NODES || rb.buffersLength() != BUFFERS) {
            throw new ModelFormatException(path, where + " has " + rb.nodesLength() + " field nodes and " + rb.buffersLength()
                    + " buffers, expected " + NODES + " and " + BUFFERS + " for the model schema");
        }
        long rows = rb.length();
        FieldNode node = new FieldNode();
        for (int i = 0; i < NODES; i++) {
            rb.nodes(node, i);
            if (node.nullCount() != 0) {
                throw new ModelFormatException(path, where + ": column " + NODE_NAMES[i] + " has " + node.nullCount()
                        + " nulls; a model table has none");
            }
            if (i != 3 && node.length() != rows) {
                throw new ModelFormatException(path, where + ": field node " + i + " has " + node.length() + " values for " + rows + " rows");
            }
        }
        long bodyStart = offset + metaLen;
        long[] bufOff = new long[BUFFERS];
        long[] bufLen = new long[BUFFERS];
        Buffer buf = new Buffer();
        for (int i = 0; i < BUFFERS; i++) {
            rb.buffers(buf, i);
            bufOff[i] = buf.offset();
            bufLen[i] = buf.length();
            if (bufOff[i] < 0 || bufLen[i] < 0 || bufOff[i] > bodyLen || bufLen[i] > bodyLen - bufOff[i]) {
                throw new ModelFormatException(path, where + ": buffer " + i + " (offset " + bufOff[i] + ", " + bufLen[i]
                        + " bytes) is out of range of the " + bodyLen + "-byte body");
            }
            if (bufOff[i] % 8 != 0) {
                throw new ModelFormatException(path, where + ": buffer " + i + " at body offset " + bufOff[i]
                        + " is misaligned (Arrow requires 8-byte aligned buffers)");
            }
            bufOff[i] += bodyStart;
        }
        if (rows < 0 || rows > Integer.MAX_VALUE - 1) {
            throw new ModelFormatException(path, where + " has an invalid row count " + rows);
        }
        int n = (int) rows;
        Column names = Column.of(path, seg, where + " column name", bufOff, bufLen, NAME_OFFSETS, NAME_VALUES, n, 4, 1);
        Column dtypes = Column.of(path, seg, where + " column dtype", bufOff, bufLen, DTYPE_OFFSETS, DTYPE_VALUES, n, 4, 1);
        Column shapes = Column.of(path, seg, where + " column shape", bufOff, bufLen, SHAPE_OFFSETS, DIMS, n, 4, 8);
        Column data = Column.of(path, seg, where + " column data", bufOff, bufLen, DATA_OFFSETS, DATA_VALUES, n, 8, 1);
        for (int r = 0; r < n; r++) {
            String name = names.string(r);
            String tensor = "tensor " + name + " (" + where + ", row " + r + ")";
            if (tensors.containsKey(name)) {
                throw new ModelFormatException(path, "duplicate " + tensor);
            }
            GgmlType type = dtype(path, tensor, dtypes.string(r));
            long first = shapes.at(r);
            long dims = shapes.at(r + 1) - first;
            if (dims < 1 || dims > 4) {
                throw new ModelFormatException(path, tensor + " has " + dims + " dimensions (1..4 allowed)");
            }
            long[] shape = new long[(int) dims]; // ggml order: ne0 (innermost) first
            long elements = 1;
            for (int d = 0; d < dims; d++) {
                long v = seg.get(Mapped.I64, bufOff[DIMS] + 8 * (first + d));
                if (v <= 0 || v > (1L << 40)) {
                    throw new ModelFormatException(path, tensor + " has an invalid dimension " + v);
                }
                shape[(int) dims - 1 - d] = v;
                elements = Math.multiplyExact(elements, v);
            }
            if (shape[0] % type.blockSize != 0) {
                throw new ModelFormatException(path, tensor + " of type " + type + " has " + shape[0]
                        + " elements per row, not a multiple of the block size " + type.blockSize);
            }
            long bytes = type.byteSize(elements);
            long start = data.at(r);
            long len = data.at(r + 1) - start;
            if (len != bytes) {
                throw new ModelFormatException(path, tensor + " has " + len + " bytes of data, its dtype " + dtypes.string(r)
                        + " and shape " + Mapped.shape(shape) + " (ggml order) need " + bytes);
            }
            long at = bufOff[DATA_VALUES] + start;
            if (at % ALIGNMENT != 0) {
                throw new ModelFormatException(path, tensor + ": its bytes start at file offset " + at + ", not a multiple of "
                        + ALIGNMENT + " (the kernels use them in place; re-write the file with `lora4j convert`)");
            }
            tensors.put(name, new TensorInfo(name, type, shape, seg.asSlice(at, bytes)));
        }
    }

    /**
     * The offsets and values buffers of a variable-length column, bounds-checked: utf8 and list
     * offsets are int32, large_binary int64; values are bytes, or int64 elements for the shape list.
     */
    private record Column(Path path, MemorySegment seg, String what, long offsets, int width, long values, long limit) {
        static Column of(Path path, MemorySegment seg, String what, long[] off, long[] len, int oi, int vi, int rows,
                         int width, int valueSize) {
            if (rows > 0 && len[oi] < (long) width * (rows + 1)) {
                throw new ModelFormatException(path, what + ": offsets buffer has " + len[oi] + " bytes, " + rows
                        + " rows need " + (long) width * (rows + 1));
            }
            return new Column(path, seg, what, off[oi], width, off[vi], len[vi] / valueSize);
        }

        private long offset(int i) {
            return width == 4 ? seg.get(Mapped.I32, offsets + 4L * i) : seg.get(Mapped.I64, offsets + 8L * i);
        }

        /** Offset {@code i}, checked to be within the values and not below offset i-1. */
        long at(int i) {
            long a = offset(i);
            long lo = i == 0 ? 0 : offset(i - 1);
            if (a < lo || a > limit) {
                throw new ModelFormatException(path, what + ": offset " + i + " = " + a + " is out of range (values buffer holds "
                        + limit + ", previous offset " + lo + ")");
            }
            return a;
        }

        String string(int r) {
            long s = at(r);
            byte[] b = seg.asSlice(values + s, at(r + 1) - s).toArray(Mapped.U8);
            return new String(b, StandardCharsets.UTF_8);
        }
    }

    private static GgmlType dtype(Path path, String tensor, String name) {
        for (GgmlType t : GgmlType.values()) {
            if (t.name().equalsIgnoreCase(name)) {
                return t;
            }
        }
        throw new ModelFormatException(path, tensor + " has unknown dtype \"" + name + "\" (ggml type names: f32, f16, bf16, q8_0, q4_0, q4_k, …)");
    }

    /** The dtype name written for {@code t}: ggml's type name in lower case. */
    public static String dtypeName(GgmlType t) {
        return t.name().toLowerCase(Locale.ROOT);
    }

    private static ByteBuffer slice(MemorySegment seg, long pos, long len) {
        return seg.asSlice(pos, len).asByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
    }

    private static String hex(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (byte x : b) {
            sb.append(String.format("%02x", x & 0xff));
        }
        return sb.length() == 0 ? "nothing (empty file)" : "0x" + sb;
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public String format() {
        return "arrow";
    }

    /** The format of the file this one was converted from (gguf, safetensors, llama2c). */
    public String sourceFormat() {
        return schemaMetadata.getOrDefault(KEY_SOURCE, "unknown");
    }

    /** The source's metadata, decoded from {@code lora4j.metadata} on first use (GGUF Java types). */
    @Override
    public synchronized Map<String, Object> metadata() {
        if (metadata == null) {
            String values = schemaMetadata.get(KEY_METADATA);
            String types = schemaMetadata.get(KEY_TYPES);
            if (values == null) {
                metadata = Map.of();
                metadataTypes = Map.of();
            } else {
                ObjectNode v = MetadataJson.parseObject(path, KEY_METADATA, values);
                ObjectNode t = MetadataJson.parseObject(path, KEY_TYPES, types == null ? "{}" : types);
                metadata = Collections.unmodifiableMap(MetadataJson.decode(path, v, t));
                Map<String, String> tm = new LinkedHashMap<>();
                for (var it = t.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    tm.put(e.getKey(), e.getValue().asText());
                }
                metadataTypes = Collections.unmodifiableMap(tm);
            }
        }
        return metadata;
    }

    /** The GGUF type name of metadata {@code key} (u32, f32, array&lt;string&gt;, …), or null when absent. */
    public String metadataType(String key) {
        metadata();
        return metadataTypes.get(key);
    }

    /**
     * The tokenizer file embedded by {@code convert} for a non-GGUF source: its file name, its bytes
     * and those of tokenizer_config.json (or null); null when there is none (a GGUF source keeps its
     * tokenizer in the {@code tokenizer.ggml.*} metadata).
     */
    public EmbeddedTokenizer embeddedTokenizer() {
        String name = schemaMetadata.get(KEY_TOKENIZER_FILE);
        if (name == null) {
            return null;
        }
        try {
            byte[] data = Base64.getDecoder().decode(schemaMetadata.getOrDefault(KEY_TOKENIZER_DATA, ""));
            String cfg = schemaMetadata.get(KEY_TOKENIZER_CONFIG);
            return new EmbeddedTokenizer(name, data, cfg == null ? null : Base64.getDecoder().decode(cfg));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(path, "schema metadata " + KEY_TOKENIZER_DATA + " is not valid base64: " + e.getMessage());
        }
    }

    /** A tokenizer file carried inside the Arrow schema metadata. */
    public record EmbeddedTokenizer(String fileName, byte[] data, byte[] config) {
    }

    @Override
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    @Override
    public LlamaConfig config() {
        return config;
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}

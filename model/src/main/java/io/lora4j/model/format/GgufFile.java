package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A GGUF v2/v3 file, memory-mapped once. Layout (little-endian): "GGUF", u32 version, u64
 * tensor_count, u64 kv_count, kv pairs {string key, u32 type, value}, tensor infos {string name,
 * u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset}, padding to {@code general.alignment}
 * (default 32), then the data section; each tensor's offset is relative to its start.
 * A string is {u64 length, UTF-8 bytes}; an array is {u32 type, u64 count, values}.
 */
public final class GgufFile implements WeightSource {
    // GGUF value type ids
    public static final int UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5, FLOAT32 = 6,
            BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12;
    public static final int MAGIC = 0x46554747; // "GGUF" little-endian
    public static final int DEFAULT_ALIGNMENT = 32;

    private final Path path;
    private final Arena arena;
    private final MemorySegment file;
    private final int version;
    private final Map<String, Object> metadata;
    private final Map<String, Integer> valueTypes;
    private final Map<String, TensorInfo> tensors;
    private final long dataStart;
    private final int alignment;
    private LlamaConfig config;

    private GgufFile(Path path, Arena arena, MemorySegment file, int version, Map<String, Object> metadata,
                     Map<String, Integer> valueTypes, Map<String, TensorInfo> tensors, long dataStart, int alignment) {
        this.path = path;
        this.arena = arena;
        this.file = file;
        this.version = version;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.valueTypes = Collections.unmodifiableMap(valueTypes);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.dataStart = dataStart;
        this.alignment = alignment;
    }

    /** Maps and parses {@code file}; any defect is a ModelFormatException naming the file and the key or tensor. */
    public static GgufFile open(Path file) {
        Arena arena = Arena.ofShared();
        try {
            MemorySegment seg = Mapped.map(file, arena);
            return parse(file, arena, seg);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Parses {@code seg} (the bytes of {@code path}, which errors name); the result keeps {@code arena} and closes it. */
    static GgufFile parse(Path path, Arena arena, MemorySegment seg) {
        Reader r = new Reader(path, seg);
        r.context = "the header";
        int magic = r.i32();
        if (magic != MAGIC) {
            throw new ModelFormatException(path, String.format("not a GGUF file: magic is 0x%08x, expected 0x%08x (\"GGUF\")", magic, MAGIC));
        }
        int version = r.i32();
        if (version == 1) {
            throw new ModelFormatException(path, "GGUF version 1 is not supported (only versions 2 and 3); re-convert the model with a current llama.cpp");
        }
        if (version < 1 || version > 3) {
            throw new ModelFormatException(path, "unsupported GGUF version " + Integer.toUnsignedString(version) + " (only versions 2 and 3 are supported)");
        }
        long tensorCount = r.i64();
        long kvCount = r.i64();
        // a KV needs >= 8+1 (key) + 4 (type) + 1 bytes; a tensor info >= 8+1 + 4 + 4 + 8
        if (kvCount < 0 || kvCount > r.remaining() / 13 || kvCount > 10_000_000) {
            throw new ModelFormatException(path, "absurd metadata kv_count " + Long.toUnsignedString(kvCount) + " for a file of " + seg.byteSize() + " bytes");
        }
        if (tensorCount < 0 || tensorCount > r.remaining() / 25 || tensorCount > 10_000_000) {
            throw new ModelFormatException(path, "absurd tensor_count " + Long.toUnsignedString(tensorCount) + " for a file of " + seg.byteSize() + " bytes");
        }
        Map<String, Object> metadata = new LinkedHashMap<>();
        Map<String, Integer> types = new LinkedHashMap<>();
        for (long i = 0; i < kvCount; i++) {
            r.context = "metadata key #" + i;
            String key = r.string();
            r.context = "metadata key " + key;
            int type = r.i32();
            Object value = r.value(type, 0);
            if (metadata.containsKey(key)) {
                throw new ModelFormatException(path, "duplicate metadata key " + key);
            }
            metadata.put(key, value);
            types.put(key, type == ARRAY ? ARRAY | r.topArrayElemType << 8 : type);
        }
        int alignment = DEFAULT_ALIGNMENT;
        Object a = metadata.get("general.alignment");
        if (a != null) {
            if (!(a instanceof Long l) || l <= 0 || l > (1 << 20) || (l & (l - 1)) != 0) {
                throw new ModelFormatException(path, "metadata key general.alignment must be a power of two integer, found " + a);
            }
            alignment = (int) (long) l;
        }
        String[] names = new String[(int) tensorCount];
        GgmlType[] ttypes = new GgmlType[(int) tensorCount];
        long[][] shapes = new long[(int) tensorCount][];
        long[] offsets = new long[(int) tensorCount];
        for (int i = 0; i < tensorCount; i++) {
            r.context = "tensor info #" + i;
            String name = r.string();
            r.context = "tensor info of " + name;
            int nDims = r.i32();
            if (nDims < 1 || nDims > 4) {
                throw new ModelFormatException(path, "tensor " + name + " has " + Integer.toUnsignedString(nDims) + " dimensions (1..4 allowed)");
            }
            long[] shape = new long[nDims];
            for (int d = 0; d < nDims; d++) {
                shape[d] = r.i64();
                if (shape[d] <= 0 || shape[d] > (1L << 40)) {
                    throw new ModelFormatException(path, "tensor " + name + " has invalid dimension ne[" + d + "] = " + Long.toUnsignedString(shape[d]));
                }
            }
            int typeId = r.i32();
            GgmlType t = GgmlType.fromId(typeId);
            if (t == null) {
                throw new ModelFormatException(path, "tensor " + name + " has unknown ggml type id " + Integer.toUnsignedString(typeId));
            }
            if (shape[0] % t.blockSize != 0) {
                throw new ModelFormatException(path, "tensor " + name + " of type " + t + " has ne0 = " + shape[0]
                        + ", not a multiple of the block size " + t.blockSize);
            }
            long offset = r.i64();
            for (int j = 0; j < i; j++) {
                if (names[j].equals(name)) {
                    throw new ModelFormatException(path, "duplicate tensor name " + name);
                }
            }
            names[i] = name;
            ttypes[i] = t;
            shapes[i] = shape;
            offsets[i] = offset;
        }
        long dataStart = align(r.pos, alignment);
        if (tensorCount > 0 && dataStart > seg.byteSize()) {
            throw new ModelFormatException(path, "truncated: the data section should start at byte " + dataStart + " but the file has " + seg.byteSize() + " bytes");
        }
        long dataSize = seg.byteSize() - Math.min(dataStart, seg.byteSize());
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        for (int i = 0; i < tensorCount; i++) {
            String name = names[i];
            GgmlType t = ttypes[i];
            long n = 1;
            for (long d : shapes[i]) {
                if (n > 8 * dataSize / d) { // more elements than the data section has bits: no ggml type packs that tight
                    throw new ModelFormatException(path, "tensor " + name + " (" + t + " " + Mapped.shape(shapes[i])
                            + ") has more elements than the file's " + dataSize + "-byte data section can hold");
                }
                n *= d;
            }
            long bytes = n / t.blockSize * t.typeSize;
            long off = offsets[i];
            if (off < 0 || off % alignment != 0) {
                throw new ModelFormatException(path, "tensor " + name + " has offset " + Long.toUnsignedString(off)
                        + ", not a multiple of the alignment " + alignment);
            }
            if (off > dataSize || bytes > dataSize - off) {
                throw new ModelFormatException(path, "tensor " + name + " (" + t + " " + Mapped.shape(shapes[i]) + ", " + bytes
                        + " bytes at data offset " + off + ") extends beyond the end of the file (data section has " + dataSize
                        + " bytes; file truncated?)");
            }
            tensors.put(name, new TensorInfo(name, t, shapes[i], seg.asSlice(dataStart + off, bytes)));
        }
        return new GgufFile(path, arena, seg, version, metadata, types, tensors, dataStart, alignment);
    }

    static long align(long x, long a) {
        return (x + a - 1) / a * a;
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public String format() {
        return "gguf";
    }

    public int version() {
        return version;
    }

    public int alignment() {
        return alignment;
    }

    /** Byte offset of the data section in the file. */
    public long dataStart() {
        return dataStart;
    }

    /** The whole mapped file. */
    public MemorySegment segment() {
        return file;
    }

    @Override
    public Map<String, Object> metadata() {
        return metadata;
    }

    /** The GGUF value type id ({@link #UINT32}, …, {@link #ARRAY}) of metadata {@code key}, or -1 when absent. */
    public int valueType(String key) {
        Integer t = valueTypes.get(key);
        return t == null ? -1 : t & 0xff;
    }

    /** For an array key, the GGUF type of its elements (e.g. {@link #UINT32} vs {@link #INT32} for an int[]); else -1. */
    public int arrayElementType(String key) {
        Integer t = valueTypes.get(key);
        return t == null || (t & 0xff) != ARRAY ? -1 : t >>> 8;
    }

    @Override
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    public String getString(String key) {
        Object v = metadata.get(key);
        if (v == null) {
            throw new ModelFormatException(path, "missing metadata key " + key);
        }
        if (!(v instanceof String s)) {
            throw new ModelFormatException(path, "metadata key " + key + " should be a string, found " + v.getClass().getSimpleName());
        }
        return s;
    }

    @Override
    public synchronized LlamaConfig config() {
        if (config == null) {
            config = buildConfig();
        }
        return config;
    }

    private LlamaConfig buildConfig() {
        String arch = getString("general.architecture");
        String note = arch.equals("llama") ? "" : " (architecture is " + arch + ", read with llama's keys)";
        String p = arch + ".";
        int dim = intKey(p + "embedding_length", null, note);
        int hidden = intKey(p + "feed_forward_length", null, note);
        int layers = intKey(p + "block_count", null, note);
        int heads = intKey(p + "attention.head_count", null, note);
        int kvHeads = intKey(p + "attention.head_count_kv", heads, note);
        if (heads <= 0 || dim % heads != 0 && !metadata.containsKey(p + "attention.key_length")) {
            throw new ModelFormatException(path, "metadata " + p + "attention.head_count = " + heads + " does not divide embedding_length " + dim);
        }
        int headSize = intKey(p + "attention.key_length", dim / heads, note);
        if (kvHeads <= 0 || heads % kvHeads != 0) {
            throw new ModelFormatException(path, "metadata " + p + "attention.head_count_kv = " + kvHeads + " must divide head_count " + heads);
        }
        int ctx = intKey(p + "context_length", null, note);
        float eps = floatKey(p + "attention.layer_norm_rms_epsilon", null, note);
        float theta = floatKey(p + "rope.freq_base", 10000f, note);
        TensorInfo emb = tensor("token_embd.weight");
        if (emb.shape().length != 2) {
            throw new ModelFormatException(path, "tensor token_embd.weight has shape " + Mapped.shape(emb.shape()) + ", expected 2 dimensions");
        }
        int vocab = Math.toIntExact(emb.shape()[1]);
        boolean tied = !tensors.containsKey("output.weight");
        LlamaConfig c = new LlamaConfig(dim, hidden, layers, heads, kvHeads, headSize, vocab, ctx, eps, theta,
                null, LlamaConfig.RopeStyle.ADJACENT, tied);
        LlamaShapes.check(this, c);
        return c;
    }

    private int intKey(String key, Integer dflt, String note) {
        Object v = metadata.get(key);
        if (v == null) {
            if (dflt != null) {
                return dflt;
            }
            throw new ModelFormatException(path, "missing metadata key " + key + note);
        }
        if (!(v instanceof Long l)) {
            throw new ModelFormatException(path, "metadata key " + key + " should be an integer, found " + v.getClass().getSimpleName());
        }
        if (l < 0 || l > Integer.MAX_VALUE) {
            throw new ModelFormatException(path, "metadata key " + key + " = " + l + " is out of range");
        }
        return (int) (long) l;
    }

    private float floatKey(String key, Float dflt, String note) {
        Object v = metadata.get(key);
        if (v == null) {
            if (dflt != null) {
                return dflt;
            }
            throw new ModelFormatException(path, "missing metadata key " + key + note);
        }
        if (v instanceof Float f) {
            return f;
        }
        if (v instanceof Double d) {
            return (float) (double) d;
        }
        throw new ModelFormatException(path, "metadata key " + key + " should be a float, found " + v.getClass().getSimpleName());
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }

    /** Bounds-checked little-endian cursor; every failure names the file and {@link #context}. */
    private static final class Reader {
        final Path path;
        final MemorySegment seg;
        long pos;
        String context = "";
        int topArrayElemType; // element type of the last outermost array read

        Reader(Path path, MemorySegment seg) {
            this.path = path;
            this.seg = seg;
        }

        long remaining() {
            return seg.byteSize() - pos;
        }

        void need(long n, String what) {
            if (n < 0 || n > remaining()) {
                throw new ModelFormatException(path, "truncated or corrupt: " + what + " in " + context + " needs "
                        + (n < 0 ? Long.toUnsignedString(n) : String.valueOf(n)) + " bytes at offset " + pos + " but the file has " + seg.byteSize() + " bytes");
            }
        }

        int i32() {
            need(4, "a 4-byte integer");
            int v = seg.get(Mapped.I32, pos);
            pos += 4;
            return v;
        }

        long i64() {
            need(8, "an 8-byte integer");
            long v = seg.get(Mapped.I64, pos);
            pos += 8;
            return v;
        }

        String string() {
            long len = i64();
            need(len, "a string of length " + Long.toUnsignedString(len));
            byte[] b = seg.asSlice(pos, len).toArray(Mapped.U8);
            pos += len;
            return new String(b, StandardCharsets.UTF_8);
        }

        static int elemSize(int type) {
            return switch (type) {
                case UINT8, INT8, BOOL -> 1;
                case UINT16, INT16 -> 2;
                case UINT32, INT32, FLOAT32 -> 4;
                case UINT64, INT64, FLOAT64, STRING -> 8;
                case ARRAY -> 12;
                default -> -1;
            };
        }

        Object value(int type, int depth) {
            switch (type) {
                case UINT8 -> {
                    need(1, "a u8");
                    return (long) (seg.get(Mapped.U8, pos++) & 0xff);
                }
                case INT8 -> {
                    need(1, "an i8");
                    return (long) seg.get(Mapped.U8, pos++);
                }
                case UINT16 -> {
                    need(2, "a u16");
                    long v = seg.get(Mapped.I16, pos) & 0xffff;
                    pos += 2;
                    return v;
                }
                case INT16 -> {
                    need(2, "an i16");
                    long v = seg.get(Mapped.I16, pos);
                    pos += 2;
                    return v;
                }
                case UINT32 -> {
                    return i32() & 0xffffffffL;
                }
                case INT32 -> {
                    return (long) i32();
                }
                case FLOAT32 -> {
                    return Float.intBitsToFloat(i32());
                }
                case BOOL -> {
                    need(1, "a bool");
                    byte b = seg.get(Mapped.U8, pos++);
                    if (b != 0 && b != 1) {
                        throw new ModelFormatException(path, "invalid bool value " + b + " in " + context);
                    }
                    return b == 1;
                }
                case STRING -> {
                    return string();
                }
                case UINT64, INT64 -> {
                    return i64();
                }
                case FLOAT64 -> {
                    return Double.longBitsToDouble(i64());
                }
                case ARRAY -> {
                    if (depth > 8) {
                        throw new ModelFormatException(path, "arrays nested too deeply in " + context);
                    }
                    return array(depth);
                }
                default -> throw new ModelFormatException(path, "unknown GGUF value type " + Integer.toUnsignedString(type) + " in " + context);
            }
        }

        private Object array(int depth) {
            int et = i32();
            if (depth == 0) {
                topArrayElemType = et;
            }
            long n = i64();
            int es = elemSize(et);
            if (es < 0) {
                throw new ModelFormatException(path, "unknown GGUF array element type " + Integer.toUnsignedString(et) + " in " + context);
            }
            if (n < 0 || n > remaining() / es || n > Integer.MAX_VALUE - 8) {
                throw new ModelFormatException(path, "truncated or corrupt: array length " + Long.toUnsignedString(n) + " in " + context
                        + " goes beyond the end of the file (" + remaining() + " bytes left at offset " + pos + ")");
            }
            int len = (int) n;
            switch (et) {
                case UINT8, INT8 -> {
                    byte[] a = seg.asSlice(pos, len).toArray(Mapped.U8);
                    pos += len;
                    return a;
                }
                case UINT16, INT16 -> {
                    short[] a = new short[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = seg.get(Mapped.I16, pos + 2L * i);
                    }
                    pos += 2L * len;
                    return a;
                }
                case UINT32, INT32 -> {
                    int[] a = new int[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = seg.get(Mapped.I32, pos + 4L * i);
                    }
                    pos += 4L * len;
                    return a;
                }
                case FLOAT32 -> {
                    float[] a = new float[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = seg.get(Mapped.F32, pos + 4L * i);
                    }
                    pos += 4L * len;
                    return a;
                }
                case UINT64, INT64 -> {
                    long[] a = new long[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = seg.get(Mapped.I64, pos + 8L * i);
                    }
                    pos += 8L * len;
                    return a;
                }
                case FLOAT64 -> {
                    double[] a = new double[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = seg.get(Mapped.F64, pos + 8L * i);
                    }
                    pos += 8L * len;
                    return a;
                }
                case BOOL -> {
                    boolean[] a = new boolean[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = seg.get(Mapped.U8, pos + i) != 0;
                    }
                    pos += len;
                    return a;
                }
                case STRING -> {
                    String[] a = new String[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = string();
                    }
                    return a;
                }
                default -> { // ARRAY
                    Object[] a = new Object[len];
                    for (int i = 0; i < len; i++) {
                        a[i] = value(ARRAY, depth + 1);
                    }
                    return a;
                }
            }
        }
    }
}

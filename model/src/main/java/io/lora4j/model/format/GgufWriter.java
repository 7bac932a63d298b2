package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a GGUF v3 file (alignment 32). Metadata is added with typed puts or {@link #put(String, Object)}
 * (Java types as {@link WeightSource#metadata()}); tensors are added as (name, type, ggml shape,
 * source) where the source fills the tensor's bytes in a memory-mapped window of the output, so a
 * multi-GB model is streamed through the page cache, never held on the heap. {@link #write(Path)}
 * writes it durably ({@link DurableFiles}).
 */
public final class GgufWriter {

    /** Fills {@code dst} (exactly the tensor's byte size, in the output file's mapping) with the tensor's bytes. */
    @FunctionalInterface
    public interface TensorFill {
        void fill(MemorySegment dst);
    }

    private record Entry(int type, Object value) {
    }

    private record Pending(String name, GgmlType type, long[] shape, long bytes, TensorFill fill) {
    }

    private final Map<String, Entry> kv = new LinkedHashMap<>();
    private final List<Pending> tensors = new ArrayList<>();
    private final int alignment = GgufFile.DEFAULT_ALIGNMENT;

    public GgufWriter putU8(String key, int v) { return raw(key, GgufFile.UINT8, (long) (v & 0xff)); }
    public GgufWriter putI8(String key, int v) { return raw(key, GgufFile.INT8, (long) (byte) v); }
    public GgufWriter putU16(String key, int v) { return raw(key, GgufFile.UINT16, (long) (v & 0xffff)); }
    public GgufWriter putI16(String key, int v) { return raw(key, GgufFile.INT16, (long) (short) v); }
    public GgufWriter putU32(String key, long v) { return raw(key, GgufFile.UINT32, v & 0xffffffffL); }
    public GgufWriter putI32(String key, int v) { return raw(key, GgufFile.INT32, (long) v); }
    public GgufWriter putU64(String key, long v) { return raw(key, GgufFile.UINT64, v); }
    public GgufWriter putI64(String key, long v) { return raw(key, GgufFile.INT64, v); }
    public GgufWriter putF32(String key, float v) { return raw(key, GgufFile.FLOAT32, v); }
    public GgufWriter putF64(String key, double v) { return raw(key, GgufFile.FLOAT64, v); }
    public GgufWriter putBool(String key, boolean v) { return raw(key, GgufFile.BOOL, v); }
    public GgufWriter putString(String key, String v) { return raw(key, GgufFile.STRING, v); }
    public GgufWriter putStringArray(String key, String[] v) { return raw(key, GgufFile.ARRAY, new TypedArray(GgufFile.STRING, v)); }
    public GgufWriter putFloatArray(String key, float[] v) { return raw(key, GgufFile.ARRAY, new TypedArray(GgufFile.FLOAT32, v)); }
    public GgufWriter putDoubleArray(String key, double[] v) { return raw(key, GgufFile.ARRAY, new TypedArray(GgufFile.FLOAT64, v)); }
    public GgufWriter putBoolArray(String key, boolean[] v) { return raw(key, GgufFile.ARRAY, new TypedArray(GgufFile.BOOL, v)); }

    public GgufWriter putIntArray(String key, int[] v, boolean unsigned) {
        return raw(key, GgufFile.ARRAY, new TypedArray(unsigned ? GgufFile.UINT32 : GgufFile.INT32, v));
    }

    public GgufWriter putLongArray(String key, long[] v, boolean unsigned) {
        return raw(key, GgufFile.ARRAY, new TypedArray(unsigned ? GgufFile.UINT64 : GgufFile.INT64, v));
    }

    public GgufWriter putShortArray(String key, short[] v, boolean unsigned) {
        return raw(key, GgufFile.ARRAY, new TypedArray(unsigned ? GgufFile.UINT16 : GgufFile.INT16, v));
    }

    public GgufWriter putByteArray(String key, byte[] v, boolean unsigned) {
        return raw(key, GgufFile.ARRAY, new TypedArray(unsigned ? GgufFile.UINT8 : GgufFile.INT8, v));
    }

    /** An array of arrays; each element is a Java array (or Object[]) mapped as {@link #put(String, Object)} does. */
    public GgufWriter putNestedArray(String key, Object[] v) {
        return raw(key, GgufFile.ARRAY, new TypedArray(GgufFile.ARRAY, v));
    }

    /** An array element type plus the Java array holding the values. */
    private record TypedArray(int elemType, Object values) {
    }

    private GgufWriter raw(String key, int type, Object value) {
        kv.put(key, new Entry(type, value));
        return this;
    }

    /**
     * Adds {@code value} with the GGUF type its Java type implies: Long → u32 when it fits and the
     * key is one llama.cpp reads as u32 ({@code *count*}, {@code *_length}, {@code *token_id},
     * {@code general.alignment}, {@code general.file_type}, {@code *dimension_count}), else i64;
     * Integer → i32, Short → i16, Byte → i8; Float f32, Double f64, Boolean, String; String[],
     * float[], int[] (i32), long[] (i64), short[] (i16), byte[] (u8), boolean[], double[];
     * Object[] nested arrays.
     */
    public GgufWriter put(String key, Object value) {
        return raw(key, inferType(key, value), inferValue(value));
    }

    /**
     * Adds {@code value} (Java type as the reader returns it) under the exact GGUF {@code type}
     * id, e.g. {@code put(k, src.valueType(k), src.metadata().get(k))} copies a key losslessly.
     * For an array the element type is inferred from the Java array type.
     */
    public GgufWriter put(String key, int type, Object value) {
        if (type == GgufFile.ARRAY) {
            return raw(key, type, inferValue(value));
        }
        return raw(key, type, value instanceof Integer i ? (long) i : value);
    }

    /**
     * Adds an array {@code value} (a Java array as the reader returns it) with elements of GGUF type
     * {@code elemType}, e.g. u32 for an int[]. Nested arrays ({@link GgufFile#ARRAY}) infer inner types.
     */
    public GgufWriter putArray(String key, int elemType, Object value) {
        if (elemType == GgufFile.ARRAY || elemType < 0) {
            return raw(key, GgufFile.ARRAY, inferValue(value));
        }
        return raw(key, GgufFile.ARRAY, new TypedArray(elemType, value));
    }

    /**
     * Copies every metadata key of {@code src} whose name starts with {@code prefix}, with its exact
     * GGUF type: a GGUF's own, the one an Arrow model recorded for its source's keys, else the type
     * the Java value implies. {@code general.alignment} is not copied: this writer aligns to 32.
     */
    public GgufWriter copyMetadata(WeightSource src, String prefix) {
        for (Map.Entry<String, Object> e : src.metadata().entrySet()) {
            String k = e.getKey();
            if (!k.startsWith(prefix) || k.equals("general.alignment")) {
                continue;
            }
            String type = MetadataJson.typeOf(src, k, e.getValue());
            if (type.startsWith("array<")) {
                putArray(k, MetadataJson.ggufType(type.substring(6, type.length() - 1)), e.getValue());
            } else {
                put(k, MetadataJson.ggufType(type), e.getValue());
            }
        }
        return this;
    }

    static boolean isU32Key(String key) {
        return key.contains("count") || key.endsWith("_length") || key.endsWith("token_id")
                || key.equals("general.alignment") || key.equals("general.file_type");
    }

    private static int inferType(String key, Object v) {
        return switch (v) {
            case Long l -> isU32Key(key) && l >= 0 && l <= 0xffffffffL ? GgufFile.UINT32 : GgufFile.INT64;
            case Integer i -> GgufFile.INT32;
            case Short s -> GgufFile.INT16;
            case Byte b -> GgufFile.INT8;
            case Float f -> GgufFile.FLOAT32;
            case Double d -> GgufFile.FLOAT64;
            case Boolean b -> GgufFile.BOOL;
            case String s -> GgufFile.STRING;
            case TypedArray a -> GgufFile.ARRAY;
            case null -> throw new IllegalArgumentException("metadata " + key + " is null");
            default -> {
                if (v.getClass().isArray()) {
                    yield GgufFile.ARRAY;
                }
                throw new IllegalArgumentException("metadata " + key + ": unsupported Java type " + v.getClass().getName());
            }
        };
    }

    private static Object inferValue(Object v) {
        return switch (v) {
            case Integer i -> (long) i;
            case Short s -> (long) s;
            case Byte b -> (long) b;
            case TypedArray a -> a;
            case String[] a -> new TypedArray(GgufFile.STRING, a);
            case float[] a -> new TypedArray(GgufFile.FLOAT32, a);
            case int[] a -> new TypedArray(GgufFile.INT32, a);
            case long[] a -> new TypedArray(GgufFile.INT64, a);
            case short[] a -> new TypedArray(GgufFile.INT16, a);
            case byte[] a -> new TypedArray(GgufFile.UINT8, a);
            case boolean[] a -> new TypedArray(GgufFile.BOOL, a);
            case double[] a -> new TypedArray(GgufFile.FLOAT64, a);
            case Object[] a -> new TypedArray(GgufFile.ARRAY, a);
            default -> v;
        };
    }

    /** Adds a tensor whose bytes {@code fill} produces when the file is written. */
    public GgufWriter addTensor(String name, GgmlType type, long[] shape, TensorFill fill) {
        if (!type.ggml) {
            throw new IllegalArgumentException(name + ": " + type + " is a lora4j load-time quantization that ggml does not have; "
                    + "GGUF cannot store it (write the matrix dequantized as F32 or F16, or a ggml type such as Q8_0)");
        }
        long bytes = tensorBytes(name, type, shape);
        for (Pending p : tensors) {
            if (p.name.equals(name)) {
                throw new IllegalArgumentException("duplicate tensor " + name);
            }
        }
        tensors.add(new Pending(name, type, shape.clone(), bytes, fill));
        return this;
    }

    /** Bytes of a tensor of {@code type} and ggml {@code shape}; an IllegalArgumentException naming it when the shape is invalid. */
    static long tensorBytes(String name, GgmlType type, long[] shape) {
        long n = 1;
        for (long d : shape) {
            if (d <= 0) {
                throw new IllegalArgumentException(name + ": bad shape " + Mapped.shape(shape));
            }
            n = Math.multiplyExact(n, d);
        }
        if (shape.length < 1 || shape.length > 4 || shape[0] % type.blockSize != 0) {
            throw new IllegalArgumentException(name + ": shape " + Mapped.shape(shape) + " is invalid for " + type);
        }
        return type.byteSize(n);
    }

    /** A fill that copies {@code src}, whose size must match the tensor's. */
    static TensorFill copyOf(String name, MemorySegment src) {
        return dst -> {
            if (dst.byteSize() != src.byteSize()) {
                throw new IllegalArgumentException(name + ": source has " + src.byteSize() + " bytes, need " + dst.byteSize());
            }
            dst.copyFrom(src);
        };
    }

    /** Adds a tensor copied from {@code src} (e.g. another mapped file); its size must match. */
    public GgufWriter addTensor(String name, GgmlType type, long[] shape, MemorySegment src) {
        return addTensor(name, type, shape, copyOf(name, src));
    }

    public GgufWriter addTensor(String name, GgmlType type, long[] shape, byte[] src) {
        return addTensor(name, type, shape, MemorySegment.ofArray(src));
    }

    public GgufWriter addTensor(TensorInfo t) {
        return addTensor(t.name(), t.type(), t.shape(), t.data());
    }

    /** Writes {@code target} durably (temp file, force, atomic rename: {@link DurableFiles}). */
    public void write(Path target) throws IOException {
        Out h = new Out();
        h.i32(GgufFile.MAGIC);
        h.i32(3);
        h.i64(tensors.size());
        h.i64(kv.size());
        for (Map.Entry<String, Entry> e : kv.entrySet()) {
            h.string(e.getKey());
            h.i32(e.getValue().type);
            writeValue(h, e.getKey(), e.getValue().type, e.getValue().value);
        }
        long offset = 0;
        long[] offsets = new long[tensors.size()];
        for (int i = 0; i < tensors.size(); i++) {
            Pending p = tensors.get(i);
            h.string(p.name);
            h.i32(p.shape.length);
            for (long d : p.shape) {
                h.i64(d);
            }
            h.i32(p.type.id);
            offsets[i] = offset;
            h.i64(offset);
            offset = GgufFile.align(offset + p.bytes, alignment);
        }
        while (h.size() % alignment != 0) {
            h.write(0);
        }
        long dataStart = h.size();
        long total = dataStart + (tensors.isEmpty() ? 0 : offsets[tensors.size() - 1] + tensors.getLast().bytes);
        DurableFiles.write(target, ch -> {
            ByteBuffer hb = ByteBuffer.wrap(h.bytes(), 0, h.size());
            while (hb.hasRemaining()) {
                ch.write(hb);
            }
            // data section: map it in windows of whole tensors so a big model never sits on the heap
            final long window = 1L << 30;
            int i = 0;
            while (i < tensors.size()) {
                long start = offsets[i];
                int j = i;
                long end = start + tensors.get(i).bytes;
                while (j + 1 < tensors.size() && offsets[j + 1] + tensors.get(j + 1).bytes - start <= window) {
                    j++;
                    end = offsets[j] + tensors.get(j).bytes;
                }
                try (Arena arena = Arena.ofShared()) { // shared: a fill may write from several threads
                    MemorySegment m = ch.map(FileChannel.MapMode.READ_WRITE, dataStart + start, end - start, arena);
                    for (int k = i; k <= j; k++) {
                        Pending p = tensors.get(k);
                        p.fill.fill(m.asSlice(offsets[k] - start, p.bytes));
                    }
                }
                i = j + 1;
            }
            if (ch.size() != total) {
                ch.truncate(total);
            }
        });
    }

    private static void writeValue(Out h, String key, int type, Object v) {
        switch (type) {
            case GgufFile.UINT8, GgufFile.INT8 -> h.write((int) num(v));
            case GgufFile.UINT16, GgufFile.INT16 -> h.i16((int) num(v));
            case GgufFile.UINT32, GgufFile.INT32 -> h.i32((int) num(v));
            case GgufFile.UINT64, GgufFile.INT64 -> h.i64(num(v));
            case GgufFile.FLOAT32 -> h.i32(Float.floatToRawIntBits(((Number) v).floatValue()));
            case GgufFile.FLOAT64 -> h.i64(Double.doubleToRawLongBits(((Number) v).doubleValue()));
            case GgufFile.BOOL -> h.write((Boolean) v ? 1 : 0);
            case GgufFile.STRING -> h.string((String) v);
            case GgufFile.ARRAY -> {
                TypedArray a = v instanceof TypedArray t ? t : (TypedArray) inferValue(v);
                writeArray(h, key, a);
            }
            default -> throw new IllegalArgumentException("metadata " + key + ": unknown GGUF type " + type);
        }
    }

    private static long num(Object v) {
        return switch (v) {
            case Long l -> l;
            case Integer i -> i;
            case Number n -> n.longValue();
            default -> throw new IllegalArgumentException("not an integer: " + v);
        };
    }

    private static void writeArray(Out h, String key, TypedArray a) {
        h.i32(a.elemType);
        switch (a.values) {
            case String[] s -> {
                h.i64(s.length);
                for (String x : s) {
                    h.string(x);
                }
            }
            case float[] f -> {
                h.i64(f.length);
                for (float x : f) {
                    h.i32(Float.floatToRawIntBits(x));
                }
            }
            case int[] f -> {
                h.i64(f.length);
                for (int x : f) {
                    h.i32(x);
                }
            }
            case long[] f -> {
                h.i64(f.length);
                for (long x : f) {
                    h.i64(x);
                }
            }
            case short[] f -> {
                h.i64(f.length);
                for (short x : f) {
                    h.i16(x);
                }
            }
            case byte[] f -> {
                h.i64(f.length);
                h.write(f, 0, f.length);
            }
            case boolean[] f -> {
                h.i64(f.length);
                for (boolean x : f) {
                    h.write(x ? 1 : 0);
                }
            }
            case double[] f -> {
                h.i64(f.length);
                for (double x : f) {
                    h.i64(Double.doubleToRawLongBits(x));
                }
            }
            case Object[] f -> {
                h.i64(f.length);
                for (Object x : f) {
                    TypedArray inner = x instanceof TypedArray t ? t : (TypedArray) inferValue(x);
                    writeArray(h, key, inner);
                }
            }
            default -> throw new IllegalArgumentException("metadata " + key + ": unsupported array " + a.values.getClass());
        }
    }

    /** Growable little-endian byte buffer for the header. */
    private static final class Out extends ByteArrayOutputStream {
        Out() {
            super(1 << 16);
        }

        byte[] bytes() {
            return buf;
        }

        void i16(int v) {
            write(v);
            write(v >>> 8);
        }

        void i32(int v) {
            i16(v);
            i16(v >>> 16);
        }

        void i64(long v) {
            i32((int) v);
            i32((int) (v >>> 32));
        }

        void string(String s) {
            byte[] b = s.getBytes(StandardCharsets.UTF_8);
            i64(b.length);
            write(b, 0, b.length);
        }
    }
}

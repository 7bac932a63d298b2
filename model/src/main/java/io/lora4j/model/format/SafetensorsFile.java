package io.lora4j.model.format;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lora4j.kernels.GgmlType;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * One {@code .safetensors} file, memory-mapped: u64 header length N, N bytes of JSON
 * {@code {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}}, then the
 * data; offsets are relative to byte 8+N. Tensors keep their file names; {@link TensorInfo#shape()}
 * is in ggml order (the reverse of the file's row-major shape), {@link #fileShape} gives the
 * file's. Supported dtypes: F32, F16, BF16.
 */
public final class SafetensorsFile implements AutoCloseable {
    private static final ObjectMapper JSON = new ObjectMapper();

    private final Path path;
    private final Arena arena;
    private final boolean ownsArena;
    private final Map<String, TensorInfo> tensors;
    private final Map<String, String> metadata;

    private SafetensorsFile(Path path, Arena arena, boolean ownsArena, Map<String, TensorInfo> tensors, Map<String, String> metadata) {
        this.path = path;
        this.arena = arena;
        this.ownsArena = ownsArena;
        this.tensors = Collections.unmodifiableMap(tensors);
        this.metadata = Collections.unmodifiableMap(metadata);
    }

    /** Maps {@code file} into its own shared arena, closed by {@link #close()}. */
    public static SafetensorsFile open(Path file) {
        Arena arena = Arena.ofShared();
        try {
            return open(file, arena, true);
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Maps {@code file} into {@code arena} (owned by the caller when {@code ownsArena} is false). */
    static SafetensorsFile open(Path file, Arena arena, boolean ownsArena) {
        return parse(file, arena, ownsArena, Mapped.map(file, arena));
    }

    /** Parses {@code seg} (the bytes of {@code file}, which errors name). */
    static SafetensorsFile parse(Path file, Arena arena, boolean ownsArena, MemorySegment seg) {
        long size = seg.byteSize();
        if (size < 8) {
            throw new ModelFormatException(file, "not a safetensors file: " + size + " bytes, too short for the 8-byte header length");
        }
        long n = seg.get(Mapped.I64, 0);
        if (n < 2 || n > size - 8 || n > 100_000_000) {
            throw new ModelFormatException(file, "safetensors header length " + Long.toUnsignedString(n)
                    + " is invalid for a file of " + size + " bytes (truncated or not a safetensors file)");
        }
        String text = new String(seg.asSlice(8, n).toArray(Mapped.U8), StandardCharsets.UTF_8);
        JsonNode root;
        try {
            root = JSON.readTree(text);
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(file, "safetensors header is not valid JSON: " + e.getOriginalMessage(), e);
        }
        if (root == null || !root.isObject()) {
            throw new ModelFormatException(file, "safetensors header is not a JSON object");
        }
        long dataStart = 8 + n;
        long dataSize = size - dataStart;
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        List<long[]> ranges = new ArrayList<>(); // {begin, end, index}
        List<String> order = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String name = e.getKey();
            JsonNode t = e.getValue();
            if (name.equals("__metadata__")) {
                if (!t.isObject()) {
                    throw new ModelFormatException(file, "__metadata__ is not a JSON object");
                }
                t.fields().forEachRemaining(m -> metadata.put(m.getKey(), m.getValue().isTextual() ? m.getValue().textValue() : m.getValue().toString()));
                continue;
            }
            if (!t.isObject() || !t.path("dtype").isTextual() || !t.path("shape").isArray() || !t.path("data_offsets").isArray()
                    || t.path("data_offsets").size() != 2) {
                throw new ModelFormatException(file, "tensor " + name + ": header entry needs dtype, shape and data_offsets [begin, end], found " + t);
            }
            String dtype = t.get("dtype").textValue();
            GgmlType type = switch (dtype) {
                case "F32" -> GgmlType.F32;
                case "F16" -> GgmlType.F16;
                case "BF16" -> GgmlType.BF16;
                default -> throw new ModelFormatException(file, "tensor " + name + " has unsupported dtype " + dtype + " (F32, F16 and BF16 are supported)");
            };
            JsonNode sh = t.get("shape");
            long[] fileShape = new long[sh.size()];
            long count = 1;
            for (int i = 0; i < fileShape.length; i++) {
                if (!sh.get(i).canConvertToLong() || sh.get(i).asLong() < 0) {
                    throw new ModelFormatException(file, "tensor " + name + " has invalid shape " + sh);
                }
                fileShape[i] = sh.get(i).asLong();
                if (fileShape[i] > 0 && count > dataSize / fileShape[i]) {
                    throw new ModelFormatException(file, "tensor " + name + " has shape " + sh + ": more elements than the "
                            + dataSize + "-byte data section can hold");
                }
                count *= fileShape[i];
            }
            JsonNode off = t.get("data_offsets");
            if (!off.get(0).canConvertToLong() || !off.get(1).canConvertToLong()) {
                throw new ModelFormatException(file, "tensor " + name + " has invalid data_offsets " + off);
            }
            long begin = off.get(0).asLong();
            long end = off.get(1).asLong();
            if (begin < 0 || end < begin || end > dataSize) {
                throw new ModelFormatException(file, "tensor " + name + " has data_offsets [" + begin + ", " + end
                        + "] outside the data section of " + dataSize + " bytes");
            }
            long bytes = count * type.typeSize;
            if (end - begin != bytes) {
                throw new ModelFormatException(file, "tensor " + name + " (" + dtype + " " + sh + ") needs " + bytes
                        + " bytes but data_offsets [" + begin + ", " + end + "] hold " + (end - begin));
            }
            long[] shape = new long[Math.max(1, fileShape.length)];
            shape[0] = 1;
            for (int i = 0; i < fileShape.length; i++) {
                shape[i] = fileShape[fileShape.length - 1 - i];
            }
            ranges.add(new long[]{begin, end, order.size()});
            order.add(name);
            tensors.put(name, new TensorInfo(name, type, shape, seg.asSlice(dataStart + begin, bytes)));
        }
        ranges.sort((a, b) -> Long.compare(a[0], b[0]));
        for (int i = 1; i < ranges.size(); i++) {
            long[] prev = ranges.get(i - 1);
            long[] cur = ranges.get(i);
            if (cur[0] < prev[1] && cur[1] > cur[0] && prev[1] > prev[0]) {
                throw new ModelFormatException(file, "tensor " + order.get((int) cur[2]) + " overlaps tensor "
                        + order.get((int) prev[2]) + " in the data section");
            }
        }
        return new SafetensorsFile(file, arena, ownsArena, tensors, metadata);
    }

    public Path path() {
        return path;
    }

    /** Tensors by their names in the file, in header order; shapes in ggml order. */
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    /** The {@code __metadata__} string map (empty when absent). */
    public Map<String, String> metadata() {
        return metadata;
    }

    /** The tensor's shape as the file stores it (row-major, outermost first: HF's [out, in]). */
    public long[] fileShape(String name) {
        TensorInfo t = tensor(name);
        long[] s = t.shape();
        long[] r = new long[s.length];
        for (int i = 0; i < s.length; i++) {
            r[i] = s[s.length - 1 - i];
        }
        return r;
    }

    public TensorInfo tensor(String name) {
        TensorInfo t = tensors.get(name);
        if (t == null) {
            throw new ModelFormatException(path, "missing tensor " + name);
        }
        return t;
    }

    @Override
    public void close() {
        if (ownsArena && arena.scope().isAlive()) {
            arena.close();
        }
    }
}

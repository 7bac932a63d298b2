package io.lora4j.model.format;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.kernels.GgmlType;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes a {@code .safetensors} file: header JSON with {@code "__metadata__": {"format": "pt", …}},
 * space-padded so the data starts at a multiple of 8, tensors packed back to back in the order
 * added (the layout the reference library produces). Shapes are given in the file's order
 * (row-major, outermost first, e.g. HF's [out, in]). Written durably ({@link DurableFiles}).
 */
public final class SafetensorsWriter {
    private record Pending(String name, GgmlType type, long[] shape, long bytes, GgufWriter.TensorFill fill) {
    }

    private final Map<String, String> metadata = new LinkedHashMap<>();
    private final List<Pending> tensors = new ArrayList<>();

    public SafetensorsWriter() {
        metadata.put("format", "pt");
    }

    public SafetensorsWriter putMetadata(String key, String value) {
        metadata.put(key, value);
        return this;
    }

    /** Adds a tensor of {@code type} (F32, F16 or BF16) with the file-order {@code shape}, filled at write time. */
    public SafetensorsWriter add(String name, GgmlType type, long[] shape, GgufWriter.TensorFill fill) {
        if (type != GgmlType.F32 && type != GgmlType.F16 && type != GgmlType.BF16) {
            throw new IllegalArgumentException(name + ": safetensors writer supports F32, F16, BF16, not " + type);
        }
        if (name.equals("__metadata__") || tensors.stream().anyMatch(p -> p.name.equals(name))) {
            throw new IllegalArgumentException("duplicate or reserved tensor name " + name);
        }
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        tensors.add(new Pending(name, type, shape.clone(), n * type.typeSize, fill));
        return this;
    }

    public SafetensorsWriter add(String name, GgmlType type, long[] shape, MemorySegment src) {
        return add(name, type, shape, dst -> {
            if (dst.byteSize() != src.byteSize()) {
                throw new IllegalArgumentException(name + ": source has " + src.byteSize() + " bytes, need " + dst.byteSize());
            }
            dst.copyFrom(src);
        });
    }

    /** Adds an F32 tensor from {@code values} (row-major in {@code shape}). */
    public SafetensorsWriter add(String name, long[] shape, float[] values) {
        return add(name, GgmlType.F32, shape, MemorySegment.ofArray(values));
    }

    public void write(Path target) throws IOException {
        ObjectMapper json = new ObjectMapper();
        ObjectNode root = json.createObjectNode();
        ObjectNode meta = root.putObject("__metadata__");
        metadata.forEach(meta::put);
        long offset = 0;
        for (Pending p : tensors) {
            ObjectNode t = root.putObject(p.name);
            t.put("dtype", p.type == GgmlType.F32 ? "F32" : p.type == GgmlType.F16 ? "F16" : "BF16");
            ArrayNode s = t.putArray("shape");
            Arrays.stream(p.shape).forEach(s::add);
            ArrayNode o = t.putArray("data_offsets");
            o.add(offset);
            o.add(offset + p.bytes);
            offset += p.bytes;
        }
        byte[] header = json.writeValueAsBytes(root);
        int padded = (header.length + 7) / 8 * 8;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded);
        head.put(header);
        while (head.hasRemaining()) {
            head.put((byte) ' ');
        }
        head.flip();
        DurableFiles.write(target, ch -> {
            while (head.hasRemaining()) {
                ch.write(head);
            }
            long dataStart = 8 + padded;
            long pos = 0;
            for (Pending p : tensors) {
                if (p.bytes > 0) {
                    try (Arena arena = Arena.ofShared()) { // shared: a fill may write from several threads
                        p.fill.fill(ch.map(FileChannel.MapMode.READ_WRITE, dataStart + pos, p.bytes, arena));
                    }
                }
                pos += p.bytes;
            }
        });
    }
}

package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class GgufWriterTest {
    @TempDir
    Path tmp;

    @Test
    void roundTripsEveryMetadataTypeAndTensorBytes() throws IOException {
        GgufWriter w = new GgufWriter();
        w.putU8("t.u8", 200).putI8("t.i8", -100).putU16("t.u16", 60000).putI16("t.i16", -30000)
                .putU32("t.u32", 0xFFFFFFFFL).putI32("t.i32", -7).putU64("t.u64", -1L).putI64("t.i64", Long.MIN_VALUE)
                .putF32("t.f32", 1.5e-5f).putF64("t.f64", Math.PI).putBool("t.bool", true).putString("t.str", "héllo ▁ 🦙")
                .putStringArray("t.astr", new String[]{"", "a", "ü"})
                .putFloatArray("t.af32", new float[]{1f, -2.5f, Float.NaN})
                .putIntArray("t.ai32", new int[]{-1, 2}, false)
                .putIntArray("t.au32", new int[]{-1, 7}, true)
                .putLongArray("t.ai64", new long[]{Long.MAX_VALUE, -3}, false)
                .putLongArray("t.au64", new long[]{-1}, true)
                .putShortArray("t.ai16", new short[]{-5, 6}, false)
                .putShortArray("t.au16", new short[]{-1}, true)
                .putByteArray("t.ai8", new byte[]{-128, 127}, false)
                .putByteArray("t.au8", new byte[]{(byte) 255}, true)
                .putBoolArray("t.abool", new boolean[]{true, false, true})
                .putDoubleArray("t.af64", new double[]{1e300, -0.0})
                .putNestedArray("t.nested", new Object[]{new int[]{1, 2, 3}, new String[]{"x"}, new Object[]{new float[]{4f}}});
        w.put("llama.block_count", 22L);          // u32 by the key rule
        w.put("general.seed", 1L << 40);           // i64
        w.put("tokenizer.ggml.eos_token_id", 2L);  // u32
        w.put("t.boxed.int", 5);                   // Integer -> i32
        w.put("t.generic.arr", new float[]{9f});
        float[] a = new float[37];
        for (int i = 0; i < a.length; i++) {
            a[i] = i * 0.25f - 3;
        }
        byte[] q = new byte[34 * 3];
        for (int i = 0; i < q.length; i++) {
            q[i] = (byte) (i * 7);
        }
        w.addTensor("a", GgmlType.F32, new long[]{37}, MemorySegment.ofArray(a));
        w.addTensor("q", GgmlType.Q8_0, new long[]{32, 3}, q);
        w.addTensor("z", GgmlType.F16, new long[]{2, 3, 4}, dst -> {
            for (int i = 0; i < 24; i++) {
                dst.setAtIndex(Mapped.I16, i, Float.floatToFloat16(i));
            }
        });
        Path out = tmp.resolve("rt.gguf");
        w.write(out);
        assertFalse(Files.exists(tmp.resolve("rt.gguf.tmp")));
        try (GgufFile f = GgufFile.open(out)) {
            Map<String, Object> m = f.metadata();
            assertEquals(3, f.version());
            assertEquals(200L, m.get("t.u8"));
            assertEquals(GgufFile.UINT8, f.valueType("t.u8"));
            assertEquals(-100L, m.get("t.i8"));
            assertEquals(GgufFile.INT8, f.valueType("t.i8"));
            assertEquals(60000L, m.get("t.u16"));
            assertEquals(-30000L, m.get("t.i16"));
            assertEquals(0xFFFFFFFFL, m.get("t.u32"));
            assertEquals(GgufFile.UINT32, f.valueType("t.u32"));
            assertEquals(-7L, m.get("t.i32"));
            assertEquals(GgufFile.INT32, f.valueType("t.i32"));
            assertEquals(-1L, m.get("t.u64"));
            assertEquals(GgufFile.UINT64, f.valueType("t.u64"));
            assertEquals(Long.MIN_VALUE, m.get("t.i64"));
            assertEquals(1.5e-5f, m.get("t.f32"));
            assertEquals(Math.PI, m.get("t.f64"));
            assertEquals(Boolean.TRUE, m.get("t.bool"));
            assertEquals("héllo ▁ 🦙", m.get("t.str"));
            assertArrayEquals(new String[]{"", "a", "ü"}, (String[]) m.get("t.astr"));
            assertArrayEquals(new float[]{1f, -2.5f, Float.NaN}, (float[]) m.get("t.af32"));
            assertArrayEquals(new int[]{-1, 2}, (int[]) m.get("t.ai32"));
            assertArrayEquals(new int[]{-1, 7}, (int[]) m.get("t.au32"));
            assertArrayEquals(new long[]{Long.MAX_VALUE, -3}, (long[]) m.get("t.ai64"));
            assertArrayEquals(new long[]{-1}, (long[]) m.get("t.au64"));
            assertArrayEquals(new short[]{-5, 6}, (short[]) m.get("t.ai16"));
            assertArrayEquals(new short[]{-1}, (short[]) m.get("t.au16"));
            assertArrayEquals(new byte[]{-128, 127}, (byte[]) m.get("t.ai8"));
            assertArrayEquals(new byte[]{(byte) 255}, (byte[]) m.get("t.au8"));
            assertArrayEquals(new boolean[]{true, false, true}, (boolean[]) m.get("t.abool"));
            assertArrayEquals(new double[]{1e300, -0.0}, (double[]) m.get("t.af64"));
            Object[] nested = (Object[]) m.get("t.nested");
            assertEquals(3, nested.length);
            assertArrayEquals(new int[]{1, 2, 3}, (int[]) nested[0]);
            assertArrayEquals(new String[]{"x"}, (String[]) nested[1]);
            assertArrayEquals(new float[]{4f}, (float[]) ((Object[]) nested[2])[0]);
            assertEquals(22L, m.get("llama.block_count"));
            assertEquals(GgufFile.UINT32, f.valueType("llama.block_count"));
            assertEquals(1L << 40, m.get("general.seed"));
            assertEquals(GgufFile.INT64, f.valueType("general.seed"));
            assertEquals(GgufFile.UINT32, f.valueType("tokenizer.ggml.eos_token_id"));
            assertEquals(5L, m.get("t.boxed.int"));
            assertEquals(GgufFile.INT32, f.valueType("t.boxed.int"));
            assertArrayEquals(new float[]{9f}, (float[]) m.get("t.generic.arr"));

            assertEquals(3, f.tensors().size());
            assertEquals(-1, f.tensor("a").data().mismatch(MemorySegment.ofArray(a)));
            assertEquals(-1, f.tensor("q").data().mismatch(MemorySegment.ofArray(q)));
            assertEquals(GgmlType.Q8_0, f.tensor("q").type());
            assertArrayEquals(new long[]{2, 3, 4}, f.tensor("z").shape());
            assertEquals(23f, Float.float16ToFloat(f.tensor("z").data().getAtIndex(Mapped.I16, 23)));
            for (TensorInfo t : f.tensors().values()) {
                assertEquals(0, (t.data().address() - f.segment().address()) % 32, t.name());
            }
            // copyMetadata keeps exact types: write again and compare
            GgufWriter w2 = new GgufWriter().copyMetadata(f, "");
            Path out2 = tmp.resolve("rt2.gguf");
            w2.write(out2);
            try (GgufFile g = GgufFile.open(out2)) {
                for (String k : m.keySet()) {
                    assertEquals(f.valueType(k), g.valueType(k), k);
                }
                assertArrayEquals(new int[]{-1, 7}, (int[]) g.metadata().get("t.au32"));
                for (String k : m.keySet()) {
                    assertEquals(f.arrayElementType(k), g.arrayElementType(k), k);
                }
                assertEquals(GgufFile.UINT32, g.arrayElementType("t.au32"));
                assertEquals(GgufFile.INT8, g.arrayElementType("t.ai8"));
                assertEquals(GgufFile.ARRAY, g.arrayElementType("t.nested"));
                assertEquals(GgufFile.ARRAY, g.valueType("t.nested"));
            }
        }
    }

    @Test
    void rewriteOfRealFileIsByteIdentical() throws IOException {
        // stories260K.gguf has the default alignment and no padding surprises: copying all keys with
        // their types and all tensors must reproduce the file byte for byte
        Path out = tmp.resolve("copy.gguf");
        try (GgufFile f = GgufFile.open(TestFiles.stories260kGguf())) {
            GgufWriter w = new GgufWriter().copyMetadata(f, "");
            f.tensors().values().forEach(w::addTensor);
            w.write(out);
        }
        assertEquals(-1, Files.mismatch(TestFiles.stories260kGguf(), out));
    }

    @Test
    void duplicateTensorRejected() {
        GgufWriter w = new GgufWriter().addTensor("x", GgmlType.F32, new long[]{1}, new byte[4]);
        assertThrows(IllegalArgumentException.class, () -> w.addTensor("x", GgmlType.F32, new long[]{1}, new byte[4]));
        assertThrows(IllegalArgumentException.class, () -> w.addTensor("y", GgmlType.Q8_0, new long[]{31}, new byte[34]));
    }

    @Test
    void typesGgmlDoesNotHaveAreRefusedByName() {
        GgufWriter w = new GgufWriter();
        for (GgmlType t : new GgmlType[]{GgmlType.INT8, GgmlType.INT8_ZP, GgmlType.NF4, GgmlType.NF4_DQ, GgmlType.FP4, GgmlType.FP4_DQ}) {
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> w.addTensor("blk.0.attn_q.weight", t, new long[]{64, 2}, new byte[256]));
            org.junit.jupiter.api.Assertions.assertTrue(e.getMessage().startsWith("blk.0.attn_q.weight: " + t + " is a lora4j load-time quantization"
                    + " that ggml does not have"), e.getMessage());
        }
        org.junit.jupiter.api.Assertions.assertNull(GgmlType.fromId(-1), "no ggml id maps to a lora4j type");
    }
}

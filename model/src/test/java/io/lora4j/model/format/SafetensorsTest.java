package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SafetensorsTest {
    @TempDir
    Path tmp;

    // tiny HF Llama: C=16, H=24, L=2, NH=4, NKV=2, HS=4, V=10
    static final String CONFIG = """
            {"architectures": ["LlamaForCausalLM"], "hidden_size": 16, "intermediate_size": 24,
             "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 10,
             "max_position_embeddings": 64, "rms_norm_eps": 1e-06, "rope_theta": 500000.0,
             "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 8192, "rope_type": "llama3"},
             "tie_word_embeddings": false, "torch_dtype": "bfloat16"}
            """;

    /** HF name -> {file shape}, dtype chosen round-robin F32/F16/BF16. */
    static Map<String, long[]> hfTensors(boolean withLmHead) {
        Map<String, long[]> m = new LinkedHashMap<>();
        m.put("model.embed_tokens.weight", new long[]{10, 16});
        for (int l = 0; l < 2; l++) {
            String p = "model.layers." + l + ".";
            m.put(p + "input_layernorm.weight", new long[]{16});
            m.put(p + "self_attn.q_proj.weight", new long[]{16, 16});
            m.put(p + "self_attn.k_proj.weight", new long[]{8, 16});
            m.put(p + "self_attn.v_proj.weight", new long[]{8, 16});
            m.put(p + "self_attn.o_proj.weight", new long[]{16, 16});
            m.put(p + "post_attention_layernorm.weight", new long[]{16});
            m.put(p + "mlp.gate_proj.weight", new long[]{24, 16});
            m.put(p + "mlp.up_proj.weight", new long[]{24, 16});
            m.put(p + "mlp.down_proj.weight", new long[]{16, 24});
        }
        m.put("model.norm.weight", new long[]{16});
        if (withLmHead) {
            m.put("lm_head.weight", new long[]{10, 16});
        }
        return m;
    }

    static final GgmlType[] TYPES = {GgmlType.F32, GgmlType.F16, GgmlType.BF16};

    static byte[] bytesFor(String name, GgmlType t, long[] shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        float[] x = new float[(int) n];
        for (int i = 0; i < n; i++) {
            x[i] = (name.hashCode() % 97 + i) * 0.01f;
        }
        MemorySegment m = MemorySegment.ofArray(new byte[(int) t.byteSize(n)]);
        Quantizer.quantizeRow(t, m, 0, x, 0, (int) n);
        return m.toArray(Mapped.U8);
    }

    static void writeShard(Path file, Map<String, long[]> tensors, Map<String, byte[]> data, int typeOffset) throws IOException {
        SafetensorsWriter w = new SafetensorsWriter();
        int i = typeOffset;
        for (Map.Entry<String, long[]> e : tensors.entrySet()) {
            GgmlType t = TYPES[i++ % 3];
            byte[] b = bytesFor(e.getKey(), t, e.getValue());
            data.put(e.getKey(), b);
            w.add(e.getKey(), t, e.getValue(), MemorySegment.ofArray(b));
        }
        w.write(file);
    }

    @Test
    void hfDirectoryRoundTrip() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("hf"));
        Files.writeString(dir.resolve("config.json"), CONFIG);
        Map<String, byte[]> data = new LinkedHashMap<>();
        writeShard(dir.resolve("model.safetensors"), hfTensors(true), data, 0);
        assertFalse(Files.exists(dir.resolve("model.safetensors.tmp")));
        try (SafetensorsFile f = SafetensorsFile.open(dir.resolve("model.safetensors"))) {
            assertEquals(Map.of("format", "pt"), f.metadata());
            long headerLen = ByteBuffer.wrap(Files.readAllBytes(f.path()), 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            assertEquals(0, headerLen % 8);
            assertArrayEquals(new long[]{8, 16}, f.fileShape("model.layers.1.self_attn.k_proj.weight"));
            assertArrayEquals(new long[]{16, 8}, f.tensor("model.layers.1.self_attn.k_proj.weight").shape());
        }
        try (WeightSource m = HfModel.open(dir)) {
            assertEquals("safetensors", m.format());
            assertEquals(new LlamaConfig(16, 24, 2, 4, 2, 4, 10, 64, 1e-6f, 500000f,
                    new LlamaConfig.RopeScaling(8f, 1f, 4f, 8192), LlamaConfig.RopeStyle.HALVES, false), m.config());
            assertEquals(hfTensors(true).size(), m.tensors().size());
            assertArrayEquals(new long[]{16, 10}, m.tensor("token_embd.weight").shape());
            assertArrayEquals(new long[]{16, 8}, m.tensor("blk.1.attn_k.weight").shape());
            assertArrayEquals(new long[]{24, 16}, m.tensor("blk.0.ffn_down.weight").shape());
            assertArrayEquals(new long[]{16}, m.tensor("blk.0.ffn_norm.weight").shape());
            assertArrayEquals(new long[]{16, 10}, m.tensor("output.weight").shape());
            int i = 0;
            for (Map.Entry<String, long[]> e : hfTensors(true).entrySet()) {
                TensorInfo t = m.tensor(HfModel.canonicalName(e.getKey()));
                assertEquals(TYPES[i++ % 3], t.type(), e.getKey());
                assertEquals(-1, t.data().mismatch(MemorySegment.ofArray(data.get(e.getKey()))), e.getKey());
            }
            assertEquals("pt", m.metadata().get("safetensors.format"));
            assertEquals(16L, m.metadata().get("hidden_size"));
        }
        try (WeightSource m = ModelFiles.open(dir)) {
            assertEquals("safetensors", m.format());
        }
        try (WeightSource m = ModelFiles.open(dir.resolve("model.safetensors"))) {
            assertEquals(16, m.config().dim());
        }
    }

    @Test
    void canonicalNames() {
        assertEquals("token_embd.weight", HfModel.canonicalName("model.embed_tokens.weight"));
        assertEquals("output_norm.weight", HfModel.canonicalName("model.norm.weight"));
        assertEquals("output.weight", HfModel.canonicalName("lm_head.weight"));
        assertEquals("blk.12.attn_output.weight", HfModel.canonicalName("model.layers.12.self_attn.o_proj.weight"));
        assertEquals("blk.3.ffn_norm.weight", HfModel.canonicalName("model.layers.3.post_attention_layernorm.weight"));
        assertEquals("blk.0.ffn_gate.weight", HfModel.canonicalName("model.layers.0.mlp.gate_proj.weight"));
        assertEquals("model.layers.0.self_attn.rotary_emb.inv_freq", HfModel.canonicalName("model.layers.0.self_attn.rotary_emb.inv_freq"));
    }

    @Test
    void shardedIndexAndTiedEmbeddings() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("sharded"));
        Files.writeString(dir.resolve("config.json"), CONFIG.replace("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true"));
        Map<String, long[]> all = hfTensors(false);
        Map<String, long[]> a = new LinkedHashMap<>();
        Map<String, long[]> b = new LinkedHashMap<>();
        StringBuilder idx = new StringBuilder("{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
        int i = 0;
        for (Map.Entry<String, long[]> e : all.entrySet()) {
            boolean first = i++ < all.size() / 2;
            (first ? a : b).put(e.getKey(), e.getValue());
            idx.append(i > 1 ? "," : "").append('"').append(e.getKey()).append("\": \"")
                    .append(first ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors").append('"');
        }
        idx.append("}}");
        Files.writeString(dir.resolve("model.safetensors.index.json"), idx);
        Map<String, byte[]> data = new LinkedHashMap<>();
        writeShard(dir.resolve("model-00001-of-00002.safetensors"), a, data, 0);
        writeShard(dir.resolve("model-00002-of-00002.safetensors"), b, data, 1);
        try (HfModel m = HfModel.open(dir)) {
            assertTrue(m.config().tiedEmbeddings());
            assertEquals(all.size(), m.tensors().size());
            assertFalse(m.tensors().containsKey("output.weight"));
            for (String hf : all.keySet()) {
                assertEquals(-1, m.tensor(HfModel.canonicalName(hf)).data().mismatch(MemorySegment.ofArray(data.get(hf))), hf);
            }
        }
        // an index entry whose tensor is not in its shard
        Files.writeString(dir.resolve("model.safetensors.index.json"),
                "{\"weight_map\": {\"model.norm.weight\": \"model-00001-of-00002.safetensors\"}}");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> HfModel.open(dir));
        assertTrue(e.getMessage().contains("model.norm.weight") && e.getMessage().contains("model-00001-of-00002"), e.getMessage());
    }

    @Test
    void peftAdapter() {
        try (SafetensorsFile f = SafetensorsFile.open(TestFiles.adapter())) {
            assertEquals(120, f.tensors().size());
            assertEquals("pt", f.metadata().get("format"));
            long total = 0;
            for (TensorInfo t : f.tensors().values()) {
                assertEquals(GgmlType.F32, t.type(), t.name());
                total += t.data().byteSize();
            }
            assertEquals(3686400, total);
            String p = "base_model.model.model.layers.7.self_attn.";
            assertArrayEquals(new long[]{16, 576}, f.fileShape(p + "q_proj.lora_A.weight"));
            assertArrayEquals(new long[]{576, 16}, f.tensor(p + "q_proj.lora_A.weight").shape());
            assertArrayEquals(new long[]{576, 16}, f.fileShape(p + "q_proj.lora_B.weight"));
            assertArrayEquals(new long[]{16, 576}, f.fileShape(p + "v_proj.lora_A.weight"));
            assertArrayEquals(new long[]{192, 16}, f.fileShape(p + "v_proj.lora_B.weight"));
            // lora_B is trained, so not all zero
            MemorySegment bm = f.tensor(p + "v_proj.lora_B.weight").data();
            boolean nonZero = false;
            for (long i = 0; i < bm.byteSize() / 4; i++) {
                nonZero |= bm.getAtIndex(Mapped.F32, i) != 0f;
            }
            assertTrue(nonZero);
        }
    }

    // ---- errors ----

    static byte[] raw(String header, int dataBytes) {
        byte[] h = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer b = ByteBuffer.allocate(8 + h.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        b.putLong(h.length).put(h);
        return b.array();
    }

    private String fail(String name, byte[] bytes) throws IOException {
        Path p = TestFiles.write(tmp, name, bytes);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> SafetensorsFile.open(p).close());
        assertTrue(e.getMessage().startsWith(p.toString()), e.getMessage());
        return e.getMessage();
    }

    private static void assertHas(String msg, String... parts) {
        for (String s : parts) {
            assertTrue(msg.contains(s), "expected \"" + s + "\" in: " + msg);
        }
    }

    @Test
    void safetensorsErrors() throws IOException {
        byte[] b = raw("{}", 0);
        b[6] = 1;
        assertHas(fail("len.safetensors", b), "header length");
        assertHas(fail("short.safetensors", new byte[3]), "too short");
        assertHas(fail("json.safetensors", raw("{\"a\": {\"dtype\": \"F32\",", 0)), "not valid JSON");
        assertHas(fail("range.safetensors", raw("{\"w\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 4)),
                "tensor w", "data_offsets [0, 8]", "outside");
        assertHas(fail("dtype.safetensors", raw("{\"w\": {\"dtype\": \"I64\", \"shape\": [1], \"data_offsets\": [0, 8]}}", 8)),
                "tensor w", "unsupported dtype I64");
        assertHas(fail("mismatch.safetensors", raw("{\"w\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [0, 8]}}", 8)),
                "tensor w", "needs 6 bytes");
        assertHas(fail("overlap.safetensors", raw("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                + "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}", 12)), "overlaps");
        assertHas(fail("entry.safetensors", raw("{\"w\": {\"dtype\": \"F32\"}}", 0)), "tensor w", "data_offsets");
    }

    @Test
    void configErrors() throws IOException {
        Path dir = Files.createDirectory(tmp.resolve("cfg"));
        Map<String, byte[]> data = new LinkedHashMap<>();
        writeShard(dir.resolve("model.safetensors"), hfTensors(true), data, 0);
        Path cfg = dir.resolve("config.json");

        ModelFormatException e = assertThrows(ModelFormatException.class, () -> HfModel.open(dir));
        assertHas(e.getMessage(), "config.json", "no such file");

        Files.writeString(cfg, CONFIG.replace("\"hidden_size\": 16,", ""));
        e = assertThrows(ModelFormatException.class, () -> HfModel.open(dir));
        assertHas(e.getMessage(), cfg.toString(), "missing key hidden_size");

        Files.writeString(cfg, CONFIG.replace("\"vocab_size\": 10,", "\"vocab_size\": 10"));
        e = assertThrows(ModelFormatException.class, () -> HfModel.open(dir));
        assertHas(e.getMessage(), cfg.toString(), "invalid JSON");

        Files.writeString(cfg, CONFIG.replace("\"llama3\"", "\"yarn\""));
        e = assertThrows(ModelFormatException.class, () -> HfModel.open(dir));
        assertHas(e.getMessage(), cfg.toString(), "rope_scaling", "yarn");

        Files.writeString(cfg, CONFIG.replace("\"intermediate_size\": 24", "\"intermediate_size\": 32"));
        e = assertThrows(ModelFormatException.class, () -> HfModel.open(dir));
        assertHas(e.getMessage(), dir.toString(), "blk.0.ffn_gate.weight", "[16, 24]", "expected [16, 32]");
    }
}

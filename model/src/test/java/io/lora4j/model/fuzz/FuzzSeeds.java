package io.lora4j.model.fuzz;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Llama;
import io.lora4j.model.MergedExport;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.GgufWriter;
import io.lora4j.model.format.RandomModel;
import io.lora4j.model.format.SafetensorsWriter;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
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

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes the seed corpus of every fuzz target ({@link FuzzTargetsTest}) into
 * {@code model/src/test/fuzz/<Target>/seed-*}: small valid inputs of each format (a few KB at most,
 * nothing copied from ../shared) from which the fuzzer mutates. Run once from the repository root:
 * {@code java -cp <model test classpath> io.lora4j.model.fuzz.FuzzSeeds model/src/test/fuzz}.
 */
public final class FuzzSeeds {
    private FuzzSeeds() {
    }

    public static void main(String[] args) throws Exception {
        Path root = Path.of(args.length > 0 ? args[0] : "model/src/test/fuzz");
        Path tmp = Files.createTempDirectory("lora4j-seeds");
        LlamaConfig tiny = new LlamaConfig(8, 16, 1, 2, 1, 4, 16, 64, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false);
        LlamaConfig q8 = new LlamaConfig(32, 32, 1, 2, 1, 16, 16, 64, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, true);

        // GGUF: a tiny model with a SentencePiece vocabulary, a Q8_0 one, a vocabulary-only byte-level BPE file
        Path gguf = tmp.resolve("tiny.gguf");
        RandomModel.write(gguf, tiny, GgmlType.F32, 1, spmMetadata());
        seed(root, "GgufFuzz", "tiny-f32.gguf", Files.readAllBytes(gguf));
        Path gq8 = tmp.resolve("q8.gguf");
        RandomModel.write(gq8, q8, GgmlType.Q8_0, 2, spmMetadata());
        seed(root, "GgufFuzz", "tiny-q8_0.gguf", Files.readAllBytes(gq8));
        Path vocab = tmp.resolve("vocab.gguf");
        GgufWriter vw = new GgufWriter();
        bpeMetadata().forEach(vw::put);
        vw.write(vocab);
        seed(root, "GgufFuzz", "vocab-gpt2.gguf", Files.readAllBytes(vocab));

        // Arrow models converted from those GGUFs, one of them with its tokenizer in the metadata
        try (GgufFile g = GgufFile.open(gguf)) {
            Path arrow = tmp.resolve("tiny.arrow");
            MergedExport.writeArrow(new Llama(g), null, arrow);
            seed(root, "ArrowModelFuzz", "tiny.arrow", Files.readAllBytes(arrow));
        }

        // llama2.c: the header, then every f32 array of a 1-layer model (shared classifier)
        seed(root, "Llama2cFuzz", "tiny.bin", llama2c(8, 16, 1, 2, 1, 16, 8));

        // safetensors and adapters: a PEFT LoRA adapter (F32), the same tensors in F16 and BF16
        Llama base = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 1, false));
        Path lora = tmp.resolve("lora");
        PeftAdapters.save(new LoraAdapter("default", new LoraConfig(2, 4f, 0f, List.of("q_proj", "v_proj"), null, "lora_only", false,
                "gaussian", List.of(0), Map.of("v_proj", 1), Map.of("v_proj", 2f), List.of()), base, 3), base, lora);
        seed(root, "SafetensorsFuzz", "lora-f32.safetensors", Files.readAllBytes(lora.resolve(PeftAdapters.WEIGHTS)));
        for (GgmlType t : new GgmlType[]{GgmlType.F16, GgmlType.BF16}) {
            Path f = tmp.resolve(t + ".safetensors");
            new SafetensorsWriter().putMetadata("note", "seed").add("a.weight", t, new long[]{2, 3}, java.lang.foreign.MemorySegment.ofArray(new byte[]{0, 60, 0, 61, 0, -64, 1, 2, 3, 4, 5, 6}))
                    .add("b", t, new long[]{4}, java.lang.foreign.MemorySegment.ofArray(new byte[8])).write(f);
            seed(root, "SafetensorsFuzz", t.name().toLowerCase() + ".safetensors", Files.readAllBytes(f));
        }
        seed(root, "AdapterConfigFuzz", "lora.json", Files.readAllBytes(lora.resolve(PeftAdapters.CONFIG)));
        Path qv = tmp.resolve("qv");
        PeftAdapters.save(new LoraAdapter("default", LoraConfig.of(2, 4f, List.of("q_proj", "v_proj")), base, 1), base, qv);
        seed(root, "AdapterConfigFuzz", "lora-qv.json", Files.readAllBytes(qv.resolve(PeftAdapters.CONFIG)));
        Path ada = tmp.resolve("ada");
        PeftAdapters.save(new LoraAdapter("default", new AdaLoraConfig(LoraConfig.of(2, 4f, List.of("q_proj", "v_proj")), 2, 1, 0, 0, 1,
                0.85f, 0.85f, 0.5f, 10), base, 1), base, ada);
        seed(root, "AdapterConfigFuzz", "adalora.json", Files.readAllBytes(ada.resolve(PeftAdapters.CONFIG)));
        seed(root, "AdapterConfigFuzz", "regex.json", ("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": "
                + "\"model\\\\.layers\\\\.0\\\\.self_attn\\\\.(q|v)_proj\", \"rank_pattern\": {\"q_proj\": 2}, \"modules_to_save\": null}").getBytes());

        // tokenizer.model: a SentencePiece protobuf and a tiktoken file
        seed(root, "TokenizerModelFuzz", "spm.model", spmProto());
        StringBuilder tk = new StringBuilder();
        for (int b = 0; b < 256; b++) {
            tk.append(Base64.getEncoder().encodeToString(new byte[]{(byte) b})).append(' ').append(b).append('\n');
        }
        String[] more = {"he", "ll", "hell", "hello", " w", "or", "ld", " world"};
        for (int i = 0; i < more.length; i++) {
            tk.append(Base64.getEncoder().encodeToString(more[i].getBytes(StandardCharsets.UTF_8))).append(' ').append(256 + i).append('\n');
        }
        seed(root, "TokenizerModelFuzz", "tiktoken.model", tk.toString().getBytes(StandardCharsets.UTF_8));

        seed(root, "TokenizerJsonFuzz", "tokenizer.json", tokenizerJson());
        seed(root, "Llama2cTokenizerFuzz", "tokenizer.bin", llama2cTokenizer());

        // chat (see ChatTemplateFuzz): tokenizer, generation flag, then role byte and content per message
        for (int t = 0; t < 3; t++) {
            seed(root, "ChatTemplateFuzz", "family-" + t, cat(new byte[]{(byte) t, 1, 0}, "Be brief.\0", new byte[]{1}, "Hello <s> there\0",
                    new byte[]{2}, "Hi!\0", new byte[]{1}, "Tell me a story.\0"));
        }
        seed(root, "ChatTemplateFuzz", "unknown-role", cat(new byte[]{2, 0, 1}, "hi\0", new byte[]{3}, "tool\0<|im_end|>\0"));
        seed(root, "ChatTemplateFuzz", "assistant-first", cat(new byte[]{0, 0, 2}, "I go first\0"));

        // training data
        seed(root, "JsonlDatasetFuzz", "records.jsonl", String.join("\n",
                "{\"text\": \"Once upon a time there was a dragon.\"}",
                "{\"prompt\": \"Say hi.\", \"completion\": \" Hi!\"}",
                "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", \"content\": \"Hello\"},"
                        + " {\"role\": \"assistant\", \"content\": \"Hi.\"}]}",
                "", "{\"text\": \"tail\", \"extra\": [1, 2, {\"x\": null}]}").getBytes(StandardCharsets.UTF_8));
        seed(root, "ArrowDatasetFuzz", "text.arrows", arrowText(false));
        seed(root, "ArrowDatasetFuzz", "text.arrow", arrowText(true));
        seed(root, "ArrowDatasetFuzz", "messages.arrows", arrowMessages());
        System.out.println("seeds written to " + root.toAbsolutePath());
    }

    private static byte[] cat(Object... parts) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (Object p : parts) {
            out.writeBytes(p instanceof String s ? s.getBytes(StandardCharsets.UTF_8) : (byte[]) p);
        }
        return out.toByteArray();
    }

    private static void seed(Path root, String target, String name, byte[] data) throws IOException {
        Path dir = root.resolve(target);
        Files.createDirectories(dir);
        Files.write(dir.resolve("seed-" + name), data);
    }

    /** 16 SentencePiece pieces: unk, bos, eos, three bytes, letters and a few merges. */
    private static Map<String, Object> spmMetadata() {
        String[] pieces = {"<unk>", "<s>", "</s>", "<0x0A>", "<0x20>", "<0xC3>", "\u2581", "a", "b", "c", "\u2581a", "ab", "\u2581ab", "bc",
                "\u2581abc", "c\u2581"};
        float[] scores = new float[pieces.length];
        int[] types = new int[pieces.length];
        for (int i = 0; i < pieces.length; i++) {
            scores[i] = -i;
            types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 6 ? 6 : 1;
        }
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("tokenizer.ggml.model", "llama");
        m.put("tokenizer.ggml.tokens", pieces);
        m.put("tokenizer.ggml.scores", scores);
        m.put("tokenizer.ggml.token_type", types);
        m.put("tokenizer.ggml.bos_token_id", 1L);
        m.put("tokenizer.ggml.eos_token_id", 2L);
        m.put("tokenizer.ggml.unknown_token_id", 0L);
        return m;
    }

    /** A byte-level BPE vocabulary: the 256 bytes, a few merges, two specials. */
    private static Map<String, Object> bpeMetadata() {
        List<String> bytes = byteLevelAlphabet();
        String[] tokens = new String[256 + 4];
        int[] types = new int[tokens.length];
        for (int i = 0; i < 256; i++) {
            tokens[i] = bytes.get(i);
            types[i] = 1;
        }
        tokens[256] = "he";
        tokens[257] = "ll";
        tokens[258] = "<|begin_of_text|>";
        tokens[259] = "<|eot_id|>";
        types[258] = 3;
        types[259] = 3;
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("tokenizer.ggml.model", "gpt2");
        m.put("tokenizer.ggml.pre", "llama-bpe");
        m.put("tokenizer.ggml.tokens", tokens);
        m.put("tokenizer.ggml.token_type", types);
        m.put("tokenizer.ggml.merges", new String[]{"h e", "l l"});
        m.put("tokenizer.ggml.bos_token_id", 258L);
        m.put("tokenizer.ggml.eos_token_id", 259L);
        return m;
    }

    /** GPT-2's byte ↔ unicode table: the printable Latin-1 bytes stand for themselves, the others for U+0100 on. */
    private static List<String> byteLevelAlphabet() {
        String[] out = new String[256];
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            out[b] = String.valueOf(printable ? (char) b : (char) (256 + n++));
        }
        return List.of(out);
    }

    private static byte[] tokenizerJson() {
        StringBuilder vocab = new StringBuilder();
        List<String> bytes = byteLevelAlphabet();
        for (int i = 0; i < 256; i++) {
            vocab.append(i == 0 ? "" : ", ").append(json(bytes.get(i))).append(": ").append(i);
        }
        vocab.append(", \"he\": 256, \"ll\": 257, \"hell\": 258, \"<|im_start|>\": 259, \"<|im_end|>\": 260");
        return ("{\"version\": \"1.0\", \"added_tokens\": [{\"id\": 259, \"content\": \"<|im_start|>\", \"special\": true},"
                + " {\"id\": 260, \"content\": \"<|im_end|>\", \"special\": true}],"
                + " \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Digits\", \"individual_digits\": true},"
                + " {\"type\": \"Split\", \"pattern\": {\"Regex\": \" ?\\\\p{L}+| ?\\\\p{N}+|\\\\s+\"}, \"behavior\": \"Isolated\"},"
                + " {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}]},"
                + " \"model\": {\"type\": \"BPE\", \"ignore_merges\": false, \"vocab\": {" + vocab + "},"
                + " \"merges\": [\"h e\", [\"l\", \"l\"], \"he ll\"]}}").getBytes(StandardCharsets.UTF_8);
    }

    private static String json(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') {
                b.append('\\').append(c);
            } else if (c < 0x20 || c > 0x7e) {
                b.append(String.format("\\u%04x", (int) c));
            } else {
                b.append(c);
            }
        }
        return b.append('"').toString();
    }

    /** A SentencePiece ModelProto: pieces {piece, score, type}, trainer_spec ids, normalizer_spec add_dummy_prefix. */
    private static byte[] spmProto() {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        Map<String, Object> md = spmMetadata();
        String[] pieces = (String[]) md.get("tokenizer.ggml.tokens");
        int[] types = (int[]) md.get("tokenizer.ggml.token_type");
        for (int i = 0; i < pieces.length; i++) {
            ByteArrayOutputStream p = new ByteArrayOutputStream();
            field(p, 1, pieces[i].getBytes(StandardCharsets.UTF_8));
            p.write(2 << 3 | 5);
            p.writeBytes(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(-i).array());
            p.write(3 << 3);
            p.write(types[i]);
            field(out, 1, p.toByteArray());
        }
        field(out, 2, new byte[]{(byte) (40 << 3), 0, (byte) (41 << 3), 1, (byte) (42 << 3), 2});
        field(out, 3, new byte[]{3 << 3, 1, 4 << 3, 1});
        return out.toByteArray();
    }

    private static void field(ByteArrayOutputStream out, int number, byte[] value) {
        varint(out, (long) number << 3 | 2);
        varint(out, value.length);
        out.writeBytes(value);
    }

    private static void varint(ByteArrayOutputStream out, long v) {
        while (v >= 0x80) {
            out.write((int) (v & 0x7f) | 0x80);
            v >>>= 7;
        }
        out.write((int) v);
    }

    /** A llama2.c tokenizer.bin: max length, then (score, length, bytes) for unk, bos, eos, two bytes and some words. */
    private static byte[] llama2cTokenizer() {
        String[] pieces = {"<unk>", "\n<s>\n", "\n</s>\n", "<0x0A>", "<0x41>", " ", "a", "b", "ab", " ab", "Once", " upon"};
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        out.writeBytes(le(4).putInt(8).array());
        for (int i = 0; i < pieces.length; i++) {
            byte[] b = pieces[i].getBytes(StandardCharsets.UTF_8);
            out.writeBytes(le(8).putFloat(-i).putInt(b.length).array());
            out.writeBytes(b);
        }
        return out.toByteArray();
    }

    /** A llama2.c checkpoint with small random weights. */
    private static byte[] llama2c(int dim, int hidden, int layers, int heads, int kvHeads, int vocab, int seqLen) {
        int hs = dim / heads, kv = kvHeads * hs;
        long floats = (long) vocab * dim + (long) layers * dim + (long) layers * dim * dim + 2L * layers * kv * dim
                + (long) layers * dim * dim + (long) layers * dim + 3L * layers * hidden * dim + dim + (long) seqLen * hs;
        ByteBuffer b = le((int) (28 + 4 * floats));
        b.putInt(dim).putInt(hidden).putInt(layers).putInt(heads).putInt(kvHeads).putInt(vocab).putInt(seqLen);
        java.util.SplittableRandom r = new java.util.SplittableRandom(5);
        while (b.hasRemaining()) {
            b.putFloat((float) (r.nextDouble() - 0.5));
        }
        return b.array();
    }

    private static ByteBuffer le(int n) {
        return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] arrowText(boolean file) throws IOException {
        try (BufferAllocator alloc = new RootAllocator(); VarCharVector text = new VarCharVector("text", alloc)) {
            String[] rows = {"Once upon a time.", "There was a dragon called Spark.", ""};
            text.allocateNew();
            for (int i = 0; i < rows.length; i++) {
                text.setSafe(i, rows[i].getBytes(StandardCharsets.UTF_8));
            }
            text.setValueCount(rows.length);
            return write(new VectorSchemaRoot(List.of(text.getField()), List.of(text)), file);
        }
    }

    private static byte[] arrowMessages() throws IOException {
        Field role = Field.nullable("role", ArrowType.Utf8.INSTANCE);
        Field content = Field.nullable("content", ArrowType.Utf8.INSTANCE);
        Field item = new Field("item", FieldType.nullable(ArrowType.Struct.INSTANCE), List.of(role, content));
        Field messages = new Field("messages", FieldType.nullable(ArrowType.List.INSTANCE), List.of(item));
        try (BufferAllocator alloc = new RootAllocator(); VectorSchemaRoot root = VectorSchemaRoot.create(new Schema(List.of(messages)), alloc)) {
            ListVector list = (ListVector) root.getVector("messages");
            UnionListWriter w = list.getWriter();
            String[][] conv = {{"user", "Hello"}, {"assistant", "Hi there."}};
            w.setPosition(0);
            w.startList();
            for (String[] m : conv) {
                var s = w.struct();
                s.start();
                byte[] r = m[0].getBytes(StandardCharsets.UTF_8), c = m[1].getBytes(StandardCharsets.UTF_8);
                try (var rb = alloc.buffer(r.length); var cb = alloc.buffer(c.length)) {
                    rb.setBytes(0, r);
                    cb.setBytes(0, c);
                    s.varChar("role").writeVarChar(0, r.length, rb);
                    s.varChar("content").writeVarChar(0, c.length, cb);
                }
                s.end();
            }
            w.endList();
            w.setValueCount(1);
            root.setRowCount(1);
            return write(root, false);
        }
    }

    private static byte[] write(VectorSchemaRoot root, boolean file) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        root.setRowCount(root.getFieldVectors().getFirst().getValueCount());
        try (ArrowWriter w = file ? new ArrowFileWriter(root, null, Channels.newChannel(out))
                : new ArrowStreamWriter(root, null, Channels.newChannel(out))) {
            w.start();
            w.writeBatch();
            w.end();
        }
        return out.toByteArray();
    }
}

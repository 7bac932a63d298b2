package io.lora4j.model.format;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

/** Paths to the shared test models and helpers to build and corrupt copies. */
final class TestFiles {
    private TestFiles() {
    }

    static Path shared() {
        String s = System.getProperty("lora4j.shared");
        if (s == null) {
            throw new IllegalStateException("system property lora4j.shared is not set (run through Maven surefire)");
        }
        return Path.of(s);
    }

    static Path model(String rel) {
        return shared().resolve("models").resolve(rel);
    }

    static Path stories260kBin() {
        return model("stories260K/stories260K.bin");
    }

    static Path stories260kGguf() {
        return model("stories260K/stories260K.gguf");
    }

    static Path tinyRandomGguf() {
        return model("llama-2-tiny-random-gguf/llama-2-tiny-random.gguf");
    }

    static Path vocabSpmGguf() {
        return model("ggml-vocab/ggml-vocab-llama-spm.gguf");
    }

    static Path adapter() {
        return model("peft-lora-smollm-135m/adapter_model.safetensors");
    }

    /**
     * Writes a GGUF equivalent of stories260K.gguf from stories260K.bin: the llama keys of the real
     * file plus tiny tokenizer keys, and every tensor (output.weight as a copy of token_embd).
     */
    static Path storiesGgufFromBin(Path dir) throws IOException {
        Path out = dir.resolve("stories260K-from-bin.gguf");
        try (Llama2cFile bin = Llama2cFile.open(stories260kBin())) {
            GgufWriter w = new GgufWriter();
            w.putString("general.architecture", "llama");
            w.putString("general.name", "llama");
            w.putU32("llama.context_length", 2048);
            w.putU32("llama.embedding_length", 64);
            w.putU32("llama.feed_forward_length", 172);
            w.putU32("llama.attention.head_count", 8);
            w.putU32("llama.attention.head_count_kv", 4);
            w.putU32("llama.block_count", 5);
            w.putU32("llama.rope.dimension_count", 8);
            w.putF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
            w.putString("tokenizer.ggml.model", "llama");
            w.putStringArray("tokenizer.ggml.tokens", new String[]{"<unk>", "<s>", "</s>"});
            w.putU32("tokenizer.ggml.bos_token_id", 1);
            TensorInfo emb = bin.tensor("token_embd.weight");
            w.addTensor(emb);
            w.addTensor("output_norm.weight", io.lora4j.kernels.GgmlType.F32, new long[]{64}, bin.tensor("output_norm.weight").data());
            w.addTensor("output.weight", emb.type(), emb.shape(), emb.data());
            for (TensorInfo t : bin.tensors().values()) {
                if (t.name().startsWith("blk.")) {
                    w.addTensor(t);
                }
            }
            w.write(out);
        }
        return out;
    }

    static int indexOf(byte[] hay, String needle, int from) {
        byte[] n = needle.getBytes(StandardCharsets.UTF_8);
        outer:
        for (int i = from; i + n.length <= hay.length; i++) {
            for (int j = 0; j < n.length; j++) {
                if (hay[i + j] != n[j]) {
                    continue outer;
                }
            }
            return i;
        }
        throw new IllegalArgumentException(needle + " not found");
    }

    static void putI32(byte[] b, int at, int v) {
        for (int i = 0; i < 4; i++) {
            b[at + i] = (byte) (v >>> (8 * i));
        }
    }

    static void putI64(byte[] b, int at, long v) {
        for (int i = 0; i < 8; i++) {
            b[at + i] = (byte) (v >>> (8 * i));
        }
    }

    static long getI64(byte[] b, int at) {
        long v = 0;
        for (int i = 7; i >= 0; i--) {
            v = (v << 8) | (b[at + i] & 0xff);
        }
        return v;
    }

    static Path write(Path dir, String name, byte[] bytes) throws IOException {
        Path p = dir.resolve(name);
        Files.write(p, bytes);
        return p;
    }
}

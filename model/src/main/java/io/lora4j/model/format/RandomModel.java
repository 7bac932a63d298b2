package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;

import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.IntStream;

/**
 * Writes a random-weight Llama GGUF for benchmarks and tests: matrices N(0, 0.02) (Box-Muller over
 * a per-row SplittableRandom, so the output depends only on the seed), norms 1.0 and always F32,
 * token_embd and output in the chosen type (as llama.cpp quantizes them), untied output. A matrix
 * whose rows (ne0) are not a multiple of the type's block size (tiny's ffn_down, ne0 = 172) is
 * written as F16 instead, as llama.cpp's quantizer falls back to a compatible type. Rows are
 * generated in parallel straight into the mapped output file.
 */
public final class RandomModel {
    public static final float STD = 0.02f;

    /** Shapes of known models; {@code tiny} is for tests. */
    public enum Preset {
        TINY(new LlamaConfig(64, 172, 2, 8, 4, 8, 32000, 256, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false)),
        /** stories110M shapes. */
        M110(new LlamaConfig(768, 2048, 12, 12, 12, 64, 32000, 1024, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false)),
        /** TinyLlama-1.1B shapes. */
        B1(new LlamaConfig(2048, 5632, 22, 32, 4, 64, 32000, 2048, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false));

        public final LlamaConfig config;

        Preset(LlamaConfig config) {
            this.config = config;
        }

        /** "tiny", "110m" or "1b". */
        public static Preset of(String name) {
            return switch (name.toLowerCase(java.util.Locale.ROOT)) {
                case "tiny" -> TINY;
                case "110m" -> M110;
                case "1b" -> B1;
                default -> throw new IllegalArgumentException("unknown preset " + name + " (tiny, 110m, 1b)");
            };
        }
    }

    private RandomModel() {
    }

    /** The default tokenizer source: the 32000-token Llama 2 vocabulary inside llama-2-tiny-random.gguf. */
    public static Path defaultTokenizerGguf(Path sharedDir) {
        return sharedDir.resolve("models/llama-2-tiny-random-gguf/llama-2-tiny-random.gguf");
    }

    /** The {@code tokenizer.ggml.*} keys of {@code gguf}, to pass as {@code tokenizerMetadata}. */
    public static Map<String, Object> tokenizerMetadata(Path gguf) {
        try (GgufFile f = GgufFile.open(gguf)) {
            Map<String, Object> m = new LinkedHashMap<>();
            f.metadata().forEach((k, v) -> {
                if (k.startsWith("tokenizer.")) {
                    m.put(k, v);
                }
            });
            return m;
        }
    }

    /**
     * The default tokenizer GGUF: under the directory named by system property {@code lora4j.shared}
     * when set, else {@code ../shared} relative to the working directory.
     */
    public static Path defaultTokenizerGguf() {
        String shared = System.getProperty("lora4j.shared");
        return defaultTokenizerGguf(Path.of(shared != null ? shared : "../shared"));
    }

    /** As {@link #write(Path, Preset, GgmlType, long, Map)} with the Llama 2 vocabulary of {@link #defaultTokenizerGguf()}. */
    public static void write(Path out, Preset preset, GgmlType type, long seed) throws IOException {
        write(out, preset.config, type, seed, tokenizerMetadata(defaultTokenizerGguf()));
    }

    /** Writes {@code preset} with {@code tokenizerMetadata} (e.g. {@link #tokenizerMetadata(Path)}; empty or null for none). */
    public static void write(Path out, Preset preset, GgmlType type, long seed, Map<String, Object> tokenizerMetadata) throws IOException {
        write(out, preset.config, type, seed, tokenizerMetadata);
    }

    public static void write(Path out, LlamaConfig c, GgmlType type, long seed, Map<String, Object> tokenizerMetadata) throws IOException {
        if (type != GgmlType.F32 && type != GgmlType.F16 && type != GgmlType.Q8_0 && type != GgmlType.Q4_0 && type != GgmlType.BF16) {
            throw new IllegalArgumentException("RandomModel writes F32, F16, BF16, Q8_0 or Q4_0, not " + type);
        }
        GgufWriter w = new GgufWriter();
        w.putString("general.architecture", "llama");
        w.putString("general.name", "lora4j random " + c.dim() + "x" + c.nLayers() + " seed " + seed);
        w.putU32("general.file_type", switch (type) {
            case F32 -> 0;
            case F16 -> 1;
            case Q4_0 -> 2;
            case Q8_0 -> 7;
            default -> 32; // BF16
        });
        w.putU32("llama.context_length", c.contextLength());
        w.putU32("llama.embedding_length", c.dim());
        w.putU32("llama.block_count", c.nLayers());
        w.putU32("llama.feed_forward_length", c.hiddenDim());
        w.putU32("llama.rope.dimension_count", c.headSize());
        w.putU32("llama.attention.head_count", c.nHeads());
        w.putU32("llama.attention.head_count_kv", c.nKvHeads());
        if (c.headSize() != c.dim() / c.nHeads()) {
            w.putU32("llama.attention.key_length", c.headSize());
            w.putU32("llama.attention.value_length", c.headSize());
        }
        w.putF32("llama.attention.layer_norm_rms_epsilon", c.rmsEps());
        w.putF32("llama.rope.freq_base", c.ropeTheta());
        if (tokenizerMetadata != null) {
            tokenizerMetadata.forEach(w::put);
        }
        long dim = c.dim();
        long[] salt = {0};
        matrix(w, "token_embd.weight", type, dim, c.vocabSize(), seed, salt[0]++);
        vector(w, "output_norm.weight", dim);
        if (!c.tiedEmbeddings()) {
            matrix(w, "output.weight", type, dim, c.vocabSize(), seed, salt[0]++);
        }
        for (int l = 0; l < c.nLayers(); l++) {
            String p = "blk." + l + ".";
            vector(w, p + "attn_norm.weight", dim);
            matrix(w, p + "attn_q.weight", type, dim, c.qDim(), seed, salt[0]++);
            matrix(w, p + "attn_k.weight", type, dim, c.kvDim(), seed, salt[0]++);
            matrix(w, p + "attn_v.weight", type, dim, c.kvDim(), seed, salt[0]++);
            matrix(w, p + "attn_output.weight", type, c.qDim(), dim, seed, salt[0]++);
            vector(w, p + "ffn_norm.weight", dim);
            matrix(w, p + "ffn_gate.weight", type, dim, c.hiddenDim(), seed, salt[0]++);
            matrix(w, p + "ffn_down.weight", type, c.hiddenDim(), dim, seed, salt[0]++);
            matrix(w, p + "ffn_up.weight", type, dim, c.hiddenDim(), seed, salt[0]++);
        }
        w.write(out);
    }

    private static void vector(GgufWriter w, String name, long n) {
        w.addTensor(name, GgmlType.F32, new long[]{n}, dst -> {
            for (long i = 0; i < n; i++) {
                dst.setAtIndex(Mapped.F32, i, 1.0f);
            }
        });
    }

    /** A [cols, rows] (ggml order) matrix; row r is N(0, STD) from SplittableRandom(mix(seed, salt, r)). */
    private static void matrix(GgufWriter w, String name, GgmlType wanted, long cols, long rows, long seed, long salt) {
        GgmlType type = cols % wanted.blockSize == 0 ? wanted : GgmlType.F16; // e.g. tiny's ffn_down (ne0 = 172)
        long rowBytes = type.byteSize(cols);
        w.addTensor(name, type, new long[]{cols, rows}, dst -> IntStream.range(0, (int) rows).parallel().forEach(r -> {
            float[] row = new float[(int) cols]; // (cols,) one row, allocated per row outside the element loop
            gaussianRow(row, new SplittableRandom(seed * 0x9E3779B97F4A7C15L + salt * 0xC2B2AE3D27D4EB4FL + r));
            Quantizer.quantizeRow(type, dst, r * rowBytes, row, 0, (int) cols);
        }));
    }

    /** Fills {@code out} with N(0, STD) by Box-Muller (two values per pair of uniforms). */
    static void gaussianRow(float[] out, SplittableRandom rng) {
        int n = out.length;
        for (int i = 0; i < n; i += 2) {
            double u1 = 1.0 - rng.nextDouble(); // (0, 1]
            double u2 = rng.nextDouble();
            double rad = STD * Math.sqrt(-2.0 * Math.log(u1));
            double ang = 2.0 * Math.PI * u2;
            out[i] = (float) (rad * Math.cos(ang));
            if (i + 1 < n) {
                out[i + 1] = (float) (rad * Math.sin(ang));
            }
        }
    }
}

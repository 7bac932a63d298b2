package io.lora4j.model;

import io.lora4j.model.arch.Layer;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.ArrowModel;
import io.lora4j.model.format.ArrowModelWriter;
import io.lora4j.model.format.DurableFiles;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.GgufWriter;
import io.lora4j.model.format.Quantizer;
import io.lora4j.model.format.SafetensorsWriter;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import java.util.function.Consumer;

/**
 * Writes a model with its merged adapters (see {@link Llama#merge}) as a new file: GGUF (from a
 * GGUF base: metadata and untouched tensors copied byte for byte, merged matrices in F32 or F16,
 * or in their ggml type when requantized to one; matrices quantized on load are written decoded)
 * or a Hugging Face directory (config.json + model.safetensors in F32/F16, Q and K rows in HF's
 * rotate-half order). Every file is written durably ({@link DurableFiles}).
 */
public final class MergedExport {
    private MergedExport() {
    }

    /** A tensor whose weight the model now holds in memory (merged, or a trained lm_head), in ggml {@code shape}. */
    private interface Changed {
        void add(String name, Weight current, long[] shape);
    }

    /**
     * The source's tensors in order, each either {@code unchanged} or {@code changed} (the model's
     * current weight differs), then {@code output.weight} when a tied model's lm_head was trained in
     * full and so needs its own output matrix now.
     */
    private static void forEachTensor(Llama m, Consumer<TensorInfo> unchanged, Changed changed) {
        boolean headAdded = false;
        for (TensorInfo t : m.source().tensors().values()) {
            Weight cur = m.weight(t.name());
            if (cur == null || cur.data() == t.data()) {
                unchanged.accept(t);
            } else {
                changed.add(t.name(), cur, t.shape());
            }
            headAdded |= t.name().equals("output.weight");
        }
        if (!headAdded && m.baseOutput() != m.tokenEmbedding()) {
            Weight head = m.baseOutput();
            changed.add("output.weight", head, new long[]{head.cols(), head.rows()});
        }
    }

    /**
     * GGUF with the merged weights ({@code type} F32 or F16 for the merged matrices), from a GGUF base
     * or an Arrow model converted from one (it holds all of the GGUF's metadata, with their types).
     */
    public static void writeGguf(Llama m, Path out, GgmlType type) throws IOException {
        WeightSource src = m.source();
        boolean ggufMetadata = src instanceof GgufFile || src instanceof ArrowModel a && a.metadata().containsKey("tokenizer.ggml.tokens");
        if (!ggufMetadata) {
            throw new IllegalArgumentException("GGUF export needs the GGUF metadata and tokenizer of the base, which "
                    + src.path() + " (" + (src instanceof ArrowModel a ? "Arrow, converted from " + a.sourceFormat() : src.format())
                    + ") does not have; export it as a Hugging Face directory instead");
        }
        if (type != GgmlType.F32 && type != GgmlType.F16) {
            throw new IllegalArgumentException("merged matrices are written as F32 or F16, not " + type);
        }
        GgufWriter w = new GgufWriter();
        w.copyMetadata(src, "");
        w.putString("general.name", m.source().metadata().getOrDefault("general.name", "llama") + " + merged LoRA "
                + String.join(",", m.mergedAdapters()));
        forEachTensor(m, w::addTensor, (name, cur, shape) -> add(w, name, cur, type, shape));
        w.write(out);
    }

    /**
     * One Arrow IPC file (see {@link ArrowModel}) with the model as it currently is: untouched
     * tensors copied byte for byte in their own type (quantized blocks included), merged matrices
     * as F32, the config and metadata of the source, and its tokenizer: {@code tokenizer} when given
     * (a .gguf contributes its tokenizer.* keys, any other file is embedded with its
     * tokenizer_config.json), else the source's own (GGUF metadata, an Arrow file's embedded one, or
     * {@link LoadedModel#tokenizerFile}). Returns the embedded tokenizer's path, or null when the
     * tokenizer travels in the metadata or none was found.
     */
    public static Path writeArrow(Llama m, Path tokenizer, Path out) throws IOException {
        WeightSource src = m.source();
        ArrowModelWriter w = new ArrowModelWriter().describe(src);
        if (!m.mergedAdapters().isEmpty()) {
            w.putMetadata("general.name", "string", src.metadata().getOrDefault("general.name", "llama")
                    + " + merged LoRA " + String.join(",", m.mergedAdapters()));
        }
        Path tok = tokenizer;
        boolean inMetadata = src.metadata().containsKey("tokenizer.ggml.tokens");
        if (tok == null && src instanceof ArrowModel a && a.embeddedTokenizer() != null) {
            ArrowModel.EmbeddedTokenizer e = a.embeddedTokenizer();
            w.tokenizer(e.fileName(), e.data(), e.config());
        } else if (tok == null && !inMetadata) {
            tok = LoadedModel.tokenizerFile(src);
        }
        if (tok != null && tok.getFileName().toString().endsWith(".gguf")) {
            try (GgufFile g = GgufFile.open(tok)) {
                w.removeMetadata("tokenizer.").addMetadataOf(g, "tokenizer.");
            }
            tok = null;
        } else if (tok != null) {
            Path cfg = tok.resolveSibling("tokenizer_config.json");
            boolean json = tok.getFileName().toString().endsWith(".json");
            w.tokenizer(tok.getFileName().toString(), read(tok), json && Files.isRegularFile(cfg) ? read(cfg) : null);
        }
        forEachTensor(m, w::addTensor, (name, cur, shape) -> {
            if (cur.type().ggml) {
                w.addTensor(name, cur.type(), shape, cur.data());
            } else { // quantized on load (int8, NF4, …): stored decoded, as the GGUF export does
                w.addTensor(name, GgmlType.F32, shape, MemorySegment.ofArray(io.lora4j.kernels.Dequant.matrix(cur)));
            }
        });
        w.write(out);
        return tok;
    }

    private static byte[] read(Path p) {
        try {
            return Files.readAllBytes(p);
        } catch (IOException e) {
            throw new ModelFormatException(p, "cannot read: " + e.getMessage(), e);
        }
    }

    /** A merged matrix: requantized to a ggml type, its bytes as they are; else decoded and written as {@code type}. */
    private static void add(GgufWriter w, String name, Weight cur, GgmlType type, long[] shape) {
        if (cur.type().ggml && cur.type().isQuantized()) {
            w.addTensor(name, cur.type(), shape, cur.data());
            return;
        }
        int cols = cur.cols();
        w.addTensor(name, type, shape, dst -> {
            float[] row = new float[cols];
            for (int r = 0; r < cur.rows(); r++) {
                Dequant.row(cur, r, row, 0);
                Quantizer.quantizeRow(type, dst, r * type.byteSize(cols), row, 0, cols);
            }
        });
    }

    /** A Hugging Face model directory: config.json and model.safetensors (F32 or F16). */
    public static void writeHf(Llama m, Path dir, GgmlType type) throws IOException {
        if (type != GgmlType.F32 && type != GgmlType.F16) {
            throw new IllegalArgumentException("Hugging Face export writes F32 or F16, not " + type);
        }
        Files.createDirectories(dir);
        LlamaConfig c = m.config();
        boolean permute = c.ropeStyle() == LlamaConfig.RopeStyle.ADJACENT;
        SafetensorsWriter st = new SafetensorsWriter();
        st.add("model.embed_tokens.weight", type, new long[]{c.vocabSize(), c.dim()}, fill(m.tokenEmbedding(), type, 0));
        for (int l = 0; l < c.nLayers(); l++) {
            Layer w = m.layer(l);
            String p = "model.layers." + l + ".";
            st.add(p + "input_layernorm.weight", type, new long[]{c.dim()}, vector(w.attnNorm(), type));
            st.add(p + "self_attn.q_proj.weight", type, new long[]{c.qDim(), c.dim()}, fill(w.wq(), type, permute ? c.nHeads() : 0));
            st.add(p + "self_attn.k_proj.weight", type, new long[]{c.kvDim(), c.dim()}, fill(w.wk(), type, permute ? c.nKvHeads() : 0));
            st.add(p + "self_attn.v_proj.weight", type, new long[]{c.kvDim(), c.dim()}, fill(w.wv(), type, 0));
            st.add(p + "self_attn.o_proj.weight", type, new long[]{c.dim(), c.qDim()}, fill(w.wo(), type, 0));
            st.add(p + "post_attention_layernorm.weight", type, new long[]{c.dim()}, vector(w.ffnNorm(), type));
            st.add(p + "mlp.gate_proj.weight", type, new long[]{c.hiddenDim(), c.dim()}, fill(w.gate(), type, 0));
            st.add(p + "mlp.up_proj.weight", type, new long[]{c.hiddenDim(), c.dim()}, fill(w.up(), type, 0));
            st.add(p + "mlp.down_proj.weight", type, new long[]{c.dim(), c.hiddenDim()}, fill(w.down(), type, 0));
        }
        st.add("model.norm.weight", type, new long[]{c.dim()}, vector(m.outputNorm(), type));
        boolean tied = m.baseOutput() == m.tokenEmbedding();
        if (!tied) {
            st.add("lm_head.weight", type, new long[]{c.vocabSize(), c.dim()}, fill(m.baseOutput(), type, 0));
        }
        st.write(dir.resolve("model.safetensors"));
        String cfg = String.format(Locale.ROOT, """
                {
                  "architectures": ["LlamaForCausalLM"],
                  "model_type": "llama",
                  "hidden_size": %d,
                  "intermediate_size": %d,
                  "num_hidden_layers": %d,
                  "num_attention_heads": %d,
                  "num_key_value_heads": %d,
                  "head_dim": %d,
                  "vocab_size": %d,
                  "max_position_embeddings": %d,
                  "rms_norm_eps": %s,
                  "rope_theta": %s,
                  "tie_word_embeddings": %b,
                  "torch_dtype": "%s"
                }
                """, c.dim(), c.hiddenDim(), c.nLayers(), c.nHeads(), c.nKvHeads(), c.headSize(), c.vocabSize(),
                c.contextLength(), Float.toString(c.rmsEps()), Float.toString(c.ropeTheta()), tied,
                type == GgmlType.F32 ? "float32" : "float16");
        DurableFiles.writeString(dir.resolve("config.json"), cfg);
    }

    /** Rows of w as {@code type}, Q/K rows moved from adjacent-pair to rotate-half order when {@code heads > 0}. */
    private static GgufWriter.TensorFill fill(Weight w, GgmlType type, int heads) {
        return dst -> {
            int cols = w.cols();
            int hs = heads > 0 ? w.rows() / heads : 0;
            float[] row = new float[cols];
            for (int r = 0; r < w.rows(); r++) {
                Dequant.row(w, r, row, 0);
                int to = r;
                if (heads > 0) {
                    int h = r / hs, k = r % hs;
                    to = h * hs + (k % 2) * (hs / 2) + k / 2; // adjacent row 2i+e → half e, index i
                }
                Quantizer.quantizeRow(type, dst, to * type.byteSize(cols), row, 0, cols);
            }
        };
    }

    private static GgufWriter.TensorFill vector(float[] v, GgmlType type) {
        return dst -> Quantizer.quantizeRow(type, dst, 0, v, 0, v.length);
    }

}

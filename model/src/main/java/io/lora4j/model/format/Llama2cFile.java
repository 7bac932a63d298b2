package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A llama2.c checkpoint ({@code run.c} legacy version 0): 7 int32 (dim C, hidden H, layers L,
 * heads NH, kv heads NKV, vocab V — negative when a separate classifier follows —, seq_len T),
 * then f32 arrays token_embedding[V*C], rms_att[L*C], wq[L*C*C], wk[L*KV*C], wv[L*KV*C],
 * wo[L*C*C], rms_ffn[L*C], w1[L*H*C], w2[L*C*H], w3[L*H*C], rms_final[C],
 * freq_cis_real[T*HS/2], freq_cis_imag[T*HS/2], and wcls[V*C] only when V was negative.
 * KV = NKV*HS, HS = C/NH. Matrices are row-major [out][in], i.e. ggml shape [in, out].
 */
public final class Llama2cFile implements WeightSource {
    private static final int HEADER_BYTES = 7 * 4;

    private final Path path;
    private final Arena arena;
    private final Map<String, Object> metadata;
    private final Map<String, TensorInfo> tensors;
    private final LlamaConfig config;

    private Llama2cFile(Path path, Arena arena, Map<String, Object> metadata, Map<String, TensorInfo> tensors, LlamaConfig config) {
        this.path = path;
        this.arena = arena;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.config = config;
    }

    public static Llama2cFile open(Path file) {
        Arena arena = Arena.ofShared();
        try {
            return parse(file, arena, Mapped.map(file, arena));
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    /** Parses {@code seg} (the bytes of {@code file}, which errors name); the result keeps {@code arena} and closes it. */
    static Llama2cFile parse(Path file, Arena arena, MemorySegment seg) {
        if (seg.byteSize() < HEADER_BYTES) {
            throw new ModelFormatException(file, "llama2.c checkpoint too short: " + seg.byteSize() + " bytes, the header alone is 28");
        }
        int dim = seg.get(Mapped.I32, 0);
        int hidden = seg.get(Mapped.I32, 4);
        int layers = seg.get(Mapped.I32, 8);
        int heads = seg.get(Mapped.I32, 12);
        int kvHeads = seg.get(Mapped.I32, 16);
        int vocabRaw = seg.get(Mapped.I32, 20);
        int seqLen = seg.get(Mapped.I32, 24);
        boolean shared = vocabRaw > 0;
        int vocab = Math.abs(vocabRaw);
        String header = "header dim=" + dim + " hidden_dim=" + hidden + " n_layers=" + layers + " n_heads=" + heads
                + " n_kv_heads=" + kvHeads + " vocab_size=" + vocabRaw + " seq_len=" + seqLen;
        if (dim <= 0 || hidden <= 0 || layers <= 0 || heads <= 0 || kvHeads <= 0 || vocab == 0 || vocabRaw == Integer.MIN_VALUE
                || seqLen <= 0 || dim % heads != 0 || heads % kvHeads != 0 || (dim / heads) % 2 != 0) {
            throw new ModelFormatException(file, "invalid llama2.c " + header);
        }
        long hs = dim / heads;
        long kv = kvHeads * hs;
        long c = dim;
        long h = hidden;
        long l = layers;
        long floats = vocab * c + l * c + l * c * c + 2 * l * kv * c + l * c * c + l * c + 3 * l * h * c + c
                + (long) seqLen * hs + (shared ? 0 : vocab * c);
        long expected = HEADER_BYTES + 4 * floats;
        if (seg.byteSize() != expected) {
            throw new ModelFormatException(file, "llama2.c checkpoint has " + seg.byteSize() + " bytes but its " + header
                    + " implies " + expected + " bytes (wrong file, truncated, or a newer llama2.c version)");
        }
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        long[] pos = {HEADER_BYTES};
        slice(seg, tensors, pos, "token_embd.weight", c, vocab);
        long[] rmsAtt = pos.clone();
        pos[0] += 4 * l * c;
        long wq = pos[0];
        long wk = wq + 4 * l * c * c;
        long wv = wk + 4 * l * kv * c;
        long wo = wv + 4 * l * kv * c;
        long rmsFfn = wo + 4 * l * c * c;
        long w1 = rmsFfn + 4 * l * c;
        long w2 = w1 + 4 * l * h * c;
        long w3 = w2 + 4 * l * c * h;
        long rmsFinal = w3 + 4 * l * h * c;
        long freq = rmsFinal + 4 * c;
        long wcls = freq + 4 * (long) seqLen * hs;
        for (int i = 0; i < layers; i++) {
            String p = "blk." + i + ".";
            put(seg, tensors, p + "attn_norm.weight", rmsAtt[0] + 4 * i * c, c);
            put(seg, tensors, p + "attn_q.weight", wq + 4 * i * c * c, c, c);
            put(seg, tensors, p + "attn_k.weight", wk + 4 * i * kv * c, c, kv);
            put(seg, tensors, p + "attn_v.weight", wv + 4 * i * kv * c, c, kv);
            put(seg, tensors, p + "attn_output.weight", wo + 4 * i * c * c, c, c);
            put(seg, tensors, p + "ffn_norm.weight", rmsFfn + 4 * i * c, c);
            put(seg, tensors, p + "ffn_gate.weight", w1 + 4 * i * h * c, c, h);
            put(seg, tensors, p + "ffn_down.weight", w2 + 4 * i * c * h, h, c);
            put(seg, tensors, p + "ffn_up.weight", w3 + 4 * i * h * c, c, h);
        }
        put(seg, tensors, "output_norm.weight", rmsFinal, c);
        if (!shared) {
            put(seg, tensors, "output.weight", wcls, c, vocab);
        }
        Map<String, Object> md = new LinkedHashMap<>();
        md.put("general.architecture", "llama");
        md.put("llama.embedding_length", c);
        md.put("llama.feed_forward_length", h);
        md.put("llama.block_count", l);
        md.put("llama.attention.head_count", (long) heads);
        md.put("llama.attention.head_count_kv", (long) kvHeads);
        md.put("llama.context_length", (long) seqLen);
        md.put("llama.attention.layer_norm_rms_epsilon", 1e-5f);
        md.put("llama.rope.freq_base", 10000f);
        LlamaConfig cfg = new LlamaConfig(dim, hidden, layers, heads, kvHeads, (int) hs, vocab, seqLen, 1e-5f, 10000f,
                null, LlamaConfig.RopeStyle.ADJACENT, shared);
        return new Llama2cFile(file, arena, md, tensors, cfg);
    }

    private static void slice(MemorySegment seg, Map<String, TensorInfo> tensors, long[] pos, String name, long... shape) {
        put(seg, tensors, name, pos[0], shape);
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        pos[0] += 4 * n;
    }

    private static void put(MemorySegment seg, Map<String, TensorInfo> tensors, String name, long offset, long... shape) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        tensors.put(name, new TensorInfo(name, GgmlType.F32, shape, seg.asSlice(offset, 4 * n)));
    }

    @Override
    public Path path() {
        return path;
    }

    @Override
    public String format() {
        return "llama2c";
    }

    /** GGUF-style llama keys describing the header (integers as Long, floats as Float). */
    @Override
    public Map<String, Object> metadata() {
        return metadata;
    }

    @Override
    public Map<String, TensorInfo> tensors() {
        return tensors;
    }

    @Override
    public LlamaConfig config() {
        return config;
    }

    @Override
    public void close() {
        if (arena.scope().isAlive()) {
            arena.close();
        }
    }
}

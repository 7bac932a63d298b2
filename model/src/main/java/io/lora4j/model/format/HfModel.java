package io.lora4j.model.format;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lora4j.model.arch.LlamaConfig;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * A HuggingFace Llama model directory: {@code config.json} plus {@code model.safetensors} or a
 * sharded {@code model.safetensors.index.json}. Tensors are renamed to canonical GGUF names and
 * their shapes given in ggml order; bytes stay in the mapped shards. HF's q/k projections are not
 * permuted, so the config says {@link LlamaConfig.RopeStyle#HALVES}.
 */
public final class HfModel implements WeightSource {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final Pattern LAYER = Pattern.compile("model\\.layers\\.(\\d+)\\.(.+)");

    private final Path dir;
    private final Arena arena;
    private final Map<String, Object> metadata;
    private final Map<String, TensorInfo> tensors;
    private final LlamaConfig config;

    private HfModel(Path dir, Arena arena, Map<String, Object> metadata, Map<String, TensorInfo> tensors, LlamaConfig config) {
        this.dir = dir;
        this.arena = arena;
        this.metadata = Collections.unmodifiableMap(metadata);
        this.tensors = Collections.unmodifiableMap(tensors);
        this.config = config;
    }

    public static HfModel open(Path dir) {
        if (!Files.isDirectory(dir)) {
            throw new ModelFormatException(dir, Files.exists(dir) ? "not a directory" : "no such file");
        }
        Path cfgPath = dir.resolve("config.json");
        JsonNode cfg = readJson(cfgPath);
        Arena arena = Arena.ofShared();
        try {
            Map<String, Object> metadata = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = cfg.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> e = it.next();
                metadata.put(e.getKey(), toJava(e.getValue()));
            }
            Map<String, TensorInfo> tensors = new LinkedHashMap<>();
            Path single = dir.resolve("model.safetensors");
            Path index = dir.resolve("model.safetensors.index.json");
            if (Files.exists(single)) {
                SafetensorsFile f = SafetensorsFile.open(single, arena, false);
                f.metadata().forEach((k, v) -> metadata.put("safetensors." + k, v));
                for (TensorInfo t : f.tensors().values()) {
                    add(single, tensors, t);
                }
            } else if (Files.exists(index)) {
                JsonNode idx = readJson(index);
                JsonNode map = idx.get("weight_map");
                if (map == null || !map.isObject()) {
                    throw new ModelFormatException(index, "missing or invalid key weight_map");
                }
                Map<String, SafetensorsFile> shards = new LinkedHashMap<>();
                for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
                    Map.Entry<String, JsonNode> e = it.next();
                    String shardName = e.getValue().asText();
                    Path shardPath = dir.resolve(shardName);
                    if (!shardPath.normalize().startsWith(dir.normalize())) {
                        throw new ModelFormatException(index, "weight_map entry " + e.getKey() + " points outside the directory: " + shardName);
                    }
                    SafetensorsFile shard = shards.computeIfAbsent(shardName, s -> SafetensorsFile.open(shardPath, arena, false));
                    TensorInfo t = shard.tensors().get(e.getKey());
                    if (t == null) {
                        throw new ModelFormatException(shardPath, "tensor " + e.getKey() + " listed in " + index.getFileName() + " is missing from the shard");
                    }
                    add(shardPath, tensors, t);
                }
                shards.values().stream().findFirst().ifPresent(s -> s.metadata().forEach((k, v) -> metadata.put("safetensors." + k, v)));
            } else {
                throw new ModelFormatException(dir, "no model.safetensors or model.safetensors.index.json in the directory");
            }
            HfModel m = new HfModel(dir, arena, metadata, tensors, null);
            LlamaConfig c = buildConfig(cfgPath, cfg, tensors);
            m = new HfModel(dir, arena, metadata, tensors, c);
            LlamaShapes.check(m, c);
            return m;
        } catch (RuntimeException e) {
            arena.close();
            throw e;
        }
    }

    private static void add(Path file, Map<String, TensorInfo> tensors, TensorInfo t) {
        String name = canonicalName(t.name());
        if (tensors.containsKey(name)) {
            throw new ModelFormatException(file, "duplicate tensor " + t.name() + " (as " + name + ")");
        }
        tensors.put(name, new TensorInfo(name, t.type(), t.shape(), t.data()));
    }

    /** HF Llama tensor name → GGUF name; names it does not know are returned unchanged. */
    public static String canonicalName(String hf) {
        switch (hf) {
            case "model.embed_tokens.weight":
                return "token_embd.weight";
            case "model.norm.weight":
                return "output_norm.weight";
            case "lm_head.weight":
                return "output.weight";
            default:
                break;
        }
        Matcher m = LAYER.matcher(hf);
        if (!m.matches()) {
            return hf;
        }
        String rest = switch (m.group(2)) {
            case "self_attn.q_proj.weight" -> "attn_q.weight";
            case "self_attn.k_proj.weight" -> "attn_k.weight";
            case "self_attn.v_proj.weight" -> "attn_v.weight";
            case "self_attn.o_proj.weight" -> "attn_output.weight";
            case "input_layernorm.weight" -> "attn_norm.weight";
            case "post_attention_layernorm.weight" -> "ffn_norm.weight";
            case "mlp.gate_proj.weight" -> "ffn_gate.weight";
            case "mlp.up_proj.weight" -> "ffn_up.weight";
            case "mlp.down_proj.weight" -> "ffn_down.weight";
            default -> null;
        };
        return rest == null ? hf : "blk." + m.group(1) + "." + rest;
    }

    static JsonNode readJson(Path file) {
        if (!Files.exists(file)) {
            throw new ModelFormatException(file, "no such file");
        }
        try {
            JsonNode n = JSON.readTree(Files.readString(file));
            if (n == null || !n.isObject()) {
                throw new ModelFormatException(file, "not a JSON object");
            }
            return n;
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(file, "invalid JSON: " + e.getOriginalMessage(), e);
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage(), e);
        }
    }

    private static Object toJava(JsonNode n) {
        if (n.isIntegralNumber()) {
            return n.asLong();
        }
        if (n.isNumber()) {
            return n.asDouble();
        }
        if (n.isBoolean()) {
            return n.asBoolean();
        }
        if (n.isTextual()) {
            return n.textValue();
        }
        if (n.isNull()) {
            return "null";
        }
        return n.toString();
    }

    private static LlamaConfig buildConfig(Path file, JsonNode cfg, Map<String, TensorInfo> tensors) {
        int dim = intKey(file, cfg, "hidden_size", null);
        int hidden = intKey(file, cfg, "intermediate_size", null);
        int layers = intKey(file, cfg, "num_hidden_layers", null);
        int heads = intKey(file, cfg, "num_attention_heads", null);
        int kvHeads = intKey(file, cfg, "num_key_value_heads", heads);
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) {
            throw new ModelFormatException(file, "num_key_value_heads " + kvHeads + " must divide num_attention_heads " + heads);
        }
        int headSize = intKey(file, cfg, "head_dim", dim / heads);
        int vocab = intKey(file, cfg, "vocab_size", null);
        int ctx = intKey(file, cfg, "max_position_embeddings", null);
        float eps = floatKey(file, cfg, "rms_norm_eps", 1e-6f);
        float theta = floatKey(file, cfg, "rope_theta", 10000f);
        LlamaConfig.RopeScaling scaling = null;
        JsonNode rs = cfg.get("rope_scaling");
        if (rs != null && !rs.isNull()) {
            String type = rs.has("rope_type") ? rs.get("rope_type").asText() : rs.path("type").asText("");
            if (!type.equals("llama3")) {
                throw new ModelFormatException(file, "rope_scaling type \"" + type + "\" is not supported (only llama3)");
            }
            scaling = new LlamaConfig.RopeScaling(
                    floatKey(file, rs, "factor", null), floatKey(file, rs, "low_freq_factor", null),
                    floatKey(file, rs, "high_freq_factor", null), intKey(file, rs, "original_max_position_embeddings", null));
        }
        boolean tied = cfg.path("tie_word_embeddings").asBoolean(false) || !tensors.containsKey("output.weight");
        return new LlamaConfig(dim, hidden, layers, heads, kvHeads, headSize, vocab, ctx, eps, theta, scaling,
                LlamaConfig.RopeStyle.HALVES, tied);
    }

    private static int intKey(Path file, JsonNode cfg, String key, Integer dflt) {
        JsonNode v = cfg.get(key);
        if (v == null || v.isNull()) {
            if (dflt != null) {
                return dflt;
            }
            throw new ModelFormatException(file, "missing key " + key);
        }
        if (!v.isIntegralNumber() || v.asLong() < 0 || v.asLong() > Integer.MAX_VALUE) {
            throw new ModelFormatException(file, "key " + key + " should be a non-negative integer, found " + v);
        }
        return v.asInt();
    }

    private static float floatKey(Path file, JsonNode cfg, String key, Float dflt) {
        JsonNode v = cfg.get(key);
        if (v == null || v.isNull()) {
            if (dflt != null) {
                return dflt;
            }
            throw new ModelFormatException(file, "missing key " + key);
        }
        if (!v.isNumber()) {
            throw new ModelFormatException(file, "key " + key + " should be a number, found " + v);
        }
        return (float) v.asDouble();
    }

    @Override
    public Path path() {
        return dir;
    }

    @Override
    public String format() {
        return "safetensors";
    }

    /** config.json's top-level values (integers Long, reals Double, objects as JSON text) and "safetensors.*" header metadata. */
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

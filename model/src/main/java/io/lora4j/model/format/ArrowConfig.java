package io.lora4j.model.format;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.model.arch.LlamaConfig;

import java.nio.file.Path;
import java.util.Locale;

/**
 * {@link LlamaConfig} as the JSON of an Arrow model's {@code lora4j.config}, with Hugging Face
 * config.json names (hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
 * num_key_value_heads, head_dim, vocab_size, max_position_embeddings, rms_norm_eps, rope_theta,
 * rope_scaling {rope_type "llama3", factor, low_freq_factor, high_freq_factor,
 * original_max_position_embeddings}, tie_word_embeddings) plus {@code rope_style}: "adjacent" when
 * Q/K rows are in GGUF's interleaved-pair order, "halves" when in Hugging Face's rotate-half order.
 */
final class ArrowConfig {
    private ArrowConfig() {
    }

    static String toJson(LlamaConfig c) {
        ObjectNode o = MetadataJson.JSON.createObjectNode();
        o.put("architectures", "LlamaForCausalLM");
        o.put("hidden_size", c.dim());
        o.put("intermediate_size", c.hiddenDim());
        o.put("num_hidden_layers", c.nLayers());
        o.put("num_attention_heads", c.nHeads());
        o.put("num_key_value_heads", c.nKvHeads());
        o.put("head_dim", c.headSize());
        o.put("vocab_size", c.vocabSize());
        o.put("max_position_embeddings", c.contextLength());
        o.put("rms_norm_eps", c.rmsEps());
        o.put("rope_theta", c.ropeTheta());
        if (c.ropeScaling() != null) {
            ObjectNode r = o.putObject("rope_scaling");
            r.put("rope_type", "llama3");
            r.put("factor", c.ropeScaling().factor());
            r.put("low_freq_factor", c.ropeScaling().lowFreqFactor());
            r.put("high_freq_factor", c.ropeScaling().highFreqFactor());
            r.put("original_max_position_embeddings", c.ropeScaling().originalContextLength());
        }
        o.put("rope_style", c.ropeStyle().name().toLowerCase(Locale.ROOT));
        o.put("tie_word_embeddings", c.tiedEmbeddings());
        try {
            return MetadataJson.JSON.writeValueAsString(o);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    static LlamaConfig fromJson(Path file, String json) {
        if (json == null) {
            throw new ModelFormatException(file, "schema metadata has no lora4j.config (the model's hyper-parameters)");
        }
        ObjectNode o = MetadataJson.parseObject(file, "lora4j.config", json);
        LlamaConfig.RopeScaling scaling = null;
        JsonNode rs = o.get("rope_scaling");
        if (rs != null && !rs.isNull()) {
            if (!"llama3".equals(rs.path("rope_type").asText())) {
                throw new ModelFormatException(file, "lora4j.config: rope_scaling type \"" + rs.path("rope_type").asText() + "\" is not supported (only llama3)");
            }
            scaling = new LlamaConfig.RopeScaling(real(file, rs, "factor"), real(file, rs, "low_freq_factor"),
                    real(file, rs, "high_freq_factor"), integer(file, rs, "original_max_position_embeddings"));
        }
        String style = o.path("rope_style").asText("");
        LlamaConfig.RopeStyle rope = switch (style) {
            case "adjacent" -> LlamaConfig.RopeStyle.ADJACENT;
            case "halves" -> LlamaConfig.RopeStyle.HALVES;
            default -> throw new ModelFormatException(file, "lora4j.config: rope_style must be \"adjacent\" or \"halves\", found \"" + style + "\"");
        };
        JsonNode tied = o.get("tie_word_embeddings");
        if (tied == null || !tied.isBoolean()) {
            throw new ModelFormatException(file, "lora4j.config: tie_word_embeddings must be true or false");
        }
        int dim = integer(file, o, "hidden_size");
        int heads = integer(file, o, "num_attention_heads");
        int kvHeads = integer(file, o, "num_key_value_heads");
        if (heads <= 0 || kvHeads <= 0 || heads % kvHeads != 0) {
            throw new ModelFormatException(file, "lora4j.config: num_key_value_heads " + kvHeads + " must divide num_attention_heads " + heads);
        }
        return new LlamaConfig(dim, integer(file, o, "intermediate_size"), integer(file, o, "num_hidden_layers"), heads, kvHeads,
                integer(file, o, "head_dim"), integer(file, o, "vocab_size"), integer(file, o, "max_position_embeddings"),
                real(file, o, "rms_norm_eps"), real(file, o, "rope_theta"), scaling, rope, tied.booleanValue());
    }

    private static int integer(Path file, JsonNode o, String key) {
        JsonNode v = o.get(key);
        if (v == null || !v.isIntegralNumber() || v.asLong() <= 0 || v.asLong() > Integer.MAX_VALUE) {
            throw new ModelFormatException(file, "lora4j.config: " + key + " should be a positive integer, found " + v);
        }
        return v.asInt();
    }

    private static float real(Path file, JsonNode o, String key) {
        JsonNode v = o.get(key);
        if (v == null || !v.isNumber()) {
            throw new ModelFormatException(file, "lora4j.config: " + key + " should be a number, found " + v);
        }
        return Float.parseFloat(v.asText());
    }
}

package io.lora4j.model.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.model.Llama;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.SafetensorsWriter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Consumer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AdapterHub's files for a bottleneck adapter: names, shapes and config keys as adapters' save_adapter writes them; bad input. */
class BottleneckAdaptersTest {

    static Llama model() {
        return new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 3, false));
    }

    static LoraAdapter adapter(Llama m) {
        return new LoraAdapter("bn", new BottleneckConfig(true, true, 4, Map.of(1, 8.0), "relu", "houlsby", 0.5f, List.of(), 0f), m, 5);
    }

    @Test
    void saveThenLoadIsBitwiseIdenticalUnderAdapterHubNames(@TempDir Path dir) throws Exception {
        Llama m = model();
        LoraAdapter a = adapter(m);
        PeftAdapters.save(a, m, dir); // dispatches on the adapter's kind
        assertTrue(Files.isRegularFile(dir.resolve("adapter_config.json")));
        assertTrue(Files.isRegularFile(dir.resolve("adapter.safetensors")));
        assertTrue(!Files.exists(dir.resolve(PeftAdapters.WEIGHTS)));
        try (SafetensorsFile st = SafetensorsFile.open(dir.resolve("adapter.safetensors"))) {
            assertEquals(16, st.tensors().size(), "2 layers × 2 sublayers × 4 tensors");
            assertArrayEquals(new long[]{4, 16}, st.fileShape("model.layers.0.attention_adapters.adapters.bn.adapter_down.0.weight"));
            assertArrayEquals(new long[]{4}, st.fileShape("model.layers.0.attention_adapters.adapters.bn.adapter_down.0.bias"));
            assertArrayEquals(new long[]{16, 4}, st.fileShape("model.layers.0.output_adapters.adapters.bn.adapter_up.weight"));
            assertArrayEquals(new long[]{16}, st.fileShape("model.layers.0.output_adapters.adapters.bn.adapter_up.bias"));
            assertArrayEquals(new long[]{2, 16}, st.fileShape("model.layers.1.output_adapters.adapters.bn.adapter_down.0.weight"));
        }
        JsonNode cfg = new ObjectMapper().readTree(dir.resolve("adapter_config.json").toFile());
        assertEquals(List.of("config", "hidden_size", "model_class", "model_name", "model_type", "name", "version"),
                iterate(cfg), "build_full_config's keys, sorted as json.dump(sort_keys=True) writes them");
        assertEquals("bn", cfg.get("name").asText());
        assertEquals(16, cfg.get("hidden_size").asInt());
        assertEquals("llama", cfg.get("model_type").asText());
        JsonNode c = cfg.get("config");
        assertEquals(4, c.get("reduction_factor").get("default").asInt());
        assertEquals(8, c.get("reduction_factor").get("1").asInt());
        assertEquals("relu", c.get("non_linearity").asText());
        assertTrue(c.get("mh_adapter").asBoolean() && c.get("output_adapter").asBoolean());
        assertTrue(c.get("original_ln_after").asBoolean() && !c.get("original_ln_before").asBoolean());
        assertEquals(0.5, c.get("scaling").asDouble());
        assertEquals(33, c.size(), "every BnConfig field");

        LoraAdapter b = PeftAdapters.load(dir, m, "again");
        assertArrayEquals(a.store().values, b.store().values);
        assertEquals(a.bottleneckConfig(), b.bottleneckConfig());
        assertEquals(2, b.bottleneck(1, Sublayer.ATTENTION).d);
    }

    private static List<String> iterate(JsonNode n) {
        List<String> keys = new java.util.ArrayList<>();
        n.fieldNames().forEachRemaining(keys::add);
        return keys;
    }

    /** Saves the adapter, lets {@code edit} change the config JSON, and returns the load's error. */
    private static ModelFormatException configError(Path dir, Consumer<ObjectNode> edit) throws Exception {
        Llama m = model();
        PeftAdapters.save(adapter(m), m, dir);
        Path f = dir.resolve("adapter_config.json");
        ObjectNode n = (ObjectNode) new ObjectMapper().readTree(f.toFile());
        edit.accept(n);
        Files.writeString(f, n.toString());
        return assertThrows(ModelFormatException.class, () -> PeftAdapters.load(dir, m, "x"));
    }

    @Test
    void unsupportedOrBrokenConfigsAreRefusedNamingTheFileAndKey(@TempDir Path dir) throws Exception {
        String[][] cases = {
                {"ln_after", "config.ln_after"},
                {"original_ln_before", "config.original_ln_before"},
                {"non_linearity", "non_linearity 'mish'"},
                {"missing", "missing key config.reduction_factor"},
                {"hidden", "hidden_size 32"},
                {"arch", "config.architecture"},
                {"scaling", "config.scaling \"learned\""},
        };
        for (String[] c : cases) {
            Path d = dir.resolve(c[0]);
            ModelFormatException e = configError(d, n -> {
                ObjectNode cfg = (ObjectNode) n.get("config");
                switch (c[0]) {
                    case "ln_after" -> cfg.put("ln_after", true);
                    case "original_ln_before" -> cfg.put("original_ln_before", true);
                    case "non_linearity" -> cfg.put("non_linearity", "mish");
                    case "missing" -> cfg.remove("reduction_factor");
                    case "hidden" -> n.put("hidden_size", 32);
                    case "arch" -> cfg.put("architecture", "lora");
                    case "scaling" -> cfg.put("scaling", "learned");
                    default -> throw new AssertionError();
                }
            });
            assertTrue(e.getMessage().contains(d.resolve("adapter_config.json").toString()), e.getMessage());
            assertTrue(e.getMessage().contains(c[1]), c[0] + ": " + e.getMessage());
        }
    }

    @Test
    void missingExtraOrMisshapenTensorsAreRefusedNamingTheFile(@TempDir Path dir) throws Exception {
        Llama m = model();
        LoraAdapter a = adapter(m);
        String[] problems = {"missing", "extra", "shape", "renamed"};
        for (String p : problems) {
            Path d = dir.resolve(p);
            PeftAdapters.save(a, m, d);
            Path w = d.resolve("adapter.safetensors");
            SafetensorsWriter sw = new SafetensorsWriter();
            try (SafetensorsFile st = SafetensorsFile.open(w)) {
                for (String k : new TreeSet<>(st.tensors().keySet())) {
                    long[] shape = st.fileShape(k);
                    float[] v = new float[(int) st.tensor(k).elementCount()];
                    boolean target = k.equals("model.layers.1.output_adapters.adapters.bn.adapter_up.weight");
                    if (p.equals("missing") && target) {
                        continue;
                    }
                    if (p.equals("shape") && target) {
                        shape = new long[]{shape[1], shape[0]};
                    }
                    sw.add(p.equals("renamed") ? k.replace(".bn.", ".other.") : k, shape, v);
                }
            }
            if (p.equals("extra")) {
                sw.add("model.layers.2.output_adapters.adapters.bn.adapter_up.bias", new long[]{16}, new float[16]);
            }
            Files.delete(w);
            sw.write(w);
            ModelFormatException e = assertThrows(ModelFormatException.class, () -> PeftAdapters.load(d, m, "x"), p);
            assertTrue(e.getMessage().startsWith(w.toString()), e.getMessage());
            assertTrue(e.getMessage().contains(switch (p) {
                case "missing", "renamed" -> "missing tensor model.layers.";
                case "extra" -> "match no module";
                default -> "has shape [2, 16] but the base model needs [16, 2]";
            }), p + ": " + e.getMessage());
        }
    }

    @Test
    void aPeftReaderNamesAnAdapterHubConfig(@TempDir Path dir) {
        Llama m = model();
        PeftAdapters.save(adapter(m), m, dir);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> PeftAdapters.readConfig(dir));
        assertTrue(e.getMessage().contains("AdapterHub"), e.getMessage());
    }
}

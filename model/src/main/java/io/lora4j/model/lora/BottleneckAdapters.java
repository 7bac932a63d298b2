package io.lora4j.model.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.model.arch.BaseModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.format.DurableFiles;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.SafetensorsWriter;
import io.lora4j.model.format.TensorInfo;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Bottleneck adapters in AdapterHub's on-disk format ({@code adapters} 1.2, {@code model.save_adapter(dir, name,
 * use_safetensors=True)}): {@code adapter_config.json} as {@code build_full_config} writes it (model_type,
 * hidden_size, model_name, name, model_class, version and the full {@code BnConfig} under "config"; keys sorted,
 * indent 2) and {@code adapter.safetensors} ({@code SAFE_WEIGHTS_NAME}) with the module state dict of
 * LlamaForCausalLM, e.g. {@code model.layers.0.attention_adapters.adapters.<name>.adapter_down.0.weight} [d, C],
 * {@code ...adapter_down.0.bias} [d], {@code ...adapter_up.weight} [C, d], {@code ...adapter_up.bias} [C], and the
 * same under {@code output_adapters}. F32 on save; F32, F16 and BF16 on load. The residual stream is in the same
 * order in Hugging Face and GGUF bases, so nothing is permuted.
 */
public final class BottleneckAdapters {
    public static final String CONFIG = PeftAdapters.CONFIG;
    public static final String WEIGHTS = "adapter.safetensors";
    /** The adapters release whose format this writes (its {@code "version"} field). */
    static final String VERSION = "adapters.1.2.0";

    private BottleneckAdapters() {
    }

    /** Whether {@code dir} holds an AdapterHub adapter (its weights file) rather than a PEFT one. */
    public static boolean isBottleneck(Path dir) {
        return Files.isRegularFile(dir.resolve(WEIGHTS)) && !Files.isRegularFile(dir.resolve(PeftAdapters.WEIGHTS));
    }

    /** The tensor name of a module's parameter, e.g. {@code model.layers.0.output_adapters.adapters.bn.adapter_up.bias}. */
    static String key(int layer, Sublayer s, String adapterName, String param) {
        return s.path(layer) + ".adapters." + adapterName + "." + param;
    }

    /** Writes {@code dir/adapter_config.json} and {@code dir/adapter.safetensors}, each durably, under the adapter's name. */
    public static void save(LoraAdapter a, BaseModel base, Path dir) {
        BottleneckConfig cfg = a.bottleneckConfig();
        if (cfg == null) {
            throw new IllegalArgumentException("adapter " + a.name() + " is not a bottleneck adapter");
        }
        try {
            Files.createDirectories(dir);
            String name = checkedName(a.name());
            SafetensorsWriter w = new SafetensorsWriter();
            for (BottleneckLayer b : a.bottlenecks()) {
                w.add(key(b.layer, b.site, name, "adapter_down.0.weight"), new long[]{b.d, b.C}, b.down.toArray());
                w.add(key(b.layer, b.site, name, "adapter_down.0.bias"), new long[]{b.d}, b.downBias.toArray());
                w.add(key(b.layer, b.site, name, "adapter_up.weight"), new long[]{b.C, b.d}, b.up.toArray());
                w.add(key(b.layer, b.site, name, "adapter_up.bias"), new long[]{b.C}, b.upBias.toArray());
            }
            w.write(dir.resolve(WEIGHTS));
            DurableFiles.write(dir.resolve(CONFIG), configJson(cfg, base, name));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write adapter to " + dir + ": " + e.getMessage(), e);
        }
    }

    /** An adapter name that keeps the tensor names parseable: AdapterHub's filter matches ".adapters.<name>.". */
    private static String checkedName(String name) {
        if (name.isEmpty() || name.contains(".")) {
            throw new IllegalArgumentException("adapter name '" + name + "' cannot be written in AdapterHub's tensor names "
                    + "(empty, or contains a dot)");
        }
        return name;
    }

    /** adapter_config.json as AdapterHub's build_full_config and json.dump(sort_keys=True, indent=2) write it. */
    static byte[] configJson(BottleneckConfig c, BaseModel base, String name) throws IOException {
        ObjectMapper om = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
                .enable(SerializationFeature.ORDER_MAP_ENTRIES_BY_KEYS);
        Map<String, Object> bn = new LinkedHashMap<>();
        // every field of BnConfig, as dataclasses.asdict writes them; those lora4j does not implement at their defaults
        bn.put("mh_adapter", c.mhAdapter());
        bn.put("output_adapter", c.outputAdapter());
        if (c.layerFactors().isEmpty()) {
            bn.put("reduction_factor", number(c.reductionFactor()));
        } else {
            Map<String, Object> rf = new LinkedHashMap<>();
            c.layerFactors().forEach((l, f) -> rf.put(Integer.toString(l), number(f)));
            rf.put("default", number(c.reductionFactor()));
            bn.put("reduction_factor", rf);
        }
        bn.put("non_linearity", c.nonLinearity());
        bn.put("original_ln_before", false);
        bn.put("original_ln_after", true);
        bn.put("ln_before", false);
        bn.put("ln_after", false);
        bn.put("init_weights", c.initWeights());
        bn.put("init_weights_seed", null);
        bn.put("is_parallel", false);
        bn.put("scaling", (double) c.scaling());
        bn.put("use_gating", false);
        bn.put("residual_before_ln", true);
        bn.put("adapter_residual_before_ln", false);
        bn.put("inv_adapter", null);
        bn.put("inv_adapter_reduction_factor", null);
        bn.put("cross_adapter", false);
        bn.put("leave_out", c.leaveOut());
        bn.put("dropout", (double) c.dropout());
        bn.put("phm_layer", false);
        bn.put("phm_dim", 4);
        bn.put("factorized_phm_W", true);
        bn.put("shared_W_phm", false);
        bn.put("shared_phm_rule", true);
        bn.put("factorized_phm_rule", false);
        bn.put("phm_c_init", "normal");
        bn.put("phm_init_range", 0.0001);
        bn.put("learn_phm", true);
        bn.put("hypercomplex_nonlinearity", "glorot-uniform");
        bn.put("phm_rank", 1);
        bn.put("phm_bias", true);
        bn.put("stochastic_depth", 0.0);
        Map<String, Object> full = new LinkedHashMap<>();
        full.put("model_type", "llama");
        full.put("hidden_size", base.config().dim());
        full.put("model_name", base.baseModelName());
        full.put("name", name);
        full.put("model_class", "LlamaForCausalLM");
        full.put("config", bn);
        full.put("version", VERSION);
        return (om.writeValueAsString(full) + "\n").getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    /** An integral factor as an int (Python writes 16 for 16), any other as a double. */
    private static Object number(double f) {
        return f == Math.rint(f) && Math.abs(f) < Integer.MAX_VALUE ? (Object) (int) f : (Object) f;
    }

    /** What adapter_config.json says: the adapter's name and its settings. */
    public record Config(String name, BottleneckConfig bottleneck, int hiddenSize) {
    }

    /**
     * Reads {@code dir/adapter_config.json} as AdapterHub's: refuses (naming the file and key) the BnConfig settings lora4j
     * does not implement (adapter layer norms, original_ln_before, parallel adapters, gating, PHM layers, invertible
     * adapters, learned scaling) and other architectures (AdapterHub's LoRA, prefix tuning, …).
     */
    public static Config readConfig(Path dir) {
        Path file = dir.resolve(CONFIG);
        JsonNode n;
        try {
            n = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ModelFormatException(file, "no such file (is " + dir + " an adapter directory?)");
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage());
        }
        if (n == null || !n.isObject() || !n.path("config").isObject()) {
            throw new ModelFormatException(file, "not an AdapterHub adapter config (no \"config\" object)");
        }
        JsonNode c = n.get("config");
        if (c.hasNonNull("architecture")) {
            throw new ModelFormatException(file, "config.architecture " + c.get("architecture") + ": only bottleneck adapters "
                    + "(no architecture key) are supported");
        }
        String name = n.path("name").asText("");
        if (name.isEmpty()) {
            throw new ModelFormatException(file, "missing key name (the adapter's name, part of every tensor name)");
        }
        for (String k : List.of("mh_adapter", "output_adapter", "reduction_factor", "non_linearity")) {
            if (!c.hasNonNull(k)) {
                throw new ModelFormatException(file, "missing key config." + k);
            }
        }
        expect(file, c, "original_ln_before", false);
        expect(file, c, "original_ln_after", true);
        expect(file, c, "ln_before", false);
        expect(file, c, "ln_after", false);
        expect(file, c, "is_parallel", false);
        expect(file, c, "use_gating", false);
        expect(file, c, "phm_layer", false);
        if (c.hasNonNull("inv_adapter")) {
            throw new ModelFormatException(file, "config.inv_adapter " + c.get("inv_adapter") + ": invertible adapters are not supported");
        }
        JsonNode scaling = c.path("scaling");
        if (!scaling.isMissingNode() && !scaling.isNumber()) {
            throw new ModelFormatException(file, "config.scaling " + scaling + ": only a constant scaling is supported");
        }
        if (!c.get("mh_adapter").isBoolean() || !c.get("output_adapter").isBoolean()) {
            throw new ModelFormatException(file, "config.mh_adapter and config.output_adapter must be booleans");
        }
        double factor;
        Map<Integer, Double> layerFactors = new LinkedHashMap<>();
        JsonNode rf = c.get("reduction_factor");
        if (rf.isNumber()) {
            factor = rf.asDouble();
        } else if (rf.isObject()) {
            if (!rf.path("default").isNumber()) {
                throw new ModelFormatException(file, "config.reduction_factor is a mapping without a numeric \"default\"");
            }
            factor = rf.get("default").asDouble();
            for (var it = rf.fields(); it.hasNext(); ) {
                var e = it.next();
                if (e.getKey().equals("default")) {
                    continue;
                }
                if (!e.getKey().matches("\\d+") || !e.getValue().isNumber()) {
                    throw new ModelFormatException(file, "config.reduction_factor entry \"" + e.getKey() + "\": " + e.getValue()
                            + " is not a layer index with a number");
                }
                layerFactors.put(Integer.parseInt(e.getKey()), e.getValue().asDouble());
            }
        } else {
            throw new ModelFormatException(file, "config.reduction_factor " + rf + " is neither a number nor a mapping");
        }
        List<Integer> leaveOut = new ArrayList<>();
        JsonNode lo = c.path("leave_out");
        if (lo.isArray()) {
            lo.forEach(x -> leaveOut.add(x.asInt()));
        } else if (!lo.isMissingNode() && !lo.isNull()) {
            throw new ModelFormatException(file, "config.leave_out " + lo + " is not a list of layer indices");
        }
        try {
            BottleneckConfig bc = new BottleneckConfig(c.get("mh_adapter").asBoolean(), c.get("output_adapter").asBoolean(), factor,
                    layerFactors, c.get("non_linearity").asText(), c.path("init_weights").asText("bert"),
                    (float) scaling.asDouble(1.0), leaveOut, (float) c.path("dropout").asDouble(0));
            return new Config(name, bc, n.path("hidden_size").asInt(-1));
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, e.getMessage());
        }
    }

    private static void expect(Path file, JsonNode c, String key, boolean value) {
        JsonNode v = c.path(key);
        if (!v.isMissingNode() && !v.isNull() && v.asBoolean(!value) != value) {
            throw new ModelFormatException(file, "config." + key + " " + v + ": lora4j implements " + key + " = " + value
                    + " only (Houlsby's and AdapterHub's double_seq_bn setting)");
        }
    }

    /**
     * Loads the adapter in {@code dir} for {@code base}, under {@code name}: every module the config implies must be in
     * the file with AdapterHub's name (under the config's adapter name) and shape, no tensor may be left over, and every
     * value must be finite.
     */
    public static LoraAdapter load(Path dir, BaseModel base, String name) {
        Config cfg = readConfig(dir);
        LlamaConfig c = base.config();
        Path configFile = dir.resolve(CONFIG);
        if (cfg.hiddenSize() >= 0 && cfg.hiddenSize() != c.dim()) {
            throw new ModelFormatException(configFile, "hidden_size " + cfg.hiddenSize() + " but the base model's is " + c.dim());
        }
        Path file = dir.resolve(WEIGHTS);
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            long stored = 0;
            for (TensorInfo t : st.tensors().values()) {
                stored += t.elementCount();
            }
            LoraAdapter a;
            try {
                a = LoraAdapter.uninitialised(name, cfg.bottleneck(), base, stored, file.getFileName() + " holds only " + stored + " values");
            } catch (IllegalArgumentException e) {
                throw new ModelFormatException(configFile, e.getMessage() + " in this base model");
            }
            Set<String> unused = new HashSet<>(st.tensors().keySet());
            String n = cfg.name();
            for (BottleneckLayer b : a.bottlenecks()) {
                PeftAdapters.read(st, file, key(b.layer, b.site, n, "adapter_down.0.weight"), new long[]{b.d, b.C}, b.down, unused);
                PeftAdapters.read(st, file, key(b.layer, b.site, n, "adapter_down.0.bias"), new long[]{b.d}, b.downBias, unused);
                PeftAdapters.read(st, file, key(b.layer, b.site, n, "adapter_up.weight"), new long[]{b.C, b.d}, b.up, unused);
                PeftAdapters.read(st, file, key(b.layer, b.site, n, "adapter_up.bias"), new long[]{b.C}, b.upBias, unused);
            }
            if (!unused.isEmpty()) {
                throw new ModelFormatException(file, unused.size() + " tensor(s) match no module the config implies for this "
                        + "model (adapter name, layers or positions differ?), e.g. " + new TreeSet<>(unused).first());
            }
            return a;
        }
    }
}

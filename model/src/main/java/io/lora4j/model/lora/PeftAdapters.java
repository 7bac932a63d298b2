package io.lora4j.model.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;
import io.lora4j.model.Llama;
import io.lora4j.model.LlamaConfig;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.SafetensorsWriter;
import io.lora4j.model.format.TensorInfo;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

/**
 * Adapters in Hugging Face PEFT's on-disk format: {@code adapter_config.json} and
 * {@code adapter_model.safetensors} with keys such as
 * {@code base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight} [r, in] and
 * {@code ...lora_B.weight} [out, r] (no adapter name), F32 on save; F32, F16 and BF16 on load.
 * <p>
 * Row order: PEFT adapters are in Hugging Face order. On a GGUF or llama2.c base, whose Q and K
 * rows llama.cpp's converter permuted per head from halves to adjacent pairs, lora_B (and a
 * lora_B bias) of q_proj and k_proj are permuted the same way on load and back on save.
 */
public final class PeftAdapters {
    public static final String CONFIG = "adapter_config.json";
    public static final String WEIGHTS = "adapter_model.safetensors";
    private static final String PREFIX = "base_model.model.";

    private PeftAdapters() {
    }

    /** Writes {@code dir/adapter_config.json} and {@code dir/adapter_model.safetensors} (each via temp + rename). */
    public static void save(LoraAdapter a, Llama base, Path dir) {
        try {
            Files.createDirectories(dir);
            LlamaConfig c = base.config();
            boolean permute = c.ropeStyle() == LlamaConfig.RopeStyle.ADJACENT;
            SafetensorsWriter w = new SafetensorsWriter();
            for (LoraLayer l : a.layers()) {
                String k = PREFIX + l.path();
                w.add(k + ".lora_A.weight", new long[]{l.r, l.in}, l.a);
                int heads = heads(l.module, c);
                float[] b = permute && heads > 0 ? rows(l.b, l.out, l.r, heads, false) : l.b;
                w.add(k + ".lora_B.weight", new long[]{l.out, l.r}, b);
                if (l.bias != null) {
                    float[] bias = permute && heads > 0 ? rows(l.bias, l.out, 1, heads, false) : l.bias;
                    w.add(k + ".lora_B.bias", new long[]{l.out}, bias);
                }
            }
            if (a.lmHead != null) {
                w.add(PREFIX + "lm_head.weight", new long[]{c.vocabSize(), c.dim()}, a.lmHead);
            }
            if (a.embedTokens != null) {
                w.add(PREFIX + "model.embed_tokens.weight", new long[]{c.vocabSize(), c.dim()}, a.embedTokens);
            }
            w.write(dir.resolve(WEIGHTS));
            writeAtomically(dir.resolve(CONFIG), configJson(a.config(), base));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write adapter to " + dir + ": " + e.getMessage(), e);
        }
    }

    /** PEFT's adapter_config.json for {@code c}. */
    static byte[] configJson(LoraConfig c, Llama base) throws IOException {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode o = json.createObjectNode();
        ObjectNode ap = o.putObject("alpha_pattern");
        c.alphaPattern().forEach(ap::put);
        o.putNull("auto_mapping");
        o.put("base_model_name_or_path", base.source().path().toString());
        o.put("bias", c.bias());
        o.put("fan_in_fan_out", false);
        o.put("inference_mode", true);
        switch (c.initLoraWeights()) {
            case "true" -> o.put("init_lora_weights", true);
            case "false" -> o.put("init_lora_weights", false);
            default -> o.put("init_lora_weights", c.initLoraWeights());
        }
        if (c.layersToTransform().isEmpty()) {
            o.putNull("layers_to_transform");
        } else {
            ArrayNode l = o.putArray("layers_to_transform");
            c.layersToTransform().forEach(l::add);
        }
        o.putNull("layers_pattern");
        o.put("lora_alpha", c.loraAlpha());
        o.put("lora_dropout", c.loraDropout());
        if (c.modulesToSave().isEmpty()) {
            o.putNull("modules_to_save");
        } else {
            ArrayNode m = o.putArray("modules_to_save");
            c.modulesToSave().forEach(m::add);
        }
        o.put("peft_type", "LORA");
        o.put("r", c.r());
        ObjectNode rp = o.putObject("rank_pattern");
        c.rankPattern().forEach(rp::put);
        o.putNull("revision");
        if (c.targetRegex() != null) {
            o.put("target_modules", c.targetRegex());
        } else {
            ArrayNode t = o.putArray("target_modules");
            c.targetModules().forEach(t::add);
        }
        o.put("task_type", "CAUSAL_LM");
        o.put("use_dora", false);
        o.put("use_rslora", c.useRslora());
        return json.writeValueAsBytes(o);
    }

    /** Reads {@code dir/adapter_config.json} (unknown keys ignored); errors name the file and key. */
    public static LoraConfig readConfig(Path dir) {
        Path file = dir.resolve(CONFIG);
        JsonNode n;
        try {
            n = new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ModelFormatException(file, "no such file (is " + dir + " a PEFT adapter directory?)");
        } catch (IOException e) {
            throw new ModelFormatException(file, "invalid JSON: " + e.getMessage());
        }
        if (n == null || !n.isObject()) {
            throw new ModelFormatException(file, "not a JSON object");
        }
        String type = n.path("peft_type").asText("LORA");
        if (!type.equals("LORA")) {
            throw new ModelFormatException(file, "peft_type " + type + " is not a LoRA adapter");
        }
        if (n.path("use_dora").asBoolean(false)) {
            throw new ModelFormatException(file, "use_dora: DoRA adapters are not supported");
        }
        if (n.path("fan_in_fan_out").asBoolean(false)) {
            throw new ModelFormatException(file, "fan_in_fan_out: true is for GPT-2 style Conv1D weights, not Llama");
        }
        if (!n.hasNonNull("r") || !n.get("r").canConvertToInt()) {
            throw new ModelFormatException(file, "missing or invalid key r");
        }
        JsonNode tm = n.path("target_modules");
        List<String> targets = new ArrayList<>();
        String regex = null;
        if (tm.isTextual()) {
            if (tm.asText().equals("all-linear")) {
                targets.add("all-linear");
            } else {
                regex = tm.asText();
            }
        } else if (tm.isArray()) {
            tm.forEach(x -> targets.add(x.asText()));
        } else {
            throw new ModelFormatException(file, "missing or invalid key target_modules");
        }
        List<Integer> layers = new ArrayList<>();
        JsonNode lt = n.path("layers_to_transform");
        if (lt.isInt()) {
            layers.add(lt.asInt());
        } else if (lt.isArray()) {
            lt.forEach(x -> layers.add(x.asInt()));
        }
        Map<String, Integer> rp = new LinkedHashMap<>();
        n.path("rank_pattern").fields().forEachRemaining(e -> rp.put(e.getKey(), e.getValue().asInt()));
        Map<String, Float> ap = new LinkedHashMap<>();
        n.path("alpha_pattern").fields().forEachRemaining(e -> ap.put(e.getKey(), (float) e.getValue().asDouble()));
        List<String> save = new ArrayList<>();
        n.path("modules_to_save").forEach(x -> save.add(x.asText()));
        JsonNode init = n.path("init_lora_weights");
        String initS = init.isBoolean() ? Boolean.toString(init.asBoolean()) : init.isTextual() ? init.asText() : "true";
        if (!initS.equals("gaussian") && !initS.equals("true") && !initS.equals("false")) {
            initS = "true"; // other PEFT initialisations (pissa, olora, loftq) only matter before training
        }
        try {
            return new LoraConfig(n.get("r").asInt(), (float) n.path("lora_alpha").asDouble(8), (float) n.path("lora_dropout").asDouble(0),
                    targets, regex, n.path("bias").asText("none"), n.path("use_rslora").asBoolean(false), initS, layers, rp, ap, save);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, e.getMessage());
        }
    }

    /**
     * Loads the adapter in {@code dir} for {@code base}: every targeted module must have lora_A and
     * lora_B of the right shapes, no tensor may be left over, and every value must be finite.
     */
    public static LoraAdapter load(Path dir, Llama base, String name) {
        LoraConfig cfg = readConfig(dir);
        LoraAdapter a;
        try {
            a = new LoraAdapter(name, cfg, base, 0);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(dir.resolve(CONFIG), e.getMessage() + " in this base model");
        }
        Path file = dir.resolve(WEIGHTS);
        LlamaConfig c = base.config();
        boolean permute = c.ropeStyle() == LlamaConfig.RopeStyle.ADJACENT;
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            Set<String> unused = new HashSet<>(st.tensors().keySet());
            for (LoraLayer l : a.layers()) {
                String k = PREFIX + l.path();
                read(st, file, k + ".lora_A.weight", new long[]{l.r, l.in}, l.a, unused);
                read(st, file, k + ".lora_B.weight", new long[]{l.out, l.r}, l.b, unused);
                int heads = heads(l.module, c);
                if (permute && heads > 0) {
                    System.arraycopy(rows(l.b, l.out, l.r, heads, true), 0, l.b, 0, l.b.length);
                }
                if (l.bias != null) {
                    read(st, file, k + ".lora_B.bias", new long[]{l.out}, l.bias, unused);
                    if (permute && heads > 0) {
                        System.arraycopy(rows(l.bias, l.out, 1, heads, true), 0, l.bias, 0, l.bias.length);
                    }
                }
            }
            if (a.lmHead != null) {
                read(st, file, PREFIX + "lm_head.weight", new long[]{c.vocabSize(), c.dim()}, a.lmHead, unused);
            }
            if (a.embedTokens != null) {
                read(st, file, PREFIX + "model.embed_tokens.weight", new long[]{c.vocabSize(), c.dim()}, a.embedTokens, unused);
            }
            if (!unused.isEmpty()) {
                Iterator<String> it = new TreeSet<>(unused).iterator();
                throw new ModelFormatException(file, unused.size() + " tensor(s) match no adapted module of this model "
                        + "(targets or layers differ from the config?), e.g. " + it.next());
            }
        }
        return a;
    }

    private static void read(SafetensorsFile st, Path file, String key, long[] shape, float[] dst, Set<String> unused) {
        if (!st.tensors().containsKey(key)) {
            throw new ModelFormatException(file, "missing tensor " + key);
        }
        long[] found = st.fileShape(key);
        if (!Arrays.equals(found, shape)) {
            throw new ModelFormatException(file, "tensor " + key + " has shape " + Arrays.toString(found)
                    + " but the base model needs " + Arrays.toString(shape));
        }
        TensorInfo t = st.tensor(key);
        if (t.type() != GgmlType.F32 && t.type() != GgmlType.F16 && t.type() != GgmlType.BF16) {
            throw new ModelFormatException(file, "tensor " + key + " has type " + t.type() + " (F32, F16, BF16 accepted)");
        }
        Dequant.row(new Weight(key, t.type(), t.data(), 1, dst.length), 0, dst, 0);
        for (int i = 0; i < dst.length; i++) {
            if (!Float.isFinite(dst[i])) {
                throw new ModelFormatException(file, "tensor " + key + " holds a non-finite value (" + dst[i] + ") at " + i);
            }
        }
        unused.remove(key);
    }

    /** Heads whose rows llama.cpp permuted: NH for q_proj, NKV for k_proj, else 0. */
    private static int heads(LinearModule m, LlamaConfig c) {
        return m == LinearModule.Q_PROJ ? c.nHeads() : m == LinearModule.K_PROJ ? c.nKvHeads() : 0;
    }

    /**
     * Permutes the rows of an (out, cols) matrix per head between HF order (row h·HS + e·HS/2 + i)
     * and GGUF order (row h·HS + 2i + e): {@code toGguf} maps HF → GGUF, else GGUF → HF.
     */
    static float[] rows(float[] m, int out, int cols, int heads, boolean toGguf) {
        int hs = out / heads;
        int half = hs / 2;
        float[] r = new float[m.length];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < half; i++) {
                for (int e = 0; e < 2; e++) {
                    int hf = h * hs + e * half + i;
                    int gg = h * hs + 2 * i + e;
                    int src = toGguf ? hf : gg;
                    int dst = toGguf ? gg : hf;
                    System.arraycopy(m, src * cols, r, dst * cols, cols);
                }
            }
        }
        return r;
    }

    private static void writeAtomically(Path target, byte[] bytes) throws IOException {
        Path tmp = target.resolveSibling(target.getFileName() + ".tmp");
        Files.write(tmp, bytes);
        Files.move(tmp, target, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    }
}

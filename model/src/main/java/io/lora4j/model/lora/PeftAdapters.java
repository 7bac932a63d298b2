package io.lora4j.model.lora;

import io.lora4j.model.arch.LinearModule;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;
import io.lora4j.model.arch.BaseModel;
import io.lora4j.model.arch.LlamaConfig;
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
 * AdaLoRA ({@code peft_type: ADALORA}) as PEFT's {@code AdaLoraModel._get_adapter_state_dict} writes
 * it: parameters without a {@code .weight} suffix, {@code ...lora_A} [k, in], {@code ...lora_E}
 * [k, 1], {@code ...lora_B} [out, k], cut to the k triplets that {@code rank_pattern}
 * ({@code "model.layers.0.self_attn.q_proj.lora_E": [bool × init_r]}) keeps; loading builds each
 * module with its kept rank, as {@code resize_modules_by_rank_pattern} does.
 * <p>
 * DoRA ({@code use_dora: true}): each module also has {@code ...lora_magnitude_vector} [out] (no
 * {@code .weight} suffix, as PEFT's {@code LoraModel._get_adapter_state_dict} writes it).
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

    /** Sub-directory of a checkpoint holding a PiSSA/OLoRA adapter's initial values (PEFT's pissa_init). */
    public static final String INITIAL = "initial";

    /** What of an adapter a file holds. */
    private enum Form {
        /** The adapter as it is (for a PiSSA/OLoRA adapter: applying to the residual base). */
        AS_IS,
        /** A PiSSA/OLoRA adapter converted to apply to the original base (PEFT's subtract_mutated_init). */
        CONVERTED,
        /** A PiSSA/OLoRA adapter's initial values A₀, B₀, with init_lora_weights true. */
        INITIAL
    }

    /**
     * Writes {@code dir/adapter_config.json} and {@code dir/adapter_model.safetensors}, each durably ({@link DurableFiles}),
     * (a bottleneck adapter in AdapterHub's format instead, {@link BottleneckAdapters#save}),
     * as PEFT's {@code save_pretrained}; a PiSSA/OLoRA adapter as {@code save_pretrained(dir,
     * path_initial_model_for_weight_conversion=…)} writes it, so that it applies to the original base.
     */
    public static void save(LoraAdapter a, BaseModel base, Path dir) {
        save(a, base, dir, true);
    }

    /**
     * As {@link #save(LoraAdapter, BaseModel, Path)}; with {@code truncate} false an AdaLoRA adapter keeps
     * every triplet and is written without rank_pattern (the pruned triplets have E = 0, so PEFT
     * loads the same update), which training checkpoints need to resume exactly.
     * <p>
     * A PiSSA/OLoRA adapter ({@link LoraAdapter#initialValues()} not null) is converted as PEFT's
     * {@code subtract_mutated_init} converts it: ΔW = s·(BA − B₀A₀), so {@code lora_A = [A; A₀]} (2r rows),
     * {@code lora_B = [B, −B₀]} (2r columns), {@code r} and {@code lora_alpha} doubled (alpha ×√2 with
     * use_rslora: the same scaling), rank_pattern and alpha_pattern values doubled, init_lora_weights true.
     * PEFT's conversion drops every other tensor; lora4j keeps the modules_to_save copies, which the
     * decomposition did not touch.
     */
    public static void save(LoraAdapter a, BaseModel base, Path dir, boolean truncate) {
        if (a.bottleneckConfig() != null) {
            BottleneckAdapters.save(a, base, dir);
            return;
        }
        write(a, base, dir, truncate, a.initialValues() == null ? Form.AS_IS : Form.CONVERTED);
    }

    /**
     * A training checkpoint's adapter: every triplet (AdaLoRA), unconverted, and for a PiSSA/OLoRA adapter
     * its initial values in {@code dir/initial} (as PEFT's documented workflow saves them before training),
     * which {@link #load(Path, BaseModel, String, Path)} takes to rebuild the same residual base.
     */
    public static void saveCheckpoint(LoraAdapter a, BaseModel base, Path dir) {
        if (a.bottleneckConfig() != null) {
            BottleneckAdapters.save(a, base, dir);
            return;
        }
        write(a, base, dir, false, Form.AS_IS);
        if (a.initialValues() != null) {
            write(a, base, dir.resolve(INITIAL), false, Form.INITIAL);
        }
    }

    private static void write(LoraAdapter a, BaseModel base, Path dir, boolean truncate, Form form) {
        try {
            Files.createDirectories(dir);
            LlamaConfig c = base.config();
            boolean ada = a.adaLora() != null;
            String w8 = ada ? "" : ".weight";
            float[] values = form == Form.INITIAL ? a.initialValues() : a.store().values;
            float[] init = a.initialValues();
            SafetensorsWriter w = new SafetensorsWriter();
            for (LoraLayer l : a.layers()) {
                String k = PREFIX + l.path();
                int[] keep = kept(a, l, truncate);
                int r = keep.length;
                float[] av = pick(slice(values, l.a), l.r, l.in, keep, true);
                float[] b = hfRows(pick(slice(values, l.b), l.out, l.r, keep, false), l.module, c, r, true);
                if (form == Form.CONVERTED) {
                    float[] a0 = slice(init, l.a), b0 = hfRows(slice(init, l.b), l.module, c, r, true);
                    float[] ca = new float[2 * r * l.in], cb = new float[l.out * 2 * r];
                    System.arraycopy(av, 0, ca, 0, av.length);
                    System.arraycopy(a0, 0, ca, av.length, a0.length);
                    for (int o = 0; o < l.out; o++) {
                        for (int j = 0; j < r; j++) {
                            cb[o * 2 * r + j] = b[o * r + j];
                            cb[o * 2 * r + r + j] = -b0[o * r + j];
                        }
                    }
                    av = ca;
                    b = cb;
                    r *= 2;
                }
                w.add(k + ".lora_A" + w8, new long[]{r, l.in}, av);
                w.add(k + ".lora_B" + w8, new long[]{l.out, r}, b);
                if (ada) {
                    w.add(k + ".lora_E", new long[]{r, 1}, pick(l.e.toArray(), l.r, 1, keep, true));
                }
                if (l.bias != null) {
                    w.add(k + ".lora_B.bias", new long[]{l.out}, hfRows(l.bias.toArray(), l.module, c, 1, true));
                }
                if (l.magnitude != null) {
                    w.add(k + ".lora_magnitude_vector", new long[]{l.out}, hfRows(slice(values, l.magnitude), l.module, c, 1, true));
                }
            }
            if (a.lmHead != null) {
                w.add(PREFIX + "lm_head.weight", new long[]{c.vocabSize(), c.dim()}, slice(values, a.lmHead));
            }
            if (a.embedTokens != null) {
                w.add(PREFIX + "model.embed_tokens.weight", new long[]{c.vocabSize(), c.dim()}, slice(values, a.embedTokens));
            }
            w.write(dir.resolve(WEIGHTS));
            Map<String, boolean[]> pattern = ada && truncate ? a.rankPattern() : null;
            LoraConfig cfg = switch (form) {
                case AS_IS -> a.config();
                case INITIAL -> withInit(a.config(), "true");
                case CONVERTED -> converted(a.config());
            };
            DurableFiles.write(dir.resolve(CONFIG), configJson(cfg, c.nLayers(), a.adaLora(), pattern, base.baseModelName()));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write adapter to " + dir + ": " + e.getMessage(), e);
        }
    }

    private static float[] slice(float[] values, ParamStore.View v) {
        return Arrays.copyOfRange(values, v.off(), v.off() + v.len());
    }

    private static LoraConfig withInit(LoraConfig c, String init) {
        return new LoraConfig(c.r(), c.loraAlpha(), c.loraDropout(), c.targetModules(), c.targetRegex(), c.bias(), c.useRslora(),
                init, c.layersToTransform(), c.rankPattern(), c.alphaPattern(), c.modulesToSave(), c.useDora());
    }

    /** The config PEFT's save_pretrained writes with path_initial_model_for_weight_conversion. */
    static LoraConfig converted(LoraConfig c) {
        Map<String, Integer> rp = new LinkedHashMap<>();
        c.rankPattern().forEach((k, v) -> rp.put(k, 2 * v));
        Map<String, Float> ap = new LinkedHashMap<>();
        c.alphaPattern().forEach((k, v) -> ap.put(k, 2 * v));
        float alpha = c.useRslora() ? (float) (c.loraAlpha() * Math.sqrt(2)) : 2 * c.loraAlpha();
        return new LoraConfig(2 * c.r(), alpha, c.loraDropout(), c.targetModules(), c.targetRegex(), c.bias(), c.useRslora(),
                "true", c.layersToTransform(), rp, ap, c.modulesToSave());
    }

    /** The triplets of {@code l} to write: those its rank pattern keeps (AdaLoRA, truncating), else all. */
    private static int[] kept(LoraAdapter a, LoraLayer l, boolean truncate) {
        boolean[] flags = a.rankPattern() == null || !truncate ? null : a.rankPattern().get(l.path());
        if (flags == null || l.r == LoraAdapter.kept(flags)) { // nothing to cut, or cut already (a loaded adapter)
            return java.util.stream.IntStream.range(0, l.r).toArray();
        }
        if (flags.length != l.r) {
            throw new IllegalStateException(l.path() + " has rank " + l.r + " but its rank pattern covers " + flags.length
                    + " triplets and keeps " + LoraAdapter.kept(flags));
        }
        return java.util.stream.IntStream.range(0, l.r).filter(i -> flags[i]).toArray();
    }

    /** The rows ({@code byRow}) or columns {@code keep} of an (n, m) matrix. */
    private static float[] pick(float[] x, int n, int m, int[] keep, boolean byRow) {
        float[] out = new float[keep.length * (byRow ? m : n)];
        for (int i = 0; i < keep.length; i++) {
            if (byRow) {
                System.arraycopy(x, keep[i] * m, out, i * m, m);
            } else {
                for (int o = 0; o < n; o++) {
                    out[o * keep.length + i] = x[o * m + keep[i]];
                }
            }
        }
        return out;
    }

    /**
     * PEFT's adapter_config.json, keys sorted as PEFT writes them: a LoRA config for {@code c}, or with
     * {@code ada} an AdaLoRA one ({@code r} is PEFT's unused default 8; {@code rank_pattern} the masks or null);
     * {@code target_modules} as PEFT writes it for a model of {@code nLayers} blocks ({@link LoraConfig#savedTargetModules}).
     */
    static byte[] configJson(LoraConfig c, int nLayers, AdaLoraConfig ada, Map<String, boolean[]> pattern, String baseModel)
            throws IOException {
        ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
        ObjectNode o = json.createObjectNode();
        ObjectNode ap = o.putObject("alpha_pattern");
        c.alphaPattern().forEach(ap::put);
        o.putNull("auto_mapping");
        o.put("base_model_name_or_path", baseModel);
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
        o.put("peft_type", ada == null ? "LORA" : "ADALORA");
        o.put("r", ada == null ? c.r() : 8);
        if (ada == null) {
            ObjectNode rp = o.putObject("rank_pattern");
            c.rankPattern().forEach(rp::put);
        } else if (pattern == null) {
            o.putNull("rank_pattern");
        } else {
            ObjectNode rp = o.putObject("rank_pattern");
            pattern.forEach((k, v) -> {
                ArrayNode flags = rp.putArray(k + ".lora_E");
                for (boolean f : v) {
                    flags.add(f);
                }
            });
        }
        o.putNull("revision");
        if (c.targetRegex() != null) {
            o.put("target_modules", c.targetRegex());
        } else {
            ArrayNode t = o.putArray("target_modules");
            c.savedTargetModules(nLayers).forEach(t::add);
        }
        o.put("task_type", "CAUSAL_LM");
        o.put("use_dora", c.useDora());
        o.put("use_rslora", c.useRslora());
        if (ada != null) {
            o.put("beta1", ada.beta1());
            o.put("beta2", ada.beta2());
            o.put("deltaT", ada.deltaT());
            o.put("init_r", ada.initR());
            o.put("orth_reg_weight", ada.orthRegWeight());
            o.put("target_r", ada.targetR());
            o.put("tfinal", ada.tfinal());
            o.put("tinit", ada.tinit());
            o.put("total_step", ada.totalStep());
        }
        ObjectNode sorted = json.createObjectNode(); // json.dumps(..., sort_keys=True)
        new TreeSet<String>(toList(o.fieldNames())).forEach(k -> sorted.set(k, o.get(k)));
        return json.writeValueAsBytes(sorted);
    }

    private static List<String> toList(Iterator<String> it) {
        List<String> l = new ArrayList<>();
        it.forEachRemaining(l::add);
        return l;
    }

    /**
     * What {@code adapter_config.json} says: the LoRA fields, and for AdaLoRA its settings and rank
     * pattern (module path → kept flags, or null).
     */
    public record Config(LoraConfig lora, AdaLoraConfig adaLora, Map<String, boolean[]> rankPattern, String baseModel) {
    }

    /** Reads {@code dir/adapter_config.json} (LoRA or AdaLoRA; unknown keys ignored); errors name the file and key. */
    public static Config readConfig(Path dir) {
        Path file = dir.resolve(CONFIG);
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ModelFormatException(file, "no such file (is " + dir + " a PEFT adapter directory?)");
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage());
        }
        return parseConfig(file, bytes);
    }

    /** The config in {@code bytes} (the contents of {@code file}, which errors name). */
    static Config parseConfig(Path file, byte[] bytes) {
        JsonNode n;
        try {
            n = new ObjectMapper().readTree(bytes);
        } catch (IOException e) {
            throw new ModelFormatException(file, "invalid JSON: " + e.getMessage());
        }
        if (n == null || !n.isObject()) {
            throw new ModelFormatException(file, "not a JSON object");
        }
        if (n.path("config").isObject() && !n.has("peft_type")) {
            throw new ModelFormatException(file, "an AdapterHub adapter config, not PEFT's (its weights would be "
                    + BottleneckAdapters.WEIGHTS + ")");
        }
        String type = n.path("peft_type").asText("LORA");
        if (!type.equals("LORA") && !type.equals("ADALORA")) {
            throw new ModelFormatException(file, "peft_type " + type + " is not a LoRA or AdaLoRA adapter");
        }
        boolean ada = type.equals("ADALORA");
        if (n.path("fan_in_fan_out").asBoolean(false)) {
            throw new ModelFormatException(file, "fan_in_fan_out: true is for GPT-2 style Conv1D weights, not Llama");
        }
        String rKey = ada ? "init_r" : "r";
        if (!ada && !n.hasNonNull("r") || n.has(rKey) && !n.get(rKey).canConvertToInt()) {
            throw new ModelFormatException(file, "missing or invalid key " + rKey);
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
        Map<String, Float> ap = new LinkedHashMap<>();
        if (!ada) {
            n.path("rank_pattern").fields().forEachRemaining(e -> rp.put(e.getKey(), e.getValue().asInt()));
            n.path("alpha_pattern").fields().forEachRemaining(e -> ap.put(e.getKey(), (float) e.getValue().asDouble()));
        }
        List<String> save = new ArrayList<>();
        n.path("modules_to_save").forEach(x -> save.add(x.asText()));
        JsonNode init = n.path("init_lora_weights");
        String initS = init.isBoolean() ? Boolean.toString(init.asBoolean()) : init.isTextual() ? init.asText() : "true";
        if (!initS.equals("gaussian") && !initS.equals("true") && !initS.equals("false") && !initS.startsWith("pissa")
                && !ResidualInit.mutatesBase(initS)) {
            initS = "true"; // other PEFT initialisations (loftq, eva, orthogonal, …) only matter before training
        }
        try {
            LoraConfig lora = new LoraConfig(ada ? n.path("init_r").asInt(12) : n.get("r").asInt(), (float) n.path("lora_alpha").asDouble(8),
                    (float) n.path("lora_dropout").asDouble(0), targets, regex, n.path("bias").asText("none"),
                    !ada && n.path("use_rslora").asBoolean(false), initS, layers, rp, ap, save, n.path("use_dora").asBoolean(false));
            String baseModel = n.path("base_model_name_or_path").isTextual() ? n.get("base_model_name_or_path").asText() : null;
            if (!ada) {
                return new Config(lora, null, null, baseModel);
            }
            AdaLoraConfig ac = new AdaLoraConfig(lora, lora.r(), n.path("target_r").asInt(8), n.path("tinit").asInt(0),
                    n.path("tfinal").asInt(0), n.path("deltaT").asInt(1), (float) n.path("beta1").asDouble(0.85),
                    (float) n.path("beta2").asDouble(0.85), (float) n.path("orth_reg_weight").asDouble(0.5),
                    n.path("total_step").canConvertToInt() ? n.get("total_step").asInt() : null);
            return new Config(lora, ac, rankPattern(n.path("rank_pattern"), file), baseModel);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, e.getMessage());
        }
    }

    /** AdaLoRA's rank_pattern {"<module>.lora_E[.<adapter>]": [bool × init_r]} as module path → flags; null when absent. */
    private static Map<String, boolean[]> rankPattern(JsonNode rp, Path file) {
        if (rp.isMissingNode() || rp.isNull()) {
            return null;
        }
        if (!rp.isObject()) {
            throw new ModelFormatException(file, "rank_pattern of an AdaLoRA adapter must be an object of boolean lists");
        }
        Map<String, boolean[]> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = rp.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String k = e.getKey().startsWith(PREFIX) ? e.getKey().substring(PREFIX.length()) : e.getKey();
            int at = k.lastIndexOf(".lora_E");
            if (at < 0 || !e.getValue().isArray()) {
                throw new ModelFormatException(file, "rank_pattern key " + e.getKey() + " is not <module>.lora_E with a list of booleans");
            }
            boolean[] flags = new boolean[e.getValue().size()];
            for (int i = 0; i < flags.length; i++) {
                JsonNode f = e.getValue().get(i);
                if (!f.isBoolean() && !f.isNumber()) {
                    throw new ModelFormatException(file, "rank_pattern " + e.getKey() + "[" + i + "] is " + f + ", not a boolean");
                }
                flags[i] = f.isBoolean() ? f.asBoolean() : f.asDouble() != 0;
            }
            out.put(k.substring(0, at), flags);
        }
        return out;
    }

    /**
     * Loads the adapter in {@code dir} for {@code base} (an AdapterHub bottleneck adapter when the directory holds
     * {@link BottleneckAdapters#WEIGHTS}, see {@link BottleneckAdapters#load}): every targeted module must have lora_A and
     * lora_B (and for AdaLoRA lora_E) of the right shapes, no tensor may be left over, and every
     * value must be finite.
     */
    public static LoraAdapter load(Path dir, BaseModel base, String name) {
        return load(dir, base, name, null);
    }

    /**
     * {@link #load(Path, BaseModel, String)}; an adapter saved unconverted after PiSSA or OLoRA
     * (init_lora_weights pissa, olora) applies to the residual of its base, so, as PEFT's
     * {@code from_pretrained} does, the base is decomposed again first and becomes that residual — or, with
     * {@code initial} (a checkpoint's {@link #INITIAL} directory), becomes {@code W − s·B₀A₀} of the initial
     * values stored there, exactly as in the original run. pissa_niter_N needs {@code initial}: its random
     * projection is not in the file. The tensors are read and checked before the base is touched.
     */
    public static LoraAdapter load(Path dir, BaseModel base, String name, Path initial) {
        if (BottleneckAdapters.isBottleneck(dir)) {
            return BottleneckAdapters.load(dir, base, name);
        }
        Config cfg = readConfig(dir);
        try (SafetensorsFile st = SafetensorsFile.open(dir.resolve(WEIGHTS))) {
            return load(cfg, dir.resolve(CONFIG), st, base, name, initial);
        }
    }

    /**
     * The adapter {@code cfg} (read from {@code configFile}) describes, filled from {@code st}, as
     * {@link #load(Path, BaseModel, String, Path)}. An adapter far larger than the values the file holds
     * is refused before it is allocated.
     */
    static LoraAdapter load(Config cfg, Path configFile, SafetensorsFile st, BaseModel base, String name, Path initial) {
        String init = cfg.lora().initLoraWeights();
        boolean residual = cfg.adaLora() == null && ResidualInit.mutatesBase(init);
        if (residual && initial == null && init.startsWith("pissa_niter_")) {
            throw new ModelFormatException(configFile, "init_lora_weights " + init + ": this adapter applies to the "
                    + "residual of a randomised SVD of its base, which the files do not record (PEFT would draw another one); "
                    + "save it converted for the original base (PEFT: save_pretrained(..., "
                    + "path_initial_model_for_weight_conversion=...), as lora4j train saves it)");
        }
        Path file = st.path();
        long stored = 0;
        for (TensorInfo t : st.tensors().values()) {
            stored += t.elementCount();
        }
        String what = file.getFileName() + " holds only " + stored + " values";
        LoraAdapter a;
        try {
            a = cfg.adaLora() == null ? LoraAdapter.uninitialised(name, cfg.lora(), base, stored, what)
                    : LoraAdapter.pruned(name, cfg.adaLora(), cfg.rankPattern(), base, stored, what);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(configFile, e.getMessage() + " in this base model");
        }
        LlamaConfig c = base.config();
        String w8 = cfg.adaLora() == null ? ".weight" : "";
        Set<String> unused = new HashSet<>(st.tensors().keySet());
        for (LoraLayer l : a.layers()) {
            String k = PREFIX + l.path();
            read(st, file, k + ".lora_A" + w8, new long[]{l.r, l.in}, l.a, unused);
            read(st, file, k + ".lora_B" + w8, new long[]{l.out, l.r}, l.b, unused);
            if (l.svd()) {
                read(st, file, k + ".lora_E", new long[]{l.r, 1}, l.e, unused);
            }
            l.b.load(hfRows(l.b.toArray(), l.module, c, l.r, false));
            if (l.bias != null) {
                read(st, file, k + ".lora_B.bias", new long[]{l.out}, l.bias, unused);
                l.bias.load(hfRows(l.bias.toArray(), l.module, c, 1, false));
            }
            if (l.magnitude != null) {
                read(st, file, k + ".lora_magnitude_vector", new long[]{l.out}, l.magnitude, unused);
                l.magnitude.load(hfRows(l.magnitude.toArray(), l.module, c, 1, false));
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
        if (residual) {
            try {
                if (initial != null) {
                    LoraAdapter i = load(initial, base, name);
                    if (!i.config().equals(withInit(a.config(), "true"))) {
                        throw new ModelFormatException(initial.resolve(CONFIG), "the initial adapter's config differs from "
                                + configFile + "'s (other than init_lora_weights)");
                    }
                    ResidualInit.subtract(a, base, i.store().values);
                    a.setInitialValues(i.store().values);
                } else {
                    a.setInitialValues(ResidualInit.decompose(a, base, 0));
                }
            } catch (IllegalArgumentException | IllegalStateException e) {
                throw new ModelFormatException(configFile, "init_lora_weights " + init + ": " + e.getMessage());
            }
        }
        return a;
    }

    static void read(SafetensorsFile st, Path file, String key, long[] shape, ParamStore.View dst, Set<String> unused) {
        read(st, file, key, shape, dst.values(), dst.off(), dst.len(), unused);
    }

    static void read(SafetensorsFile st, Path file, String key, long[] shape, float[] dst, Set<String> unused) {
        read(st, file, key, shape, dst, 0, dst.length, unused);
    }

    /** Reads tensor {@code key} of the given shape into {@code dst[off..off+len)}: present, F32/F16/BF16, finite. */
    static void read(SafetensorsFile st, Path file, String key, long[] shape, float[] dst, int off, int len, Set<String> unused) {
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
        Dequant.row(new Weight(key, t.type(), t.data(), 1, len), 0, dst, off);
        for (int i = 0; i < len; i++) {
            if (!Float.isFinite(dst[off + i])) {
                throw new ModelFormatException(file, "tensor " + key + " holds a non-finite value (" + dst[off + i] + ") at " + i);
            }
        }
        unused.remove(key);
    }

    /** Heads whose rows llama.cpp permuted: NH for q_proj, NKV for k_proj, else 0. */
    private static int heads(LinearModule m, LlamaConfig c) {
        return m == LinearModule.Q_PROJ ? c.nHeads() : m == LinearModule.K_PROJ ? c.nKvHeads() : 0;
    }

    /**
     * An (OUT, cols) matrix of projection {@code m} — its weight, lora_B, or an update — from the base's
     * row order to Hugging Face's ({@code toHf}) or back: q/k rows of a GGUF or llama2.c base are in
     * llama.cpp's per-head order; anything else is returned as it is.
     */
    static float[] hfRows(float[] x, LinearModule m, LlamaConfig c, int cols, boolean toHf) {
        int heads = c.ropeStyle() == LlamaConfig.RopeStyle.ADJACENT ? heads(m, c) : 0;
        return heads > 0 ? rows(x, m.outDim(c), cols, heads, !toHf) : x;
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
}

package io.lora4j.model.lora;

import io.lora4j.model.arch.LinearModule;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Weight;
import io.lora4j.model.arch.BaseModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.arch.Sublayer;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

/**
 * One named LoRA or AdaLoRA adapter injected into a base model: a {@link LoraLayer} for every
 * targeted projection, and full trainable copies of {@code modules_to_save} ({@code lm_head},
 * {@code embed_tokens}). The base model is never modified: the copies are new arrays.
 * <p>
 * A bottleneck adapter ({@link #bottleneckConfig()} not null) is the other kind this class holds, so that the
 * same registry, trainer, checkpoints and executors take it: a {@link BottleneckLayer} after each adapted
 * {@link Sublayer} of each block (AdapterHub's {@code mh_adapter} / {@code output_adapter}) and no LoRA layer;
 * its {@link #config()} is {@link #NO_LORA}.
 * <p>
 * An AdaLoRA adapter's layers are in SVD form (trainable lora_E); its {@link #rankPattern()} says
 * which of each module's init_r triplets the rank allocator keeps (PEFT's {@code rank_pattern}).
 */
public final class LoraAdapter {
    private final String name;
    private final LoraConfig config;
    private final AdaLoraConfig adaLora;
    private Map<String, boolean[]> rankPattern;
    private float[] initial;
    private final LoraLayer[][] layers; // [layer][module ordinal], null where not targeted
    private final List<LoraLayer> all;
    private final BottleneckConfig bottleneck;
    private final BottleneckLayer[][] bottlenecks; // [layer][sublayer ordinal], null where none
    private final List<BottleneckLayer> allBottlenecks;
    private final ParamStore store;
    /** (V, C) trainable output projection (modules_to_save), or null. */
    public final ParamStore.View lmHead;
    /** (V, C) trainable token embedding (modules_to_save), or null. */
    public final ParamStore.View embedTokens;

    /** The LoRA config of a bottleneck adapter, which has no LoRA layer: PEFT's defaults, read by nothing but dropout (0). */
    public static final LoraConfig NO_LORA = LoraConfig.of(8, 8, LoraConfig.ALL_LINEAR);

    /** The most parameters one adapter can have: its values are one Java array. */
    static final long MAX_PARAMETERS = Integer.MAX_VALUE - 8;

    /**
     * A fresh adapter initialised as {@code config.initLoraWeights()} says, as PEFT's {@code get_peft_model}
     * does. PiSSA and OLoRA ({@link ResidualInit}) decompose the base's weights and replace each adapted
     * projection of {@code base} with its residual; {@code seed} is then pissa_niter's
     * {@code torch.manual_seed}.
     */
    public LoraAdapter(String name, LoraConfig config, BaseModel base, long seed) {
        this(name, config, null, null, base, seed, true, MAX_PARAMETERS, "one Java array holds no more");
    }

    /** A fresh AdaLoRA adapter: init_r triplets per module, initialised as PEFT does, no rank pattern yet. */
    public LoraAdapter(String name, AdaLoraConfig config, BaseModel base, long seed) {
        this(name, config.lora(), config, null, base, seed, true, MAX_PARAMETERS, "one Java array holds no more");
    }

    /** Parameters an adapter being loaded may have beyond the values its file holds (small adapters then fail on the missing tensor). */
    static final long LOADING_SLACK = 1 << 20;

    /**
     * A LoRA adapter whose values a loader fills from a file that holds {@code stored} values (described
     * by {@code what}): nothing initialised (zeros), the base left alone. One whose config implies far
     * more parameters than the file holds (more than {@code stored + LOADING_SLACK}) is refused before
     * anything is allocated, as the file could not fill it.
     */
    static LoraAdapter uninitialised(String name, LoraConfig config, BaseModel base, long stored, String what) {
        return new LoraAdapter(name, config, null, null, base, 0, false, stored + LOADING_SLACK, what);
    }

    /**
     * An AdaLoRA adapter whose modules have the ranks {@code pattern} keeps (module path → flags over
     * init_r; a module without an entry keeps init_r), as PEFT loads a saved one; the loader fills the values.
     */
    static LoraAdapter pruned(String name, AdaLoraConfig config, Map<String, boolean[]> pattern, BaseModel base, long stored,
                              String what) {
        return new LoraAdapter(name, config.lora(), config, pattern, base, 0, true, stored + LOADING_SLACK, what);
    }

    private LoraAdapter(String name, LoraConfig config, AdaLoraConfig ada, Map<String, boolean[]> pattern, BaseModel base, long seed,
                        boolean initialise, long limit, String limitWhat) {
        this.name = name;
        this.config = config;
        this.adaLora = ada;
        this.rankPattern = pattern == null ? null : copy(pattern);
        this.bottleneck = null;
        this.bottlenecks = null;
        this.allBottlenecks = List.of();
        boolean residual = ResidualInit.mutatesBase(config.initLoraWeights());
        if (residual && ada != null) {
            throw new IllegalArgumentException("init_lora_weights " + config.initLoraWeights() + " is a LoRA initialisation; "
                    + "AdaLoRA initialises its triplets itself");
        }
        LlamaConfig c = base.config();
        layers = new LoraLayer[c.nLayers()][LinearModule.values().length];
        boolean head = config.modulesToSave().contains("lm_head");
        boolean embed = config.modulesToSave().contains("embed_tokens");
        // the store first: every targeted projection's tensors in the trainer's order, then the full copies
        List<int[]> shapes = new ArrayList<>(); // per targeted projection: layer, module ordinal, rank
        boolean bias = ada == null && config.bias().equals("lora_only");
        long total = 0; // counted in long before anything is allocated: a config may ask for any rank
        for (int l = 0; l < c.nLayers(); l++) {
            for (LinearModule m : LinearModule.values()) {
                String path = m.path(l);
                if (!config.targets(path)) {
                    continue;
                }
                int r = ada == null ? config.rankFor(path)
                        : pattern != null && pattern.containsKey(path) ? kept(pattern.get(path)) : ada.initR();
                total += (long) r * (m.inDim(c) + m.outDim(c) + (ada != null ? 1 : 0)) + (bias ? m.outDim(c) : 0)
                        + (config.useDora() ? m.outDim(c) : 0);
                shapes.add(new int[]{l, m.ordinal(), r});
            }
        }
        total += (head ? 1L : 0L) * c.vocabSize() * c.dim() + (embed ? 1L : 0L) * c.vocabSize() * c.dim();
        if (total > limit) {
            throw new IllegalArgumentException("the adapter would have " + total + " parameters (r " + config.r()
                    + (ada != null ? ", init_r " + ada.initR() : "") + " on " + shapes.size() + " modules"
                    + (head || embed ? " and " + config.modulesToSave() : "") + "), more than " + limit + ": " + limitWhat);
        }
        List<ParamStore.Spec> specs = new ArrayList<>();
        for (int[] sh : shapes) {
            LinearModule m = LinearModule.values()[sh[1]];
            specs.addAll(LoraLayer.specs(m.path(sh[0]), sh[2], m.inDim(c), m.outDim(c), bias, ada != null, config.useDora()));
        }
        if (head) {
            specs.add(new ParamStore.Spec("lm_head", Math.multiplyExact(c.vocabSize(), c.dim())));
        }
        if (embed) {
            specs.add(new ParamStore.Spec("embed_tokens", Math.multiplyExact(c.vocabSize(), c.dim())));
        }
        store = new ParamStore(specs);
        List<LoraLayer> list = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int[] sh : shapes) {
            LinearModule m = LinearModule.values()[sh[1]];
            String path = m.path(sh[0]);
            LoraLayer ll = new LoraLayer(m, sh[0], sh[2], m.inDim(c), m.outDim(c),
                    ada == null ? config.scalingFor(path) : ada.scaling(), store);
            if (initialise && !residual) {
                ll.initialise(config.initLoraWeights(), rnd);
                if (ll.dora()) {
                    ll.initialiseMagnitude(base.projection(sh[0], m));
                }
            }
            layers[sh[0]][sh[1]] = ll;
            list.add(ll);
        }
        if (pattern != null) {
            for (var e : pattern.entrySet()) {
                if (list.stream().noneMatch(x -> x.path().equals(e.getKey()))) {
                    throw new IllegalArgumentException("rank_pattern names " + e.getKey() + ", which the config does not target");
                }
                if (e.getValue().length != ada.initR()) {
                    throw new IllegalArgumentException("rank_pattern of " + e.getKey() + " has " + e.getValue().length
                            + " entries, init_r is " + ada.initR());
                }
            }
        }
        if (list.isEmpty() && config.modulesToSave().isEmpty()) {
            throw new IllegalArgumentException("target_modules " + (config.targetRegex() != null ? config.targetRegex()
                    : config.targetModules()) + " matches no module of the model");
        }
        all = Collections.unmodifiableList(list);
        lmHead = head ? store.view("lm_head") : null;
        embedTokens = embed ? store.view("embed_tokens") : null;
        if (head) {
            copy(base.output(), lmHead);
        }
        if (embed) {
            copy(base.tokenEmbedding(), embedTokens);
        }
        if (initialise && residual) {
            initial = ResidualInit.decompose(this, base, seed);
            System.arraycopy(initial, 0, store.values, 0, initial.length);
        }
    }

    /**
     * A fresh bottleneck adapter (AdapterHub's {@code add_adapter} with a {@code BnConfig}): a module after each
     * sublayer {@code config} adapts in every block not left out, initialised as its {@code init_weights} says.
     */
    public LoraAdapter(String name, BottleneckConfig config, BaseModel base, long seed) {
        this(name, config, base, seed, true, MAX_PARAMETERS, "one Java array holds no more");
    }

    /** A bottleneck adapter whose values a loader fills (see {@link #uninitialised(String, LoraConfig, BaseModel, long, String)}). */
    static LoraAdapter uninitialised(String name, BottleneckConfig config, BaseModel base, long stored, String what) {
        return new LoraAdapter(name, config, base, 0, false, stored + LOADING_SLACK, what);
    }

    private LoraAdapter(String name, BottleneckConfig config, BaseModel base, long seed, boolean initialise, long limit,
                        String limitWhat) {
        this.name = name;
        this.config = NO_LORA;
        this.adaLora = null;
        this.bottleneck = config;
        LlamaConfig c = base.config();
        int C = c.dim();
        layers = new LoraLayer[c.nLayers()][LinearModule.values().length];
        all = List.of();
        lmHead = null;
        embedTokens = null;
        for (int l : config.leaveOut()) {
            if (l < 0 || l >= c.nLayers()) {
                throw new IllegalArgumentException("leave_out names layer " + l + "; the model has layers 0.." + (c.nLayers() - 1));
            }
        }
        List<ParamStore.Spec> specs = new ArrayList<>();
        long total = 0;
        for (int l = 0; l < c.nLayers(); l++) {
            for (Sublayer s : Sublayer.values()) {
                if (adapts(config, l, s)) {
                    int d = config.width(l, C);
                    total += 2L * C * d + d + C;
                    specs.addAll(BottleneckLayer.specs(l, s, C, d));
                }
            }
        }
        if (specs.isEmpty()) {
            throw new IllegalArgumentException("leave_out " + config.leaveOut() + " leaves out every layer: the adapter would have no module");
        }
        if (total > limit) {
            throw new IllegalArgumentException("the adapter would have " + total + " parameters (reduction_factor "
                    + config.reductionFactor() + "), more than " + limit + ": " + limitWhat);
        }
        store = new ParamStore(specs);
        bottlenecks = new BottleneckLayer[c.nLayers()][Sublayer.values().length];
        List<BottleneckLayer> list = new ArrayList<>();
        SplittableRandom rnd = new SplittableRandom(seed);
        for (int l = 0; l < c.nLayers(); l++) {
            for (Sublayer s : Sublayer.values()) {
                if (adapts(config, l, s)) {
                    BottleneckLayer b = new BottleneckLayer(l, s, C, config.width(l, C), store);
                    if (initialise) {
                        b.initialise(config.initWeights(), rnd);
                    }
                    bottlenecks[l][s.ordinal()] = b;
                    list.add(b);
                }
            }
        }
        allBottlenecks = Collections.unmodifiableList(list);
    }

    private static boolean adapts(BottleneckConfig config, int l, Sublayer s) {
        return config.adapts(l) && (s == Sublayer.ATTENTION ? config.mhAdapter() : config.outputAdapter());
    }

    /** Refuses a bottleneck adapter for an operation ({@code what}) on LoRA weights, such as merging or combining. */
    public void requireLora(String what) {
        if (bottleneck != null) {
            throw new IllegalArgumentException("adapter " + name + " is a bottleneck adapter: " + what + " applies to LoRA "
                    + "adapters only (its nonlinearity cannot be folded into a weight, so it always runs unmerged)");
        }
    }

    /** A bottleneck adapter's settings, or null for a LoRA or AdaLoRA adapter. */
    public BottleneckConfig bottleneckConfig() {
        return bottleneck;
    }

    /** The bottleneck module after sublayer {@code s} of block {@code l}, or null. */
    public BottleneckLayer bottleneck(int l, Sublayer s) {
        return bottlenecks == null ? null : bottlenecks[l][s.ordinal()];
    }

    /** Every bottleneck module, block by block (empty for a LoRA adapter). */
    public List<BottleneckLayer> bottlenecks() {
        return allBottlenecks;
    }

    /**
     * The values PiSSA or OLoRA initialised this adapter with (A₀, B₀ at their store offsets), whose
     * {@code s·B₀A₀} was taken out of the base; null for every other adapter. Saving converts with them
     * (PEFT's {@code path_initial_model_for_weight_conversion}); checkpoints keep them.
     */
    public float[] initialValues() {
        return initial;
    }

    void setInitialValues(float[] v) {
        if (v.length != store.size()) {
            throw new IllegalArgumentException("initial values of " + v.length + " elements for a store of " + store.size());
        }
        initial = v;
    }

    /** The dequantized rows of {@code w} into the view. */
    private static void copy(Weight w, ParamStore.View into) {
        for (int r = 0; r < w.rows(); r++) {
            Dequant.row(w, r, into.values(), into.off() + r * w.cols());
        }
    }

    /** The adapter's tensors, their gradients and optimizer moments. */
    public ParamStore store() {
        return store;
    }

    public String name() {
        return name;
    }

    /** The LoRA fields (for AdaLoRA: those of {@link AdaLoraConfig#lora()}, r = init_r). */
    public LoraConfig config() {
        return config;
    }

    /** The AdaLoRA settings, or null for a LoRA adapter. */
    public AdaLoraConfig adaLora() {
        return adaLora;
    }

    /**
     * PEFT's {@code rank_pattern}: module path (e.g. {@code model.layers.0.self_attn.q_proj}) → which
     * of its init_r triplets are kept; null before the first allocation (and for LoRA).
     */
    public Map<String, boolean[]> rankPattern() {
        return rankPattern == null ? null : Collections.unmodifiableMap(rankPattern);
    }

    /** Sets the rank pattern (the rank allocator's result); AdaLoRA only. */
    public void setRankPattern(Map<String, boolean[]> pattern) {
        if (adaLora == null) {
            throw new IllegalStateException("adapter " + name + " is not an AdaLoRA adapter");
        }
        rankPattern = pattern == null ? null : copy(pattern);
    }

    /** Triplets kept by a rank-pattern entry. */
    public static int kept(boolean[] flags) {
        int n = 0;
        for (boolean f : flags) {
            n += f ? 1 : 0;
        }
        return n;
    }

    private static Map<String, boolean[]> copy(Map<String, boolean[]> m) {
        Map<String, boolean[]> c = new LinkedHashMap<>();
        m.forEach((k, v) -> c.put(k, v.clone()));
        return c;
    }

    /** The adapter of projection {@code m} in block {@code l}, or null. */
    public LoraLayer get(int l, LinearModule m) {
        return layers[l][m.ordinal()];
    }

    public List<LoraLayer> layers() {
        return all;
    }

    public long trainableParameters() {
        long n = 0;
        for (LoraLayer l : all) {
            n += l.parameterCount();
        }
        for (BottleneckLayer b : allBottlenecks) {
            n += b.parameterCount();
        }
        n += lmHead == null ? 0 : lmHead.len();
        n += embedTokens == null ? 0 : embedTokens.len();
        return n;
    }

    /** PEFT's print_trainable_parameters line. */
    public String trainableParametersLine(long baseParameters) {
        long trainable = trainableParameters();
        long total = baseParameters + trainable;
        return String.format(java.util.Locale.ROOT, "trainable params: %,d || all params: %,d || trainable%%: %.4f", trainable, total,
                100.0 * trainable / total);
    }
}

package io.lora4j.model.lora;

import io.lora4j.model.arch.BaseModel;
import io.lora4j.model.arch.LlamaConfig;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * PEFT's {@code LoraModel.add_weighted_adapter} (peft/tuners/lora/model.py, 0.21): a new adapter from
 * weighted adapters. Its config is the first adapter's with {@code r = lora_alpha =} the new rank, the
 * union of the target modules (regexes joined as {@code (a)|(b)}) and no rank or alpha patterns, so its
 * scaling is 1 (√r with the first adapter's use_rslora, as in PEFT). One adapter is always combined
 * {@code linear}. Per adapted module, with the adapters that adapt it (w weight, s scaling; AdaLoRA's E
 * folded into A, which PEFT's AdaLoRA cannot combine at all):
 * <ul>
 *   <li>{@code linear}, {@code ties}, {@code dare_linear}, {@code dare_ties}, {@code magnitude_prune}
 *       (equal ranks): the {@link TaskMerging} function applied to the A's with weights sign(w·s)·√|w·s|
 *       and to the B's with weights √|w·s|: a combination of factors, not of updates;</li>
 *   <li>{@code cat}: A stacks w·s·Aᵢ, B stacks Bᵢ; the rank is the sum of the adapters' ranks
 *       (each adapter's r, or its largest rank_pattern value), zero-padded where a module's ranks sum to less;
 *       ΔW = Σ w·s·BᵢAᵢ exactly;</li>
 *   <li>{@code svd}, {@code ties_svd}, {@code dare_linear_svd}, {@code dare_ties_svd},
 *       {@code magnitude_prune_svd}: the function applied to the updates ΔWᵢ = s·BᵢAᵢ, then the leading
 *       {@code svd_rank} (default: the largest adapter rank) singular triplets, B = U·S and A = Vᵀ, optionally
 *       clamped to ±the {@code svd_clamp} quantile of all their values (torch.quantile, linear).</li>
 * </ul>
 * DARE's masks are drawn from {@link TorchRandom}: with seed S they are the masks PEFT draws after
 * {@code torch.manual_seed(S)} (the draws of its new adapter's layer initialisation skipped first, as they
 * happen in PEFT before the combination). Singular vectors are defined up to sign; lora4j's sign (see
 * {@link Linalg#svd}) can differ from LAPACK's per triplet, which changes nothing but a clamp's quantile.
 * Everything is computed in Hugging Face row order (q/k lora_B rows of a GGUF base are permuted first),
 * so the random masks fall on the elements PEFT's fall on.
 */
public final class WeightedAdapters {
    /** PEFT's combination types. */
    public static final List<String> TYPES = List.of("svd", "linear", "cat", "ties", "ties_svd", "dare_ties", "dare_linear",
            "dare_ties_svd", "dare_linear_svd", "magnitude_prune", "magnitude_prune_svd");
    private static final Set<String> FACTOR_TYPES = Set.of("linear", "ties", "dare_linear", "dare_ties", "magnitude_prune");

    private WeightedAdapters() {
    }

    /**
     * add_weighted_adapter's options besides the adapters, weights and name.
     *
     * @param combinationType    one of {@link #TYPES}
     * @param svdRank            rank of the svd types' result; 0: the largest adapter rank
     * @param svdClamp           quantile clamping the svd types' factors, or null
     * @param density            fraction kept by ties, dare_* and magnitude_prune (required by them)
     * @param majoritySignMethod "total" or "frequency" (ties, dare_ties)
     * @param seed               DARE's torch.manual_seed
     */
    public record Options(String combinationType, int svdRank, Double svdClamp, Double density, String majoritySignMethod,
                          long seed) {
        public Options {
            if (!TYPES.contains(combinationType)) {
                throw new IllegalArgumentException("combination type must be one of " + String.join(", ", TYPES) + ", got '"
                        + combinationType + "'");
            }
            if (svdRank < 0) {
                throw new IllegalArgumentException("svd_rank must be >= 1, got " + svdRank);
            }
            if (svdClamp != null && !(svdClamp >= 0 && svdClamp <= 1)) {
                throw new IllegalArgumentException("svd_clamp is a quantile in [0, 1], got " + svdClamp);
            }
            if (!majoritySignMethod.equals("total") && !majoritySignMethod.equals("frequency")) {
                throw new IllegalArgumentException("majority_sign_method must be total or frequency, got '" + majoritySignMethod + "'");
            }
            if (density != null && !(density >= 0)) {
                throw new IllegalArgumentException("density should be >= 0, got " + density);
            }
        }

        /** PEFT's defaults: svd_rank None, no clamp, no density, majority sign "total", seed 0. */
        public static Options of(String combinationType) {
            return new Options(combinationType, 0, null, null, "total", 0);
        }
    }

    /** {@link #combine(BaseModel, List, List, String, Options)} with PEFT's defaults and {@code svdRank} (0: default). */
    public static LoraAdapter combine(BaseModel base, List<LoraAdapter> adapters, List<Float> weights, String name,
                                      String combination, int svdRank) {
        return combine(base, adapters, weights, name, new Options(combination, svdRank, null, null, "total", 0));
    }

    public static LoraAdapter combine(BaseModel base, List<LoraAdapter> adapters, List<Float> weights, String name, Options o) {
        if (adapters.isEmpty() || adapters.size() != weights.size()) {
            throw new IllegalArgumentException("add_weighted_adapter needs as many weights as adapters (and at least one)");
        }
        Set<String> saved = new HashSet<>();
        for (LoraAdapter a : adapters) {
            a.requireLora("combining");
            LoraConfig c = a.config();
            if (ResidualInit.mutatesBase(c.initLoraWeights())) {
                throw new IllegalArgumentException("adapter " + a.name() + " (init_lora_weights " + c.initLoraWeights()
                        + ") applies to a residual of the base, not to the base: it cannot be combined with other adapters; "
                        + "convert it to a plain LoRA adapter first (as lora4j saves them)");
            }
            if (c.useDora()) {
                throw new IllegalArgumentException("adapter " + a.name() + " is a DoRA adapter: combining mixes lora_A and lora_B "
                        + "only (PEFT's add_weighted_adapter leaves the new adapter's magnitude vectors at the base's row norms, "
                        + "whatever the inputs' were), so DoRA adapters are not combined; merge them into the model instead");
            }
            for (LoraLayer l : a.layers()) {
                if (l.bias != null) {
                    throw new IllegalArgumentException("adapter " + a.name() + " has lora_B biases; they cannot be combined");
                }
            }
            for (String m : c.modulesToSave()) {
                if (!saved.add(m)) {
                    throw new IllegalArgumentException("Cannot add weighted adapters if they target the same module with "
                            + "modules_to_save (" + m + ")");
                }
            }
        }
        String type = adapters.size() == 1 ? "linear" : o.combinationType();
        if (!List.of("linear", "cat", "svd").contains(type) && o.density() == null) {
            throw new IllegalArgumentException(type + " needs a density (the fraction of values kept)");
        }
        int[] ranks = adapters.stream().mapToInt(WeightedAdapters::configRank).toArray();
        int rank;
        if (FACTOR_TYPES.contains(type)) {
            if (Arrays.stream(ranks).distinct().count() != 1) {
                throw new IllegalArgumentException("All adapters must have the same r value when using combination_type linear, "
                        + "ties, dare_ties or dare_linear (got " + Arrays.toString(ranks) + "); use cat or svd");
            }
            rank = ranks[0];
        } else if (type.equals("cat")) {
            rank = Arrays.stream(ranks).sum();
        } else {
            rank = o.svdRank() > 0 ? o.svdRank() : Arrays.stream(ranks).max().getAsInt();
        }
        LoraConfig first = adapters.get(0).config();
        LoraConfig cfg = new LoraConfig(rank, rank, first.loraDropout(), unionTargets(adapters), unionRegex(adapters),
                first.bias(), first.useRslora(), first.initLoraWeights(), first.layersToTransform(), Map.of(), Map.of(),
                first.modulesToSave());
        LoraAdapter out = new LoraAdapter(name, cfg, base, 0);
        LlamaConfig c = base.config();
        TorchRandom rnd = type.startsWith("dare") ? new TorchRandom(o.seed()) : null;
        if (rnd != null) { // the draws of PEFT's inject_adapter for the new adapter, before any mask
            for (LoraLayer t : out.layers()) {
                rnd.skip((long) t.r * t.in); // nn.Linear(in, r)
                rnd.skip((long) t.out * t.r); // nn.Linear(r, out)
                switch (cfg.initLoraWeights()) {
                    case "true" -> rnd.skip((long) t.r * t.in); // kaiming_uniform_ of lora_A
                    case "gaussian" -> rnd.skipRandn(t.r * t.in); // normal_ of lora_A
                    default -> {
                    }
                }
            }
        }
        for (LoraLayer t : out.layers()) {
            List<LoraLayer> src = new ArrayList<>();
            List<Float> w = new ArrayList<>();
            for (int k = 0; k < adapters.size(); k++) {
                LoraLayer l = adapters.get(k).get(t.layer, t.module);
                if (l != null) {
                    src.add(l);
                    w.add(weights.get(k));
                }
            }
            if (src.isEmpty()) {
                throw new IllegalArgumentException("no adapter adapts " + t.path() + ", which the combined config targets");
            }
            float[][] ab = switch (type) {
                case "cat" -> cat(t, src, w, c);
                case "linear", "ties", "dare_linear", "dare_ties", "magnitude_prune" -> factors(type, t, src, w, c, o, rnd);
                default -> svd(type, t, src, w, c, o, rnd);
            };
            t.a.load(ab[0]);
            t.b.load(toBase(ab[1], t, c));
        }
        return out;
    }

    /** PEFT's rank of an adapter: r, or the largest of r and its rank_pattern values. */
    private static int configRank(LoraAdapter a) {
        int r = a.config().r();
        for (int v : a.config().rankPattern().values()) {
            r = Math.max(r, v);
        }
        return r;
    }

    private static List<String> unionTargets(List<LoraAdapter> adapters) {
        boolean regex = adapters.get(0).config().targetRegex() != null;
        for (LoraAdapter a : adapters) {
            if ((a.config().targetRegex() != null) != regex) {
                throw new IllegalArgumentException("all adapter configs should follow the same target modules type. Combining "
                        + "adapters with `target_modules` type being a mix of list/set and string is not supported.");
            }
        }
        Set<String> u = new LinkedHashSet<>();
        for (LoraAdapter a : adapters) {
            u.addAll(a.config().targetModules());
        }
        return List.copyOf(u);
    }

    private static String unionRegex(List<LoraAdapter> adapters) {
        if (adapters.get(0).config().targetRegex() == null) {
            return null;
        }
        return String.join("|", adapters.stream().map(a -> "(" + a.config().targetRegex() + ")").toList());
    }

    /** A (r, IN) with AdaLoRA's E folded into its rows. */
    private static float[] foldedA(LoraLayer l) {
        float[] a = l.a.toArray();
        for (int j = 0; j < l.r; j++) {
            float e = l.e(j);
            for (int i = 0; i < l.in; i++) {
                a[j * l.in + i] *= e;
            }
        }
        return a;
    }

    /** lora_B (OUT, r) in Hugging Face row order. */
    private static float[] hfB(LoraLayer l, LlamaConfig c) {
        return PeftAdapters.hfRows(l.b.toArray(), l.module, c, l.r, true);
    }

    private static float[] toBase(float[] hf, LoraLayer t, LlamaConfig c) {
        return PeftAdapters.hfRows(hf, t.module, c, t.r, false);
    }

    private static float[][] cat(LoraLayer t, List<LoraLayer> src, List<Float> w, LlamaConfig c) {
        float[] ta = new float[t.a.len()], tb = new float[t.b.len()];
        int row = 0;
        for (int k = 0; k < src.size(); k++) {
            LoraLayer s = src.get(k);
            float[] a = foldedA(s), b = hfB(s, c);
            float wk = w.get(k);
            for (int j = 0; j < s.r; j++) {
                for (int i = 0; i < t.in; i++) {
                    ta[(row + j) * t.in + i] = a[j * s.in + i] * wk * s.scaling;
                }
                for (int o = 0; o < t.out; o++) {
                    tb[o * t.r + row + j] = b[o * s.r + j];
                }
            }
            row += s.r;
        }
        return new float[][]{ta, tb};
    }

    /** The factor methods: the A's and B's combined separately, A's first (DARE draws in that order). */
    private static float[][] factors(String type, LoraLayer t, List<LoraLayer> src, List<Float> w, LlamaConfig c, Options o,
                                     TorchRandom rnd) {
        int r = src.get(0).r;
        for (LoraLayer s : src) {
            if (s.r != r || r > t.r) {
                throw new IllegalArgumentException(t.path() + ": the adapters' ranks differ in this module (" + s.r + " and " + r
                        + "); " + type + " needs equal ranks; use cat or svd");
            }
        }
        float[] wa = new float[src.size()], wb = new float[src.size()];
        List<float[]> as = new ArrayList<>(), bs = new ArrayList<>();
        for (int k = 0; k < src.size(); k++) {
            double ws = (double) w.get(k) * src.get(k).scaling;
            wa[k] = (float) (Math.sqrt(Math.abs(ws)) * (ws >= 0 ? 1 : -1));
            wb[k] = (float) Math.sqrt(Math.abs(ws));
            as.add(foldedA(src.get(k)));
            bs.add(hfB(src.get(k), c));
        }
        float[] a = merge(type, as, wa, o, rnd), b = merge(type, bs, wb, o, rnd);
        // a module whose rank is below the new rank (an AdaLoRA adapter's pruned module) is zero-padded
        float[] ta = new float[t.a.len()], tb = new float[t.b.len()];
        System.arraycopy(a, 0, ta, 0, a.length);
        for (int row = 0; row < t.out; row++) {
            System.arraycopy(b, row * r, tb, row * t.r, r);
        }
        return new float[][]{ta, tb};
    }

    /** One of PEFT's merge_utils functions by combination type (the _svd suffix dropped). */
    private static float[] merge(String type, List<float[]> t, float[] w, Options o, TorchRandom rnd) {
        return switch (type.replace("_svd", "")) {
            case "linear", "svd" -> TaskMerging.taskArithmetic(t, w);
            case "ties" -> TaskMerging.ties(t, w, o.density(), o.majoritySignMethod());
            case "dare_linear" -> TaskMerging.dareLinear(t, w, o.density(), rnd);
            case "dare_ties" -> TaskMerging.dareTies(t, w, o.density(), o.majoritySignMethod(), rnd);
            case "magnitude_prune" -> TaskMerging.magnitudePrune(t, w, o.density());
            default -> throw new IllegalStateException(type);
        };
    }

    /** The update s·B·A (OUT, IN) of one adapter in Hugging Face row order, in float as PEFT's get_delta_weight. */
    private static float[] delta(LoraLayer l, LlamaConfig c) {
        float[] a = foldedA(l), b = hfB(l, c), d = new float[l.out * l.in];
        for (int o = 0; o < l.out; o++) {
            for (int i = 0; i < l.in; i++) {
                double s = 0;
                for (int j = 0; j < l.r; j++) {
                    s += (double) b[o * l.r + j] * a[j * l.in + i];
                }
                d[o * l.in + i] = (float) s * l.scaling;
            }
        }
        return d;
    }

    private static float[][] svd(String type, LoraLayer t, List<LoraLayer> src, List<Float> w, LlamaConfig c, Options o,
                                 TorchRandom rnd) {
        int k = Math.min(t.r, Math.min(t.out, t.in));
        int sum = src.stream().mapToInt(l -> l.r).sum();
        Linalg.Svd s;
        if (type.equals("svd") && sum <= Math.min(t.out, t.in)) {
            // ΔW = Σ w·s·BᵢAᵢ = Bc·Ac exactly: its SVD from the factors, O((OUT + IN)·R²) instead of a dense one
            double[] bc = new double[t.out * sum], ac = new double[sum * t.in];
            int col = 0;
            for (int q = 0; q < src.size(); q++) {
                LoraLayer l = src.get(q);
                float[] a = foldedA(l), b = hfB(l, c);
                for (int j = 0; j < l.r; j++) {
                    for (int row = 0; row < t.out; row++) {
                        bc[row * sum + col + j] = (double) w.get(q) * l.scaling * b[row * l.r + j];
                    }
                    for (int i = 0; i < t.in; i++) {
                        ac[(col + j) * t.in + i] = a[j * l.in + i];
                    }
                }
                col += l.r;
            }
            s = Linalg.svdOfProduct(bc, ac, t.out, sum, t.in, Math.min(k, sum)); // ΔW has no more than R triplets
            k = s.k();
        } else {
            List<float[]> deltas = new ArrayList<>();
            float[] wt = new float[src.size()];
            for (int q = 0; q < src.size(); q++) {
                deltas.add(delta(src.get(q), c));
                wt[q] = w.get(q);
            }
            float[] dw = merge(type, deltas, wt, o, rnd);
            double[] m = new double[dw.length];
            for (int i = 0; i < m.length; i++) {
                m[i] = dw[i];
            }
            s = Linalg.svd(m, t.out, t.in, k);
        }
        float[] a = new float[t.a.len()], b = new float[t.b.len()];
        for (int j = 0; j < k; j++) { // B = U·S, A = Vᵀ; triplets beyond min(OUT, IN) stay zero
            for (int row = 0; row < t.out; row++) {
                b[row * t.r + j] = (float) (s.u()[row * k + j] * s.s()[j]);
            }
            for (int i = 0; i < t.in; i++) {
                a[j * t.in + i] = (float) s.vt()[j * t.in + i];
            }
        }
        if (o.svdClamp() != null) {
            clamp(b, a, o.svdClamp());
        }
        return new float[][]{a, b};
    }

    /**
     * PEFT's svd_clamp: {@code hi = torch.quantile(cat(U.flatten(), Vh.flatten()), q)} (linear
     * interpolation, in float), then both factors clamped to [−hi, hi].
     */
    public static void clamp(float[] u, float[] vh, double q) {
        float[] all = new float[u.length + vh.length];
        System.arraycopy(u, 0, all, 0, u.length);
        System.arraycopy(vh, 0, all, u.length, vh.length);
        Arrays.sort(all);
        float rank = (float) q * (all.length - 1);
        int below = (int) Math.floor(rank), above = (int) Math.ceil(rank);
        float weight = rank - below, lo = all[below], up = all[above];
        float hi = weight < 0.5f ? lo + weight * (up - lo) : up - (up - lo) * (1 - weight); // torch.lerp
        for (float[] x : new float[][]{u, vh}) {
            for (int i = 0; i < x.length; i++) {
                x[i] = Math.min(hi, Math.max(-hi, x[i])); // torch.clamp(min=-hi, max=hi): max wins if hi < 0
            }
        }
    }
}

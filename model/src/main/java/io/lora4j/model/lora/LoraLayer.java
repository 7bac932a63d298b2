package io.lora4j.model.lora;

import io.lora4j.kernels.Dora;
import io.lora4j.kernels.Weight;
import io.lora4j.model.arch.LinearModule;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * The adapter of one projection: {@code y = W x + s · (B diag(e) (A x) + bias)}, with A (r, IN) and
 * B (OUT, r) as PEFT stores them ({@code lora_A.weight}, {@code lora_B.weight}) and their gradients.
 * For LoRA the per-rank scale e is 1 and frozen ({@code de} is null); for AdaLoRA (SVD form) e holds
 * the trainable singular values {@code lora_E}, A the right and B the left singular vectors.
 * With DoRA, {@code y = (m / ‖W + s·B A‖) ⊙ (W x + s·B A x)}: a trainable magnitude m per output row
 * over the row norms of the adapted weight ({@link io.lora4j.kernels.Dora}).
 * Glossary: IN, OUT the projection's widths, r rank, s scaling, e (r) per-rank scale.
 */
public final class LoraLayer {
    public final LinearModule module;
    public final int layer;
    public final int r;
    public final int in;
    public final int out;
    public final float scaling;
    /** (r, IN) lora_A. */
    public final ParamStore.View a;
    /** (OUT, r) lora_B. */
    public final ParamStore.View b;
    /** (r) the singular values lora_E (AdaLoRA), or null for LoRA, whose e is a frozen 1. */
    public final ParamStore.View e;
    /** (OUT) lora_B.bias with bias="lora_only", else null. */
    public final ParamStore.View bias;
    /** (OUT) DoRA's magnitude m ({@code lora_magnitude_vector}), or null for LoRA and AdaLoRA. */
    public final ParamStore.View magnitude;

    /** The last row norms computed, and what they were computed from. */
    private record Norms(Weight w, float s, float[] ab, float[] norm) {
    }

    private Norms norms;

    /** A layer over its tensors in the adapter's store ({@link #specs} names and sizes them). */
    LoraLayer(LinearModule module, int layer, int r, int in, int out, float scaling, ParamStore store) {
        this.module = module;
        this.layer = layer;
        this.r = r;
        this.in = in;
        this.out = out;
        this.scaling = scaling;
        String p = module.path(layer);
        a = store.view(p + ".lora_A");
        b = store.view(p + ".lora_B");
        e = has(store, p + ".lora_E") ? store.view(p + ".lora_E") : null;
        bias = has(store, p + ".lora_B.bias") ? store.view(p + ".lora_B.bias") : null;
        magnitude = has(store, p + ".lora_magnitude_vector") ? store.view(p + ".lora_magnitude_vector") : null;
    }

    private static boolean has(ParamStore s, String name) {
        return s.views().stream().anyMatch(v -> v.name().equals(name));
    }

    /**
     * The tensors of one adapted projection in the trainer's order: lora_A, lora_E (AdaLoRA's SVD form),
     * lora_B, lora_magnitude_vector (DoRA), lora_B.bias (with {@code withBias}).
     */
    static List<ParamStore.Spec> specs(String path, int r, int in, int out, boolean withBias, boolean svd, boolean dora) {
        List<ParamStore.Spec> s = new ArrayList<>();
        s.add(new ParamStore.Spec(path + ".lora_A", Math.multiplyExact(r, in)));
        if (svd) {
            s.add(new ParamStore.Spec(path + ".lora_E", r));
        }
        s.add(new ParamStore.Spec(path + ".lora_B", Math.multiplyExact(out, r)));
        if (dora) {
            s.add(new ParamStore.Spec(path + ".lora_magnitude_vector", out));
        }
        if (withBias) {
            s.add(new ParamStore.Spec(path + ".lora_B.bias", out));
        }
        return s;
    }

    /** Whether this is a DoRA branch (it has a magnitude vector). */
    public boolean dora() {
        return magnitude != null;
    }

    /**
     * The row norms {@code ‖W[o] + s·B[o]·A‖} of the adapted weight (OUT; W dequantized: QDoRA), as PEFT's
     * {@code get_weight_norm} computes them. Cached: computed again only when W (another matrix), s, A or B
     * differs from the last call's, so inference pays for them once per adapter change and training once per
     * optimizer step. The array returned is not to be modified.
     */
    public synchronized float[] weightNorm(Weight w, float s) {
        Norms n = norms;
        float[] p = values();
        if (n != null && n.w == w && n.s == s && Arrays.equals(p, a.off(), a.off() + a.len(), n.ab, 0, a.len())
                && Arrays.equals(p, b.off(), b.off() + b.len(), n.ab, a.len(), a.len() + b.len())) {
            return n.norm;
        }
        if (w.rows() != out || w.cols() != in) {
            throw new IllegalArgumentException(path() + ": a " + w.rows() + "×" + w.cols() + " weight for a " + out + "×" + in
                    + " adapter");
        }
        float[] ab = new float[a.len() + b.len()];
        System.arraycopy(p, a.off(), ab, 0, a.len());
        System.arraycopy(p, b.off(), ab, a.len(), b.len());
        float[] norm = new float[out];
        Dora.norms(norm, w, p, a.off(), b.off(), s, in, out, r);
        norms = new Norms(w, s, ab, norm);
        return norm;
    }

    /** PEFT's DoRA initialisation: m = ‖W + s·B A‖ per row, so that the adapted projection starts as LoRA's would. */
    void initialiseMagnitude(Weight w) {
        magnitude.load(weightNorm(w, scaling).clone());
    }

    /** Whether this is AdaLoRA's SVD form with a trainable lora_E. */
    public boolean svd() {
        return e != null;
    }

    /** e_j: lora_E for AdaLoRA, 1 for LoRA. */
    public float e(int j) {
        return e == null ? 1f : e.get(j);
    }

    /** Where e starts in the store, or −1 for LoRA's frozen e = 1 (the kernels' convention). */
    public int eOff() {
        return e == null ? -1 : e.off();
    }

    /** The store's flat values (A, E, B, bias at their offsets), for the kernels. */
    public float[] values() {
        return a.values();
    }

    /** The store's flat gradients, at the same offsets. */
    public float[] grads() {
        return a.grads();
    }

    /**
     * PEFT's initialisation: "true" → A kaiming-uniform(a=√5), i.e. U(−1/√IN, 1/√IN), B = 0;
     * "gaussian" → A ~ N(0, (1/r)²), B = 0; "false" → both random (a test-only setting in PEFT).
     * AdaLoRA (peft/tuners/adalora/layer.py {@code reset_lora_parameters}): "true" or "gaussian" →
     * E = 0, A and B ~ N(0, 0.02²); "false" → A, E and B ~ N(0, 1) (torch.randn, left as created).
     */
    public void initialise(String how, SplittableRandom rnd) {
        float[] w = values();
        if (svd()) {
            double sd = how.equals("false") ? 1.0 : 0.02;
            for (ParamStore.View m : new ParamStore.View[]{a, b}) {
                for (int i = 0; i < m.len(); i++) {
                    w[m.off() + i] = (float) (gaussian(rnd) * sd);
                }
            }
            for (int i = 0; i < e.len(); i++) {
                w[e.off() + i] = how.equals("false") ? (float) gaussian(rnd) : 0f;
            }
            return;
        }
        double bound = 1.0 / Math.sqrt(in);
        switch (how) {
            case "true" -> {
                for (int i = 0; i < a.len(); i++) {
                    w[a.off() + i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
                }
            }
            case "gaussian" -> {
                for (int i = 0; i < a.len(); i++) {
                    w[a.off() + i] = (float) (gaussian(rnd) / r);
                }
            }
            case "false" -> {
                for (int i = 0; i < a.len(); i++) {
                    w[a.off() + i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
                }
                double bb = 1.0 / Math.sqrt(r);
                for (int i = 0; i < b.len(); i++) {
                    w[b.off() + i] = (float) ((rnd.nextDouble() * 2 - 1) * bb);
                }
            }
            default -> throw new IllegalArgumentException("unknown init_lora_weights '" + how + "'");
        }
    }

    /** The module's path in Hugging Face naming. */
    public String path() {
        return module.path(layer);
    }

    public long parameterCount() {
        return (long) a.len() + b.len() + (bias == null ? 0 : bias.len()) + (e == null ? 0 : e.len())
                + (magnitude == null ? 0 : magnitude.len());
    }

    static double gaussian(SplittableRandom rnd) {
        double u1 = 1.0 - rnd.nextDouble();
        double u2 = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
}

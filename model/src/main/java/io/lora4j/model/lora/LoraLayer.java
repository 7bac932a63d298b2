package io.lora4j.model.lora;

import io.lora4j.model.arch.LinearModule;
import java.util.SplittableRandom;

/**
 * The adapter of one projection: {@code y = W x + s · (B diag(e) (A x) + bias)}, with A (r, IN) and
 * B (OUT, r) as PEFT stores them ({@code lora_A.weight}, {@code lora_B.weight}) and their gradients.
 * For LoRA the per-rank scale e is 1 and frozen ({@code de} is null); for AdaLoRA (SVD form) e holds
 * the trainable singular values {@code lora_E}, A the right and B the left singular vectors.
 * Glossary: IN, OUT the projection's widths, r rank, s scaling, e (r) per-rank scale.
 */
public final class LoraLayer {
    public final LinearModule module;
    public final int layer;
    public final int r;
    public final int in;
    public final int out;
    public final float scaling;
    /** (r, IN) */
    public final float[] a;
    /** (OUT, r) */
    public final float[] b;
    /** (r) the singular values lora_E (AdaLoRA), or ones (LoRA). */
    public final float[] e;
    /** (OUT) lora_B.bias with bias="lora_only", else null. */
    public final float[] bias;
    public final float[] da;
    public final float[] db;
    public final float[] dbias;
    /** (r) gradient of lora_E, or null when e is the frozen 1 of plain LoRA. */
    public final float[] de;

    /** A plain LoRA layer (e = 1, frozen). */
    public LoraLayer(LinearModule module, int layer, int r, int in, int out, float scaling, boolean withBias) {
        this(module, layer, r, in, out, scaling, withBias, false);
    }

    /** With {@code svd}, AdaLoRA's SVD form: e is the trainable lora_E (zero until initialised or loaded). */
    public LoraLayer(LinearModule module, int layer, int r, int in, int out, float scaling, boolean withBias, boolean svd) {
        this.module = module;
        this.layer = layer;
        this.r = r;
        this.in = in;
        this.out = out;
        this.scaling = scaling;
        a = new float[r * in];
        b = new float[out * r];
        da = new float[r * in];
        db = new float[out * r];
        bias = withBias ? new float[out] : null;
        dbias = withBias ? new float[out] : null;
        e = new float[r];
        if (!svd) {
            java.util.Arrays.fill(e, 1f);
        }
        de = svd ? new float[r] : null;
    }

    /** Whether this is AdaLoRA's SVD form with a trainable lora_E. */
    public boolean svd() {
        return de != null;
    }

    /**
     * PEFT's initialisation: "true" → A kaiming-uniform(a=√5), i.e. U(−1/√IN, 1/√IN), B = 0;
     * "gaussian" → A ~ N(0, (1/r)²), B = 0; "false" → both random (a test-only setting in PEFT).
     * AdaLoRA (peft/tuners/adalora/layer.py {@code reset_lora_parameters}): "true" or "gaussian" →
     * E = 0, A and B ~ N(0, 0.02²); "false" → A, E and B ~ N(0, 1) (torch.randn, left as created).
     */
    public void initialise(String how, SplittableRandom rnd) {
        if (svd()) {
            double sd = how.equals("false") ? 1.0 : 0.02;
            for (float[] m : new float[][]{a, b}) {
                for (int i = 0; i < m.length; i++) {
                    m[i] = (float) (gaussian(rnd) * sd);
                }
            }
            for (int i = 0; i < e.length; i++) {
                e[i] = how.equals("false") ? (float) gaussian(rnd) : 0f;
            }
            return;
        }
        double bound = 1.0 / Math.sqrt(in);
        switch (how) {
            case "true" -> {
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
                }
            }
            case "gaussian" -> {
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) (gaussian(rnd) / r);
                }
            }
            case "false" -> {
                for (int i = 0; i < a.length; i++) {
                    a[i] = (float) ((rnd.nextDouble() * 2 - 1) * bound);
                }
                double bb = 1.0 / Math.sqrt(r);
                for (int i = 0; i < b.length; i++) {
                    b[i] = (float) ((rnd.nextDouble() * 2 - 1) * bb);
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
        return (long) a.length + b.length + (bias == null ? 0 : bias.length) + (de == null ? 0 : e.length);
    }

    static double gaussian(SplittableRandom rnd) {
        double u1 = 1.0 - rnd.nextDouble();
        double u2 = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
}

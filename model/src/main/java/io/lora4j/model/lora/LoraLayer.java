package io.lora4j.model.lora;

import java.util.SplittableRandom;

/**
 * The adapter of one projection: {@code y = W x + s · (B (A x) + bias)}, with A (r, IN) and
 * B (OUT, r) as PEFT stores them ({@code lora_A.weight}, {@code lora_B.weight}) and their gradients.
 * Glossary: IN, OUT the projection's widths, r rank, s scaling.
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
    /** (OUT) lora_B.bias with bias="lora_only", else null. */
    public final float[] bias;
    public final float[] da;
    public final float[] db;
    public final float[] dbias;

    public LoraLayer(LinearModule module, int layer, int r, int in, int out, float scaling, boolean withBias) {
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
    }

    /**
     * PEFT's initialisation: "true" → A kaiming-uniform(a=√5), i.e. U(−1/√IN, 1/√IN), B = 0;
     * "gaussian" → A ~ N(0, (1/r)²), B = 0; "false" → both random (a test-only setting in PEFT).
     */
    public void initialise(String how, SplittableRandom rnd) {
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
        return (long) a.length + b.length + (bias == null ? 0 : bias.length);
    }

    static double gaussian(SplittableRandom rnd) {
        double u1 = 1.0 - rnd.nextDouble();
        double u2 = rnd.nextDouble();
        return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
    }
}

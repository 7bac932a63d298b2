package io.lora4j.model.train;

import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.ParamStore;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * Whole-model gradient check: LoRA on all seven projections with non-zero B (init "false"), a
 * trainable lm_head and embedding, a masked target; every adapter parameter's analytic gradient
 * against central differences of the summed loss (evaluated in double from the float forward).
 */
class TrainGraphGradientTest {
    static final int[] TOKENS = {1, 5, 3, 9, 2, 7};
    static final int[] TARGETS = {5, 3, -1, 2, 7, 4};

    static LoraAdapter adapter(Llama m, float dropout, List<String> save) {
        LoraConfig cfg = new LoraConfig(3, 6f, dropout, LoraConfig.ALL_LINEAR, null, "lora_only", false, "false",
                List.of(), Map.of("v_proj", 2), Map.of(), save);
        return new LoraAdapter("default", cfg, m, 11);
    }

    /**
     * DoRA on all seven projections: random A and B (init "false", B at a third of its draw: the tiny
     * model's loss is then smooth enough for central differences), magnitudes moved away from the row
     * norms (g ≠ 1), v_proj at rank 2, the given dropout.
     */
    static LoraAdapter doraAdapter(Llama m, float dropout) {
        LoraConfig cfg = new LoraConfig(3, 6f, dropout, LoraConfig.ALL_LINEAR, null, "none", false, "false", List.of(),
                Map.of("v_proj", 2), Map.of(), List.of(), true);
        LoraAdapter ad = new LoraAdapter("default", cfg, m, 13);
        for (LoraLayer ll : ad.layers()) {
            for (int i = 0; i < ll.b.len(); i++) {
                ll.b.set(i, ll.b.get(i) / 3);
            }
            for (int i = 0; i < ll.out; i++) {
                ll.magnitude.set(i, ll.magnitude.get(i) * (0.6f + 0.2f * ((i + ll.layer) % 5)));
            }
        }
        return ad;
    }

    /** A, B and m of DoRA through the magnitude step, the norm held constant as PEFT's backward holds it. */
    @ParameterizedTest
    @EnumSource(LlamaConfig.RopeStyle.class)
    void doraGradientsOfABAndMagnitudeMatchCentralDifferences(LlamaConfig.RopeStyle style) {
        Llama m = new Llama(new TinyModel(TinyModel.config(style), 3, false));
        LoraAdapter ad = doraAdapter(m, 0f);
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        int T = TOKENS.length;
        g.forwardBackward(TOKENS, TARGETS, T, 1f, 0);
        g.holdDoraNorms(true);
        assertAdapterGradients(g, ad, T, 3, 7, 300);
    }

    /** PEFT's DoRA with lora_dropout (base result recomputed from the dropped-out input), for a fixed mask. */
    @Test
    void doraDropoutGradientMatchesCentralDifferencesForAFixedMask() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 5, true));
        LoraAdapter ad = doraAdapter(m, 0.3f);
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        int T = TOKENS.length;
        g.forwardBackward(TOKENS, TARGETS, T, 1f, 99);
        g.holdDoraNorms(true);
        float[] grads = ad.store().grads.clone(), p = ad.store().values;
        double worst = 0;
        String where = "";
        for (LoraLayer ll : List.of(ad.get(0, LinearModule.Q_PROJ), ad.get(1, LinearModule.DOWN_PROJ), ad.get(1, LinearModule.V_PROJ))) {
            for (ParamStore.View v : new ParamStore.View[]{ll.a, ll.b, ll.magnitude}) {
                for (int i = 0; i < v.len(); i += v == ll.magnitude ? 1 : 3) {
                    int k = v.off() + i;
                    float orig = p[k];
                    p[k] = orig + 1e-2f;
                    double lp = trainingLoss(g, T);
                    p[k] = orig - 1e-2f;
                    double lm = trainingLoss(g, T);
                    p[k] = orig;
                    double numeric = (lp - lm) / ((double) (orig + 1e-2f) - (double) (orig - 1e-2f));
                    double e = Math.abs(numeric - grads[k]) / Math.max(1e-2, Math.abs(numeric) + Math.abs(grads[k]));
                    if (e > worst) {
                        worst = e;
                        where = v.name() + " " + i + ": numeric " + numeric + ", analytic " + grads[k];
                    }
                }
            }
        }
        assertTrue(worst < 2e-2, "worst relative error " + worst + " at " + where);
    }

    @Test
    void doraWithCheckpointingGivesTheSameGradients() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 4, false));
        LoraAdapter a1 = doraAdapter(m, 0.1f), a2 = doraAdapter(m, 0.1f);
        double l1 = new TrainGraph(m, a1, 8, false).forwardBackward(TOKENS, TARGETS, TOKENS.length, 0.5f, 42);
        double l2 = new TrainGraph(m, a2, 8, true).forwardBackward(TOKENS, TARGETS, TOKENS.length, 0.5f, 42);
        assertSameLossAndGradients(l1, l2, a1, a2);
    }

    @ParameterizedTest
    @EnumSource(LlamaConfig.RopeStyle.class)
    void everyAdapterGradientMatchesCentralDifferences(LlamaConfig.RopeStyle style) {
        Llama m = new Llama(new TinyModel(TinyModel.config(style), 3, false));
        LoraAdapter ad = adapter(m, 0f, List.of("lm_head", "embed_tokens"));
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        int T = TOKENS.length;
        g.forwardBackward(TOKENS, TARGETS, T, 1f, 0);
        assertAdapterGradients(g, ad, T, 3, 7, 300);
    }

    /** Two runs (e.g. with and without checkpointing) gave the same loss and, within 1e-6, the same gradients. */
    static void assertSameLossAndGradients(double l1, double l2, LoraAdapter a1, LoraAdapter a2) {
        assertEquals(l1, l2, 0.0, "same loss");
        for (ParamStore.View v : a1.store().views()) {
            for (int j = 0; j < v.len(); j++) {
                float x = v.grad(j), y = a2.store().grads[v.off() + j];
                assertEquals(x, y, 1e-6f * Math.max(1, Math.abs(x)), v.name() + " gradient " + j);
            }
        }
    }

    /**
     * Every {@code stride}-th parameter of each adapter tensor (every {@code fullStride}-th of the full
     * lm_head / embedding copies) against central differences; at least {@code minChecked} checked.
     */
    static void assertAdapterGradients(TrainGraph g, LoraAdapter ad, int T, int stride, int fullStride, int minChecked) {
        double worst = 0;
        String where = "";
        int checked = 0;
        ParamStore s = ad.store();
        for (ParamStore.View v : s.views()) {
            boolean full = v.name().equals("lm_head") || v.name().equals("embed_tokens");
            for (int i = 0; i < v.len(); i += full ? fullStride : stride) {
                double e = relErr(g, s.values, s.grads, v.off() + i, T);
                checked++;
                if (e > worst) {
                    worst = e;
                    where = v.name() + " " + i;
                }
            }
        }
        assertTrue(checked >= minChecked, "checked " + checked);
        if (worst > 2e-2) {
            fail("worst relative gradient error " + worst + " at " + where);
        }
    }

    /**
     * Relative error of the analytic gradient against central differences, Richardson-extrapolated
     * over steps h = 0.04 and h/2 ((4·D(h/2) − D(h)) / 3, truncation error O(h⁴)): the forward runs in
     * float32, so the step must be large for the loss difference to stand above rounding noise (the
     * attention projections have small gradients), and the extrapolation removes the curvature error
     * that such a step brings.
     */
    private static double relErr(TrainGraph g, float[] p, float[] grad, int i, int T) {
        double numeric = (4 * central(g, p, i, T, 2e-2f) - central(g, p, i, T, 4e-2f)) / 3;
        return Math.abs(numeric - grad[i]) / Math.max(1e-2, Math.abs(numeric) + Math.abs(grad[i]));
    }

    private static double central(TrainGraph g, float[] p, int i, int T, float eps) {
        float orig = p[i];
        p[i] = orig + eps;
        double lp = g.loss(TOKENS, TARGETS, T);
        p[i] = orig - eps;
        double lm = g.loss(TOKENS, TARGETS, T);
        p[i] = orig;
        return (lp - lm) / ((double) (orig + eps) - (double) (orig - eps));
    }

    @ParameterizedTest
    @EnumSource(LlamaConfig.RopeStyle.class)
    void adaLoraGradientsOfAEAndBMatchCentralDifferences(LlamaConfig.RopeStyle style) {
        // SVD form on all seven projections, init "false": A, E and B all non-zero
        Llama m = new Llama(new TinyModel(TinyModel.config(style), 6, false));
        LoraConfig base = new LoraConfig(3, 6f, 0f, LoraConfig.ALL_LINEAR, null, "none", false, "false", List.of(), Map.of(),
                Map.of(), List.of());
        LoraAdapter ad = new LoraAdapter("default", io.lora4j.model.lora.AdaLoraConfig.of(base, 3, 1, 0, 0, 1, 0.85f, 0.85f,
                0.5f, 10), m, 12);
        for (LoraLayer ll : ad.layers()) { // N(0, 1) factors saturate the tiny model; keep the update moderate
            for (ParamStore.View f : new ParamStore.View[]{ll.a, ll.b}) {
                for (int i = 0; i < f.len(); i++) {
                    f.set(i, f.get(i) * 0.2f);
                }
            }
        }
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        int T = TOKENS.length;
        g.forwardBackward(TOKENS, TARGETS, T, 1f, 0);
        double worst = 0;
        String where = "";
        ParamStore s = ad.store();
        for (ParamStore.View v : s.views()) {
            for (int i = 0; i < v.len(); i += v.name().endsWith(".lora_E") ? 1 : 5) {
                double e = relErr(g, s.values, s.grads, v.off() + i, T);
                if (e > worst) {
                    worst = e;
                    where = v.name() + " " + i;
                }
            }
        }
        if (worst > 2e-2) {
            fail("worst relative gradient error " + worst + " at " + where);
        }
    }

    @Test
    void checkpointingGivesTheSameGradientsWithLessActivationMemory() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 4, true));
        LoraAdapter a1 = adapter(m, 0.1f, List.of());
        LoraAdapter a2 = adapter(m, 0.1f, List.of());
        TrainGraph plain = new TrainGraph(m, a1, 8, false);
        TrainGraph ckpt = new TrainGraph(m, a2, 8, true);
        double l1 = plain.forwardBackward(TOKENS, TARGETS, TOKENS.length, 0.5f, 42);
        double l2 = ckpt.forwardBackward(TOKENS, TARGETS, TOKENS.length, 0.5f, 42);
        assertSameLossAndGradients(l1, l2, a1, a2);
        assertTrue(ckpt.activationBytes() < plain.activationBytes(),
                ckpt.activationBytes() + " vs " + plain.activationBytes());
    }

    @Test
    void dropoutGradientMatchesCentralDifferencesForAFixedMask() {
        // with a fixed seed the dropout mask is a constant, so the loss is differentiable in the adapter
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 5, true));
        LoraAdapter ad = adapter(m, 0.3f, List.of());
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        int T = TOKENS.length;
        g.forwardBackward(TOKENS, TARGETS, T, 1f, 99);
        LoraLayer ll = ad.get(0, LinearModule.Q_PROJ);
        double worst = 0;
        float[] da = new float[ll.a.len()];
        for (int i = 0; i < da.length; i++) {
            da[i] = ll.a.grad(i); // the probes below add zero gradients, but read them first anyway
        }
        for (int i = 0; i < ll.a.len(); i++) {
            float orig = ll.a.get(i);
            ll.a.set(i, orig + 1e-2f);
            double lp = trainingLoss(g, T);
            ll.a.set(i, orig - 1e-2f);
            double lm = trainingLoss(g, T);
            ll.a.set(i, orig);
            double numeric = (lp - lm) / 2e-2;
            worst = Math.max(worst, Math.abs(numeric - da[i]) / Math.max(1e-2, Math.abs(numeric) + Math.abs(da[i])));
        }
        assertTrue(worst < 2e-2, "worst relative error " + worst);
    }

    /** The loss with the same dropout masks as the forwardBackward above (seed 99); gradients are discarded. */
    private static double trainingLoss(TrainGraph g, int T) {
        return g.forwardBackward(TOKENS, TARGETS, T, 0f, 99);
    }
}

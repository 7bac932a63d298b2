package io.lora4j.model.lora;

import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.TinyModel;
import org.junit.jupiter.api.Test;

import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Several named adapters in one model, and add_weighted_adapter. */
class MultiAdapterTest {
    static final int[] IDS = {1, 4, 7, 2, 9, 3};

    static Llama model() {
        return new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 21, false));
    }

    static LoraAdapter adapter(Llama m, String name, int r, long seed) {
        LoraConfig c = new LoraConfig(r, 2f * r, 0f, List.of("q_proj", "v_proj", "down_proj"), null, "none", false, "false",
                List.of(), Map.of(), Map.of(), List.of());
        return new LoraAdapter(name, c, m, seed);
    }

    static float[] logits(Llama m) {
        try (Backend b = Backend.named("jvm")) {
            return m.forward(b, m.newState(8, 16), IDS, 0, IDS.length, 0).clone();
        }
    }

    static void assertClose(float[] a, float[] b, float tol) {
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i], tol * Math.max(1, Math.abs(a[i])), "logit " + i);
        }
    }

    @Test
    void loadListActivateDisableDelete() {
        Llama m = model();
        float[] base = logits(m);
        LoraAdapter a = adapter(m, "a", 2, 1), b = adapter(m, "b", 3, 2);
        m.adapters().add(a);
        m.adapters().add(b);
        assertEquals(List.of("a", "b"), List.copyOf(m.adapters().loaded().keySet()));
        assertThrows(IllegalArgumentException.class, () -> m.adapters().add(adapter(m, "a", 2, 5)));
        assertArrayEquals(base, logits(m), "loaded but inactive");
        m.adapters().activate(Map.of("a", 1f));
        float[] withA = logits(m);
        m.adapters().activate(Map.of("b", 1f));
        float[] withB = logits(m);
        assertTrue(LoraTrainingHelpers.maxDiff(withA, withB) > 1e-3);
        m.adapters().disable();
        assertArrayEquals(base, logits(m), "disabled = base, bitwise");
        m.adapters().activate(Map.of("b", 1f));
        m.adapters().delete("b");
        assertArrayEquals(base, logits(m), "deleting the active adapter deactivates it");
        assertEquals(List.of("a"), List.copyOf(m.adapters().loaded().keySet()));
        assertThrows(IllegalArgumentException.class, () -> m.adapters().activate(Map.of("b", 1f)));
    }

    @Test
    void catAndFullRankSvdEqualTheWeightedSumOfActiveAdapters() {
        Llama m = model();
        LoraAdapter a = adapter(m, "a", 2, 1), b = adapter(m, "b", 3, 2);
        m.adapters().add(a);
        m.adapters().add(b);
        Map<String, Float> both = new LinkedHashMap<>();
        both.put("a", 0.7f);
        both.put("b", 0.4f);
        m.adapters().activate(both);
        float[] sum = logits(m);
        LoraAdapter cat = WeightedAdapters.combine(m, List.of(a, b), List.of(0.7f, 0.4f), "cat", "cat", 0);
        assertEquals(5, cat.layers().get(0).r);
        assertEquals(1f, cat.layers().get(0).scaling);
        m.adapters().set(cat);
        assertClose(sum, logits(m), 1e-5f);
        LoraAdapter svd = WeightedAdapters.combine(m, List.of(a, b), List.of(0.7f, 0.4f), "svd", "svd", 5);
        m.adapters().set(svd);
        assertClose(sum, logits(m), 1e-4f);
        // a lower rank approximates: closer than no adapter at all
        LoraAdapter svd2 = WeightedAdapters.combine(m, List.of(a, b), List.of(0.7f, 0.4f), "svd2", "svd", 2);
        m.adapters().set(svd2);
        float[] approx = logits(m);
        m.adapters().disable();
        assertTrue(LoraTrainingHelpers.maxDiff(sum, approx) < LoraTrainingHelpers.maxDiff(sum, logits(m)));
    }

    @Test
    void linearOfOneAdapterIsThatAdapter() {
        Llama m = model();
        LoraAdapter a = adapter(m, "a", 2, 1);
        m.adapters().set(a);
        float[] want = logits(m);
        m.adapters().set(WeightedAdapters.combine(m, List.of(a), List.of(1f), "lin", "linear", 0));
        assertClose(want, logits(m), 1e-5f);
        // PEFT: one adapter is always combined linearly, whatever the type asked for
        m.adapters().set(WeightedAdapters.combine(m, List.of(a), List.of(1f), "one", "ties", 0));
        assertClose(want, logits(m), 1e-5f);
        assertThrows(IllegalArgumentException.class, () -> WeightedAdapters.combine(m, List.of(a, adapter(m, "c", 3, 4)),
                List.of(1f, 1f), "x", "linear", 0));
        assertThrows(IllegalArgumentException.class, () -> WeightedAdapters.combine(m, List.of(a, adapter(m, "c", 2, 4)),
                List.of(1f, 1f), "x", "ties", 0), "ties needs a density");
    }

    /** Adapters of different modules: the union of their targets, each module from the adapters that adapt it. */
    @Test
    void differentTargetsCombineOverTheirUnion() {
        Llama m = model();
        LoraAdapter a = adapter(m, "a", 2, 1);
        LoraAdapter other = new LoraAdapter("o", new LoraConfig(3, 6f, 0f, List.of("k_proj"), null, "none", false, "false",
                List.of(), Map.of(), Map.of(), List.of()), m, 3);
        m.adapters().add(a);
        m.adapters().add(other);
        Map<String, Float> both = new LinkedHashMap<>();
        both.put("a", 0.7f);
        both.put("o", -0.4f);
        m.adapters().activate(both);
        float[] sum = logits(m);
        LoraAdapter cat = WeightedAdapters.combine(m, List.of(a, other), List.of(0.7f, -0.4f), "cat", "cat", 0);
        assertEquals(List.of("q_proj", "v_proj", "down_proj", "k_proj"), cat.config().targetModules());
        assertEquals(5, cat.config().r(), "cat: the sum of the adapters' ranks");
        m.adapters().set(cat);
        assertClose(sum, logits(m), 1e-5f);
    }

    /**
     * The factor formulas, worked out here for two rank-2 adapters: linear A = Σ sign(w·s)·√|w·s|·Aᵢ,
     * B = Σ √|w·s|·Bᵢ (a negative weight flips A only); cat A = [w·s·Aᵢ], B = [Bᵢ].
     */
    @Test
    void linearAndCatFactorsArePeftsFormulas() {
        Llama m = model();
        LoraAdapter a = adapter(m, "a", 2, 1), b = new LoraAdapter("b", new LoraConfig(2, 8f, 0f,
                List.of("q_proj", "v_proj", "down_proj"), null, "none", false, "false", List.of(), Map.of(), Map.of(), List.of()), m, 2);
        float wa = 0.7f, wb = -0.4f;
        LoraAdapter lin = WeightedAdapters.combine(m, List.of(a, b), List.of(wa, wb), "lin", "linear", 0);
        LoraAdapter cat = WeightedAdapters.combine(m, List.of(a, b), List.of(wa, wb), "cat", "cat", 0);
        assertEquals(2f, lin.config().loraAlpha());
        for (int i = 0; i < a.layers().size(); i++) {
            LoraLayer x = a.layers().get(i), y = b.layers().get(i), l = lin.layers().get(i), c = cat.layers().get(i);
            assertEquals(2f, x.scaling); // alpha 2r / r
            assertEquals(4f, y.scaling);
            float ka = (float) Math.sqrt(0.7 * 2), kb = (float) Math.sqrt(0.4 * 4); // √|w·s|
            float[] wantA = new float[l.a.len()], wantB = new float[l.b.len()];
            for (int k = 0; k < wantA.length; k++) {
                wantA[k] = ka * x.a.get(k) - kb * y.a.get(k);
            }
            for (int k = 0; k < wantB.length; k++) {
                wantB[k] = ka * x.b.get(k) + kb * y.b.get(k);
            }
            assertClose(wantA, l.a.toArray(), 1e-6f);
            assertClose(wantB, l.b.toArray(), 1e-6f);
            for (int j = 0; j < 2; j++) {
                for (int k = 0; k < x.in; k++) {
                    assertEquals(x.a.get(j * x.in + k) * wa * 2f, c.a.get(j * x.in + k), 1e-6f);
                    assertEquals(y.a.get(j * x.in + k) * wb * 4f, c.a.get((2 + j) * x.in + k), 1e-6f);
                }
                for (int o = 0; o < x.out; o++) {
                    assertEquals(x.b.get(o * 2 + j), c.b.get(o * 4 + j));
                    assertEquals(y.b.get(o * 2 + j), c.b.get(o * 4 + 2 + j));
                }
            }
        }
    }

    /** svd: the best rank-k approximation of Σ w·s·BᵢAᵢ (Eckart–Young): its error is the discarded singular values'. */
    @Test
    void svdIsTheBestLowRankApproximationOfTheWeightedSum() {
        Llama m = model();
        LoraAdapter a = adapter(m, "a", 2, 1), b = adapter(m, "b", 3, 2);
        for (int k = 1; k <= 5; k++) {
            LoraAdapter svd = WeightedAdapters.combine(m, List.of(a, b), List.of(0.7f, -0.4f), "svd", "svd", k);
            for (int i = 0; i < a.layers().size(); i++) {
                LoraLayer x = a.layers().get(i), y = b.layers().get(i), s = svd.layers().get(i);
                double[] full = new double[x.out * x.in];
                for (LoraLayer l : List.of(x, y)) {
                    double w = l == x ? 0.7 : -0.4;
                    for (int o = 0; o < l.out; o++) {
                        for (int c = 0; c < l.in; c++) {
                            for (int j = 0; j < l.r; j++) {
                                full[o * l.in + c] += w * l.scaling * l.b.get(o * l.r + j) * l.a.get(j * l.in + c);
                            }
                        }
                    }
                }
                double err = 0, norm2 = 0;
                for (int o = 0; o < x.out; o++) {
                    for (int c = 0; c < x.in; c++) {
                        double approx = 0;
                        for (int j = 0; j < s.r; j++) {
                            approx += s.scaling * s.b.get(o * s.r + j) * s.a.get(j * s.in + c);
                        }
                        err += (full[o * x.in + c] - approx) * (full[o * x.in + c] - approx);
                        norm2 += full[o * x.in + c] * full[o * x.in + c];
                    }
                }
                Linalg.Svd ref = Linalg.svd(full, x.out, x.in, Math.min(5, Math.min(x.out, x.in)));
                double tail = 0;
                for (int j = k; j < ref.k(); j++) {
                    tail += ref.s()[j] * ref.s()[j];
                }
                assertEquals(tail, err, 1e-6 * norm2 + 1e-9, x.path() + " rank " + k);
            }
        }
    }

    /** Small shared helpers. */
    static final class LoraTrainingHelpers {
        static double maxDiff(float[] a, float[] b) {
            double d = 0;
            for (int i = 0; i < a.length; i++) {
                d = Math.max(d, Math.abs(a[i] - b[i]));
            }
            return d;
        }
    }
}

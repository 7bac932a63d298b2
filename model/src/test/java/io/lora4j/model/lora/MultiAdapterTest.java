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
        LoraAdapter other = new LoraAdapter("o", LoraConfig.of(2, 4f, List.of("k_proj")), m, 3);
        assertThrows(IllegalArgumentException.class, () -> WeightedAdapters.combine(m, List.of(a, other), List.of(1f, 1f), "x", "cat", 0));
        assertThrows(IllegalArgumentException.class, () -> WeightedAdapters.combine(m, List.of(a, adapter(m, "c", 3, 4)),
                List.of(1f, 1f), "x", "linear", 0));
        assertThrows(IllegalArgumentException.class, () -> WeightedAdapters.combine(m, List.of(a), List.of(1f), "x", "ties", 0));
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

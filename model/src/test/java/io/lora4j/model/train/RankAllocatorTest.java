package io.lora4j.model.train;

import io.lora4j.model.Llama;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.ParamStore;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** AdaLoRA's budget schedule, importance EMAs and masking, against PEFT's formulas. */
class RankAllocatorTest {

    static AdaLoraConfig config(int initR, int targetR, int tinit, int tfinal, int deltaT, int total) {
        return AdaLoraConfig.of(LoraConfig.of(initR, 8f, List.of("q_proj", "v_proj")), initR, targetR, tinit, tfinal, deltaT,
                0.85f, 0.8f, 0.5f, total);
    }

    /** An AdaLoRA adapter on the tiny model (2 layers × q, v = 4 modules) with random A, E, B ("false" init). */
    static LoraAdapter adapter(AdaLoraConfig c) {
        Llama m = TrainerTest.model();
        AdaLoraConfig random = AdaLoraConfig.of(new LoraConfig(c.initR(), 8f, 0f, List.of("q_proj", "v_proj"), null, "none",
                false, "false", List.of(), Map.of(), Map.of(), List.of()), c.initR(), c.targetR(), c.tinit(), c.tfinal(),
                c.deltaT(), c.beta1(), c.beta2(), c.orthRegWeight(), c.totalStep());
        return new LoraAdapter("default", random, m, 3);
    }

    @Test
    void budgetScheduleValuesAtChosenStepsEqualTheFormula() {
        // b0 = 120, bT = 40, tinit = 10, tfinal = 20, T = 110: the cubic runs over D = 80 steps
        // b(t) = ⌊80·(1 − (t − 10)/80)³ + 40⌋ for 10 < t ≤ 90
        int b0 = 120, bT = 40;
        assertEquals(new RankAllocator.Budget(120, false), RankAllocator.schedule(0, b0, bT, 10, 20, 110, 1));
        assertEquals(new RankAllocator.Budget(120, false), RankAllocator.schedule(10, b0, bT, 10, 20, 110, 1), "t ≤ tinit: no masking");
        assertEquals(new RankAllocator.Budget(117, true), RankAllocator.schedule(11, b0, bT, 10, 20, 110, 1)); // 80·0.9875³ = 77.04
        assertEquals(new RankAllocator.Budget(73, true), RankAllocator.schedule(30, b0, bT, 10, 20, 110, 1));  // 80·0.75³ = 33.75
        assertEquals(new RankAllocator.Budget(50, true), RankAllocator.schedule(50, b0, bT, 10, 20, 110, 1));  // 80·0.5³ = 10
        assertEquals(new RankAllocator.Budget(41, true), RankAllocator.schedule(70, b0, bT, 10, 20, 110, 1));  // 80·0.25³ = 1.25
        assertEquals(new RankAllocator.Budget(40, true), RankAllocator.schedule(90, b0, bT, 10, 20, 110, 1), "t = T − tfinal");
        assertEquals(new RankAllocator.Budget(40, true), RankAllocator.schedule(91, b0, bT, 10, 20, 110, 1), "final phase");
        assertEquals(new RankAllocator.Budget(40, true), RankAllocator.schedule(500, b0, bT, 10, 20, 110, 1));
        // masking only every deltaT steps in the budgeting phase
        assertEquals(new RankAllocator.Budget(73, true), RankAllocator.schedule(30, b0, bT, 10, 20, 110, 3));
        assertEquals(new RankAllocator.Budget(50, false), RankAllocator.schedule(50, b0, bT, 10, 20, 110, 3));
        assertEquals(new RankAllocator.Budget(40, true), RankAllocator.schedule(95, b0, bT, 10, 20, 110, 3), "always after T − tfinal");
        // every step of the cubic phase against the exact rational value ⌊(b0−bT)(D−u)³/D³ + bT⌋, and non-increasing
        int prev = b0;
        for (int t = 11; t <= 90; t++) {
            long d = 80, u = t - 10;
            long num = (b0 - bT) * (d - u) * (d - u) * (d - u) + bT * d * d * d;
            int got = RankAllocator.schedule(t, b0, bT, 10, 20, 110, 1).budget();
            assertEquals(num / (d * d * d), got, "step " + t);
            assertTrue(got <= prev, "non-increasing at " + t);
            prev = got;
        }
        // the allocator's own budgets: init_r · modules and target_r · modules
        RankAllocator a = new RankAllocator(adapter(config(6, 2, 1, 2, 1, 10)));
        assertEquals(24, a.initBudget());
        assertEquals(8, a.targetBudget());
        assertEquals(new RankAllocator.Budget(24, false), a.schedule(1));
    }

    @Test
    void importanceIsTheTwoEmasOfTheWeightTimesGradient() {
        LoraAdapter ad = adapter(config(3, 1, 0, 0, 1, 10));
        RankAllocator alloc = new RankAllocator(ad);
        SplittableRandom r = new SplittableRandom(4);
        List<double[]> ipt = new ArrayList<>(), unc = new ArrayList<>();
        for (LoraLayer l : ad.layers()) {
            for (ParamStore.View w : new ParamStore.View[]{l.a, l.e, l.b}) {
                ipt.add(new double[w.len()]);
                unc.add(new double[w.len()]);
            }
        }
        for (int step = 0; step < 3; step++) {
            int f = 0;
            for (LoraLayer l : ad.layers()) {
                ParamStore.View[] t = {l.a, l.e, l.b};
                float[] w = l.values(), g = l.grads();
                for (int k = 0; k < 3; k++, f++) {
                    for (int j = 0; j < t[k].len(); j++) {
                        int at = t[k].off() + j;
                        g[at] = (float) (r.nextDouble() * 2 - 1);
                        double now = Math.abs((double) w[at] * g[at]);
                        ipt.get(f)[j] = 0.85 * ipt.get(f)[j] + 0.15 * now;
                        unc.get(f)[j] = 0.8 * unc.get(f)[j] + 0.2 * Math.abs(now - ipt.get(f)[j]);
                    }
                }
            }
            alloc.updateImportance();
        }
        Map<String, float[]> st = alloc.state();
        int f = 0;
        for (LoraLayer l : ad.layers()) {
            for (String name : new String[]{"lora_A", "lora_E", "lora_B"}) {
                float[] gotIpt = st.get(l.path() + "." + name + ".exp_avg_ipt"), gotUnc = st.get(l.path() + "." + name + ".exp_avg_unc");
                for (int j = 0; j < gotIpt.length; j++) {
                    assertEquals(ipt.get(f)[j], gotIpt[j], 1e-6 * Math.max(1e-3, ipt.get(f)[j]), l.path() + " " + name + " Ī " + j);
                    assertEquals(unc.get(f)[j], gotUnc[j], 1e-5 * Math.max(1e-3, unc.get(f)[j]), l.path() + " " + name + " Ū " + j);
                }
                assertTrue(Arrays.stream(box(gotIpt)).anyMatch(x -> x > 0), name + " has scores");
                f++;
            }
        }
    }

    @Test
    void maskingKeepsExactlyTheBudgetOfBestTriplets() {
        LoraAdapter ad = adapter(config(5, 2, 0, 0, 1, 10));
        RankAllocator alloc = new RankAllocator(ad);
        randomScores(alloc, 8);
        float[][] scores = alloc.tripletScores();
        List<float[]> eBefore = ad.layers().stream().map(l -> l.e.toArray()).toList();
        for (int budget : new int[]{20, 17, 11, 8, 3}) {
            alloc.maskToBudget(budget);
            assertEquals(budget, alloc.keptTriplets(), "budget " + budget);
            // the kept triplets are exactly the `budget` highest scores; cut ones have E = 0, kept ones are untouched
            float[] all = new float[20];
            int n = 0;
            for (float[] s : scores) {
                System.arraycopy(s, 0, all, n, s.length);
                n += s.length;
            }
            Arrays.sort(all);
            float lowestKept = all[20 - budget];
            for (int i = 0; i < ad.layers().size(); i++) {
                LoraLayer l = ad.layers().get(i);
                boolean[] keep = ad.rankPattern().get(l.path());
                for (int j = 0; j < l.r; j++) {
                    assertEquals(scores[i][j] >= lowestKept, keep[j], l.path() + " triplet " + j);
                    assertEquals(keep[j] ? eBefore.get(i)[j] : 0f, l.e.get(j), l.path() + " E " + j);
                }
            }
        }
    }

    @Test
    void tiesAtTheThresholdAreAllCutAsInPeft() {
        LoraAdapter ad = adapter(config(3, 1, 0, 0, 1, 10));
        RankAllocator alloc = new RankAllocator(ad); // every score 0: the k-th smallest is 0 and "<= 0" cuts all
        alloc.maskToBudget(10);
        assertEquals(0, alloc.keptTriplets());
        for (LoraLayer l : ad.layers()) {
            assertArrayEquals(new float[l.r], l.e.toArray());
        }
    }

    @Test
    void theFinalPhaseFreezesThePatternAndStopsScoring() {
        // T = 6, tfinal = 2: steps 0..3 score (masking from step 1), step 4 = T − tfinal masks to bT and resets, 5 re-applies
        LoraAdapter ad = adapter(config(4, 2, 0, 2, 1, 6));
        RankAllocator alloc = new RankAllocator(ad);
        assertNull(ad.rankPattern());
        SplittableRandom r = new SplittableRandom(9);
        for (int step = 0; step < 4; step++) {
            randomGradients(ad, r);
            int b = alloc.updateAndAllocate(step);
            assertEquals(alloc.schedule(step).budget(), b);
            if (step == 0) {
                assertNull(ad.rankPattern(), "step 0 ≤ tinit: no masking");
            } else {
                assertEquals(b, alloc.keptTriplets(), "step " + step);
            }
        }
        randomGradients(ad, r);
        assertEquals(8, alloc.updateAndAllocate(4));
        assertEquals(8, alloc.keptTriplets());
        Map<String, boolean[]> fin = ad.rankPattern();
        for (float[] v : alloc.state().values()) {
            assertArrayEquals(new float[v.length], v, "scores reset after the final allocation");
        }
        // the optimizer regrows cut singular values; the final phase cuts them again without rescoring
        for (LoraLayer l : ad.layers()) {
            l.e.load(filled(l.r, 0.5f));
        }
        randomGradients(ad, r);
        assertEquals(8, alloc.updateAndAllocate(5));
        for (LoraLayer l : ad.layers()) {
            assertArrayEquals(fin.get(l.path()), ad.rankPattern().get(l.path()));
            for (int j = 0; j < l.r; j++) {
                assertEquals(fin.get(l.path())[j] ? 0.5f : 0f, l.e.get(j));
            }
        }
        for (float[] v : alloc.state().values()) {
            assertArrayEquals(new float[v.length], v, "no scoring after T − tfinal");
        }
    }

    @Test
    void targetEqualToInitCutsNothing() {
        // PEFT's torch.kthvalue(k = 0) raises here; the allocator keeps every triplet
        LoraAdapter ad = adapter(config(3, 3, 0, 0, 1, 4));
        RankAllocator alloc = new RankAllocator(ad);
        for (int step = 0; step < 4; step++) {
            randomGradients(ad, new SplittableRandom(step));
            alloc.updateAndAllocate(step);
        }
        assertEquals(12, alloc.keptTriplets());
        assertFalse(ad.layers().stream().anyMatch(l -> Arrays.equals(l.e.toArray(), new float[l.r])));
    }

    /** Random distinct EMA values, so that triplet scores differ. */
    static void randomScores(RankAllocator alloc, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        for (float[] v : alloc.state().values()) {
            for (int j = 0; j < v.length; j++) {
                v[j] = (float) r.nextDouble();
            }
        }
    }

    static void randomGradients(LoraAdapter ad, SplittableRandom r) {
        for (LoraLayer l : ad.layers()) {
            for (ParamStore.View t : new ParamStore.View[]{l.a, l.e, l.b}) {
                for (int j = 0; j < t.len(); j++) {
                    l.grads()[t.off() + j] = (float) (r.nextDouble() * 2 - 1);
                }
            }
        }
    }

    static float[] filled(int n, float v) {
        float[] a = new float[n];
        Arrays.fill(a, v);
        return a;
    }

    private static double[] box(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }
}

package io.lora4j.model.train;

import io.lora4j.kernels.Orthogonality;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.TinyModel;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class TrainerTest {

    /** Sequences from a fixed cyclic pattern over the tiny vocabulary: learnable. */
    static List<Example> data(int n, int T, long seed) {
        SplittableRandom r = new SplittableRandom(seed);
        List<Example> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            int start = r.nextInt(11);
            int[] tok = new int[T], tg = new int[T];
            for (int t = 0; t < T; t++) {
                tok[t] = (start + 3 * t) % 11;
                tg[t] = (start + 3 * t + 3) % 11;
            }
            out.add(new Example(tok, tg));
        }
        return out;
    }

    static Llama model() {
        return new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 8, false));
    }

    static LoraAdapter adapter(Llama m, float dropout) {
        LoraConfig c = new LoraConfig(4, 8f, dropout, LoraConfig.ALL_LINEAR, null, "none", false, "true", List.of(),
                Map.of(), Map.of(), List.of());
        return new LoraAdapter("default", c, m, 1);
    }

    static TrainConfig cfg(String opt, int steps, int batch, int accum) {
        return new TrainConfig(opt, 1e-2f, 0.01f, 0.9f, 0.999f, 1e-8f, "cosine", 2, steps, batch, accum, 1f, 16, 7,
                true, false, 0, 0f);
    }

    static double[] curve(float dropout, TrainConfig c) {
        Llama m = model();
        Trainer t = new Trainer(m, adapter(m, dropout), c, data(12, 8, 3), data(3, 8, 4));
        double[] losses = new double[c.steps()];
        for (int i = 0; i < c.steps(); i++) {
            losses[i] = t.trainStep().loss();
        }
        return losses;
    }

    @Test
    void sameSeedSameLossCurveBitForBit() {
        TrainConfig c = cfg("adamw", 15, 2, 1);
        assertArrayEquals(curve(0.1f, c), curve(0.1f, c));
    }

    /**
     * LoRA+ only changes learning rates: at ratio 1 (no biases, so every tensor decays as before) the
     * curve is plain training's bit for bit, with both optimizers; at ratio 16 lora_B moves further.
     */
    @Test
    void loraPlusAtRatioOneIsPlainTrainingAndAtSixteenMovesBFurther() {
        for (String opt : new String[]{"adamw", "sgd"}) {
            TrainConfig plain = cfg(opt, 6, 2, 1);
            assertArrayEquals(curve(0.1f, plain), curve(0.1f, plain.withLoraplusLrRatio(1f)), opt);
        }
        double[] moved = new double[2];
        for (int k = 0; k < 2; k++) {
            Llama m = model();
            LoraAdapter ad = adapter(m, 0f);
            Trainer t = new Trainer(m, ad, cfg("adamw", 5, 2, 1).withLoraplusLrRatio(k == 0 ? 0f : 16f), data(12, 8, 3), List.of());
            float[] b0 = ad.layers().get(0).b.toArray();
            for (int i = 0; i < 5; i++) {
                t.trainStep();
            }
            float[] b1 = ad.layers().get(0).b.toArray();
            for (int i = 0; i < b0.length; i++) {
                moved[k] += Math.abs(b1[i] - b0[i]);
            }
        }
        assertTrue(moved[1] > 5 * moved[0], "lora_B moved " + moved[0] + " without LoRA+, " + moved[1] + " with ratio 16");
    }

    /** PEFT's create_loraplus_optimizer groups: lora_B at the ratio, its bias without decay, the rest (lora_E too) at lr. */
    @Test
    void loraPlusGroupsArePeftsGroups() {
        Llama m = model();
        LoraConfig c = new LoraConfig(2, 4f, 0f, List.of("q_proj", "v_proj"), null, "lora_only", false, "true", List.of(),
                Map.of(), Map.of(), List.of("lm_head"));
        LoraAdapter ad = new LoraAdapter("default", c, m, 1);
        List<ParamGroups.Group> g = ParamGroups.of(ad.store(), 4f).groups();
        for (io.lora4j.model.lora.ParamStore.View v : ad.store().views()) {
            ParamGroups.Group in = g.stream().filter(x -> x.off() <= v.off() && v.off() + v.len() <= x.off() + x.len()).findFirst()
                    .orElseThrow(() -> new AssertionError(v.name() + " spans groups"));
            String want = v.name().endsWith("lora_B.bias") ? "groupB_no_decay" : v.name().endsWith("lora_B") ? "groupB" : "groupA";
            assertEquals(want, in.name(), v.name());
            assertEquals(want.equals("groupA") ? 1f : 4f, in.lrScale(), v.name());
            assertEquals(!want.equals("groupB_no_decay"), in.decay(), v.name());
        }
        assertEquals(List.of(new ParamGroups.Group("all", 0, ad.store().size(), 1f, true)), ParamGroups.of(ad.store(), 0f).groups());
        // DoRA's magnitude (one-dimensional, no "bias" in its name) joins lora_B, as PEFT 0.21 groups it
        LoraAdapter dora = new LoraAdapter("d", LoraConfig.of(2, 4f, List.of("q_proj")).withDora(true), m, 1);
        List<ParamGroups.Group> dg = ParamGroups.of(dora.store(), 4f).groups();
        io.lora4j.model.lora.LoraLayer q0 = dora.get(0, io.lora4j.model.arch.LinearModule.Q_PROJ);
        assertEquals(new ParamGroups.Group("groupB", q0.b.off(), q0.b.len() + q0.magnitude.len(), 4f, true), dg.get(1));
        LoraAdapter ada = adaLora(m, 10);
        for (ParamGroups.Group x : ParamGroups.of(ada.store(), 4f).groups()) {
            for (io.lora4j.model.lora.ParamStore.View v : ada.store().views()) {
                if (v.name().endsWith("lora_E") && x.off() <= v.off() && v.off() < x.off() + x.len()) {
                    assertEquals("groupA", x.name(), "AdaLoRA's lora_E ([r, 1] in PEFT) is not one-dimensional: group A");
                }
            }
        }
    }

    @Test
    void adamwAndSgdLowerTheHeldOutLoss() {
        for (String opt : new String[]{"adamw", "sgd"}) {
            Llama m = model();
            LoraAdapter ad = adapter(m, 0f);
            TrainConfig c = new TrainConfig(opt, opt.equals("sgd") ? 0.2f : 1e-2f, 0f, opt.equals("sgd") ? 0.9f : 0.9f,
                    0.999f, 1e-8f, "constant", 0, 60, 2, 1, 1f, 16, 7, true, false, 0, 0f);
            Trainer t = new Trainer(m, ad, c, data(12, 8, 3), data(3, 8, 4));
            double before = t.evalLoss();
            List<Double> evals = new ArrayList<>();
            t.run(new Trainer.Listener() {
                @Override
                public void step(Trainer.StepStats s) {
                }

                @Override
                public void eval(int step, double loss) {
                    evals.add(loss);
                }
            });
            double after = evals.get(evals.size() - 1);
            assertTrue(after < 0.7 * before, opt + ": eval loss " + before + " -> " + after);
            for (LoraLayer l : ad.layers()) {
                boolean moved = false;
                for (float b : l.b.toArray()) {
                    moved |= b != 0f;
                }
                assertTrue(moved, opt + ": " + l.path() + " B never moved");
            }
        }
    }

    @Test
    void accumulationEqualsALargerBatch() {
        // 2 micro-batches of 1 = 1 micro-batch of 2: same sequences, same per-token scaling
        double[] a = curve(0f, new TrainConfig("adamw", 1e-2f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, 5, 2, 1, 0f, 16, 7, false, false, 0, 0f));
        double[] b = curve(0f, new TrainConfig("adamw", 1e-2f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, 5, 1, 2, 0f, 16, 7, false, false, 0, 0f));
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i], 1e-6 * Math.abs(a[i]), "step " + i);
        }
    }

    @Test
    void clippingBoundsTheUpdateNorm() {
        Llama m = model();
        TrainConfig c = new TrainConfig("sgd", 1f, 0f, 0f, 0.999f, 1e-8f, "constant", 0, 1, 1, 1, 1e-3f, 16, 7, false, false, 0, 0f);
        LoraAdapter ad = adapter(m, 0f);
        List<float[]> before = new ArrayList<>();
        for (LoraLayer l : ad.layers()) {
            before.add(l.a.toArray());
            before.add(l.b.toArray());
        }
        Trainer t = new Trainer(m, ad, c, data(2, 8, 3), List.of());
        Trainer.StepStats s = t.trainStep();
        assertTrue(s.gradNorm() > 1e-3, "unclipped norm " + s.gradNorm());
        double moved = 0;
        int k = 0;
        for (LoraLayer l : ad.layers()) {
            for (float[] now : new float[][]{l.a.toArray(), l.b.toArray()}) {
                float[] old = before.get(k++);
                for (int i = 0; i < now.length; i++) {
                    moved += (double) (now[i] - old[i]) * (now[i] - old[i]);
                }
            }
        }
        assertEquals(1e-3, Math.sqrt(moved), 1e-5, "SGD with lr 1 moves the parameters by the clipped norm");
    }

    @Test
    void aNonFiniteLossStopsTrainingWithTheStep() {
        Llama m = model();
        LoraAdapter ad = adapter(m, 0f);
        Trainer t = new Trainer(m, ad, cfg("adamw", 5, 1, 1), data(4, 8, 3), List.of());
        t.trainStep();
        ad.layers().get(0).a.set(0, Float.NaN);
        TrainingDivergedException e = assertThrows(TrainingDivergedException.class, t::trainStep);
        assertTrue(e.getMessage().contains("step 2"), e.getMessage());
    }

    static LoraAdapter adaLora(Llama m, int total) {
        LoraConfig base = new LoraConfig(4, 8f, 0f, LoraConfig.ALL_LINEAR, null, "none", false, "true", List.of(), Map.of(),
                Map.of(), List.of());
        return new LoraAdapter("default", AdaLoraConfig.of(base, 4, 2, 1, 2, 1, 0.85f, 0.85f, 0.5f, total), m, 1);
    }

    @Test
    void orthogonalRegularizerGradientMatchesCentralDifferences() {
        Llama m = model();
        LoraAdapter ad = adaLora(m, 10);
        Trainer t = new Trainer(m, ad, cfg("adamw", 10, 1, 1), data(2, 8, 3), List.of());
        double value = t.orthogonalRegularizer(); // grads were zero: da, db now hold the regulariser's gradient alone
        assertTrue(value > 0, "random A, B are not orthogonal");
        float[] w = ad.store().values, grad = ad.store().grads.clone();
        double worst = 0;
        for (LoraLayer l : ad.layers()) {
            for (io.lora4j.model.lora.ParamStore.View v : List.of(l.a, l.b)) {
                for (int i = v.off(); i < v.off() + v.len(); i += 3) {
                    float orig = w[i];
                    float eps = 1e-3f;
                    w[i] = orig + eps;
                    double lp = t.orthogonalRegularizer();
                    w[i] = orig - eps;
                    double lm = t.orthogonalRegularizer();
                    w[i] = orig;
                    double numeric = (lp - lm) / (2 * eps);
                    worst = Math.max(worst, Math.abs(numeric - grad[i]) / Math.max(1e-4, Math.abs(numeric) + Math.abs(grad[i])));
                }
            }
        }
        assertTrue(worst < 1e-2, "worst relative error " + worst);
        // its value: w · mean over every A and B of ‖G − I‖_F (the kernel is checked against the definition in OpsGradientTest)
        double sum = 0;
        for (LoraLayer l : ad.layers()) {
            float[] d = new float[l.r * l.r];
            Orthogonality.forwardNaive(d, l.a.toArray(), l.r, l.in, true);
            sum += Orthogonality.norm(d, l.r);
            Orthogonality.forwardNaive(d, l.b.toArray(), l.r, l.out, false);
            sum += Orthogonality.norm(d, l.r);
        }
        assertEquals(0.5 * sum / (2 * ad.layers().size()), value, 1e-6 * value);
    }

    @Test
    void adaLoraTrainingAllocatesAfterEveryStepAndEndsAtTheTargetBudget(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir) {
        Llama m = model();
        LoraAdapter ad = adaLora(m, 12);
        Trainer t = new Trainer(m, ad, cfg("adamw", 12, 2, 1), data(12, 8, 3), data(3, 8, 4));
        double before = t.evalLoss();
        List<Trainer.StepStats> stats = new ArrayList<>();
        for (int i = 0; i < 12; i++) {
            stats.add(t.trainStep());
        }
        assertEquals(4 * 14, stats.get(0).budget(), "step 0 ≤ tinit: init_r · modules");
        assertEquals(2 * 14, stats.get(11).budget());
        assertEquals(2 * 14, t.allocator().keptTriplets(), "exactly the target budget at the end");
        int kept = 0;
        for (LoraLayer l : ad.layers()) {
            boolean[] keep = ad.rankPattern().get(l.path());
            for (int j = 0; j < l.r; j++) {
                if (!keep[j]) {
                    assertEquals(0f, l.e.get(j), l.path() + " E " + j + " is cut");
                }
            }
            kept += LoraAdapter.kept(keep);
        }
        assertEquals(28, kept);
        assertTrue(stats.stream().allMatch(s -> s.orthLoss() > 0), "the regulariser is reported");
        assertTrue(t.evalLoss() < before, "held-out loss " + before + " -> " + t.evalLoss());
        // a pruned (saved) AdaLoRA adapter cannot be trained again
        LoraAdapter cut = new LoraAdapter("cut", AdaLoraConfig.of(ad.config(), 4, 2, 1, 2, 1, 0.85f, 0.85f, 0.5f, 12), m, 1);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new Trainer(m, prunedCopy(cut, dir),
                cfg("adamw", 3, 1, 1), data(2, 8, 3), List.of()));
        assertTrue(e.getMessage().contains("already pruned"), e.getMessage());
    }

    /** The adapter as PEFT saves and loads it: through the files, cut to a rank pattern. */
    private static LoraAdapter prunedCopy(LoraAdapter a, java.nio.file.Path dir) {
        Map<String, boolean[]> pattern = new java.util.LinkedHashMap<>();
        for (LoraLayer l : a.layers()) {
            boolean[] keep = new boolean[l.r];
            keep[0] = true;
            pattern.put(l.path(), keep);
        }
        a.setRankPattern(pattern);
        io.lora4j.model.lora.PeftAdapters.save(a, model(), dir);
        return io.lora4j.model.lora.PeftAdapters.load(dir, model(), "cut");
    }

    @Test
    void schedulesFollowTransformersFormulas() {
        Schedule lin = new Schedule("linear", 1f, 10, 110);
        assertEquals(0f, lin.lr(0));
        assertEquals(0.5f, lin.lr(5), 1e-7);
        assertEquals(1f, lin.lr(10), 1e-7);
        assertEquals(0.5f, lin.lr(60), 1e-7);
        assertEquals(0f, lin.lr(110), 1e-7);
        Schedule cos = new Schedule("cosine", 2f, 0, 100);
        assertEquals(2f, cos.lr(0), 1e-7);
        assertEquals(1f, cos.lr(50), 1e-6);
        assertEquals(0f, cos.lr(100), 1e-6);
        assertEquals(3f, new Schedule("constant", 3f, 4, 10).lr(7));
        assertEquals(1.5f, new Schedule("constant", 3f, 4, 10).lr(2));
        assertThrows(IllegalArgumentException.class, () -> new Schedule("step", 1f, 0, 10));
    }
}

package io.lora4j.model.train;

import io.lora4j.model.Llama;
import io.lora4j.model.LlamaConfig;
import io.lora4j.model.TinyModel;
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
                true, false, 0);
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

    @Test
    void adamwAndSgdLowerTheHeldOutLoss() {
        for (String opt : new String[]{"adamw", "sgd"}) {
            Llama m = model();
            LoraAdapter ad = adapter(m, 0f);
            TrainConfig c = new TrainConfig(opt, opt.equals("sgd") ? 0.2f : 1e-2f, 0f, opt.equals("sgd") ? 0.9f : 0.9f,
                    0.999f, 1e-8f, "constant", 0, 60, 2, 1, 1f, 16, 7, true, false, 0);
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
                for (float b : l.b) {
                    moved |= b != 0f;
                }
                assertTrue(moved, opt + ": " + l.path() + " B never moved");
            }
        }
    }

    @Test
    void accumulationEqualsALargerBatch() {
        // 2 micro-batches of 1 = 1 micro-batch of 2: same sequences, same per-token scaling
        double[] a = curve(0f, new TrainConfig("adamw", 1e-2f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, 5, 2, 1, 0f, 16, 7, false, false, 0));
        double[] b = curve(0f, new TrainConfig("adamw", 1e-2f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, 5, 1, 2, 0f, 16, 7, false, false, 0));
        for (int i = 0; i < a.length; i++) {
            assertEquals(a[i], b[i], 1e-6 * Math.abs(a[i]), "step " + i);
        }
    }

    @Test
    void clippingBoundsTheUpdateNorm() {
        Llama m = model();
        TrainConfig c = new TrainConfig("sgd", 1f, 0f, 0f, 0.999f, 1e-8f, "constant", 0, 1, 1, 1, 1e-3f, 16, 7, false, false, 0);
        LoraAdapter ad = adapter(m, 0f);
        List<float[]> before = new ArrayList<>();
        for (LoraLayer l : ad.layers()) {
            before.add(l.a.clone());
            before.add(l.b.clone());
        }
        Trainer t = new Trainer(m, ad, c, data(2, 8, 3), List.of());
        Trainer.StepStats s = t.trainStep();
        assertTrue(s.gradNorm() > 1e-3, "unclipped norm " + s.gradNorm());
        double moved = 0;
        int k = 0;
        for (LoraLayer l : ad.layers()) {
            for (float[] now : new float[][]{l.a, l.b}) {
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
        ad.layers().get(0).a[0] = Float.NaN;
        TrainingDivergedException e = assertThrows(TrainingDivergedException.class, t::trainStep);
        assertTrue(e.getMessage().contains("step 2"), e.getMessage());
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

package io.lora4j.tests;

import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.State;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.train.Datasets;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import org.junit.jupiter.api.Test;

import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** LoRA on the real stories260K: learning, and the invariants (disabled = base, base untouched, all tensors move). */
class LoraTrainingTest {

    static Path demoStories() throws Exception {
        Path p = Files.createTempFile("stories", ".txt");
        try (var in = io.lora4j.cli.Main.class.getResourceAsStream("demo-stories.txt")) {
            Files.write(p, in.readAllBytes());
        }
        return p;
    }

    static String digest(LoadedModel lm) throws Exception {
        MessageDigest md = MessageDigest.getInstance("SHA-256");
        for (TensorInfo t : lm.source().tensors().values()) {
            md.update(t.data().toArray(ValueLayout.JAVA_BYTE));
        }
        return HexFormat.of().formatHex(md.digest());
    }

    static float[] logits(Llama m, int[] ids) {
        try (Backend b = Backend.named("jvm")) {
            State s = m.newState(16, 64);
            return m.forward(b, s, ids, 0, ids.length, 0).clone();
        }
    }

    @Test
    void loraOnAttentionLowersHeldOutLossAndKeepsTheBaseIntact() throws Exception {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            String before = digest(lm);
            int[] probe = {1, 403, 407, 261, 378};
            float[] base = logits(m, probe);

            List<Example> all = Datasets.load(demoStories(), lm.tokenizer(), 64).examples();
            Datasets.Split split = Datasets.split(all, 0.2, 42);
            LoraConfig lc = new LoraConfig(8, 16f, 0.1f, List.of("q_proj", "k_proj", "v_proj", "o_proj"), null, "none",
                    false, "true", List.of(), java.util.Map.of(), java.util.Map.of(), List.of());
            LoraAdapter ad = new LoraAdapter("default", lc, m, 42);
            List<float[]> initialA = ad.layers().stream().map(l -> l.a.toArray()).toList();
            TrainConfig tc = new TrainConfig("adamw", 5e-4f, 0f, 0.9f, 0.999f, 1e-8f, "cosine", 10, 300, 2, 1, 1f,
                    64, 42, true, false, 0, 0f);
            Trainer t = new Trainer(m, ad, tc, split.train(), split.eval());
            double evalBefore = t.evalLoss();
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
            double evalAfter = evals.get(evals.size() - 1);
            assertTrue(evalAfter < evalBefore - 0.2, "held-out loss " + evalBefore + " -> " + evalAfter);

            // every adapter tensor moved (B starts at zero, A from its kaiming init)
            assertEquals(20, ad.layers().size());
            for (int i = 0; i < ad.layers().size(); i++) {
                LoraLayer l = ad.layers().get(i);
                assertTrue(anyNonZero(l.b.toArray()), l.path() + ".lora_B did not move");
                assertTrue(maxDiff(initialA.get(i), l.a.toArray()) > 0, l.path() + ".lora_A did not move");
            }
            // the memory-mapped base is bitwise unchanged
            assertEquals(before, digest(lm));
            // adapter disabled: the base logits, bitwise; enabled: different
            m.adapters().set(ad);
            float[] adapted = logits(m, probe);
            m.adapters().set(null);
            assertArrayEquals(base, logits(m, probe));
            assertTrue(maxDiff(base, adapted) > 1e-3, "the adapter changes the output");
        }
    }

    @Test
    void anUntrainedAdapterIsTheBaseModel() {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            int[] probe = {1, 403, 407, 261, 378, 432};
            float[] base = logits(m, probe);
            m.adapters().set(new LoraAdapter("default", LoraConfig.of(8, 16f, LoraConfig.ALL_LINEAR), m, 1));
            assertArrayEquals(base, logits(m, probe), "B = 0 at init, so the adapter adds exactly zero");
            m.adapters().set(null);
        }
    }

    static boolean anyNonZero(float[] a) {
        for (float x : a) {
            if (x != 0f) {
                return true;
            }
        }
        return false;
    }

    static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }
}

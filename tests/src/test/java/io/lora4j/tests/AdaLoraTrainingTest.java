package io.lora4j.tests;

import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.AdaLoraExport;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.train.Datasets;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import static io.lora4j.tests.LoraTrainingTest.logits;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * AdaLoRA on the real stories260K (q, k, v, o of 5 layers = 20 modules): init_r 12 → target_r 4
 * ends with exactly 4·20 triplets, lowers the held-out loss, and the saved adapter, its export to
 * plain LoRA and the merged model all give the trained adapter's logits.
 */
class AdaLoraTrainingTest {
    static final int[] PROBE = {1, 403, 407, 261, 378, 432, 383};

    @Test
    void twelveToFourEndsAtTheTargetBudgetLearnsAndExportsTheSameLogits(@TempDir Path dir) throws Exception {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            String digest = LoraTrainingTest.digest(lm);
            List<Example> all = Datasets.load(LoraTrainingTest.demoStories(), lm.tokenizer(), 64).examples();
            Datasets.Split split = Datasets.split(all, 0.2, 42);
            LoraConfig base = new LoraConfig(12, 16f, 0f, List.of("q_proj", "k_proj", "v_proj", "o_proj"), null, "none", false,
                    "true", List.of(), Map.of(), Map.of(), List.of());
            AdaLoraConfig ac = AdaLoraConfig.of(base, 12, 4, 10, 15, 1, 0.85f, 0.85f, 0.5f, 50);
            LoraAdapter ad = new LoraAdapter("default", ac, m, 42);
            TrainConfig tc = new TrainConfig("adamw", 5e-3f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, 50, 2, 1, 1f, 64, 42,
                    true, false, 0, 0f);
            Trainer t = new Trainer(m, ad, tc, split.train(), split.eval());
            double before = t.evalLoss();
            List<Integer> budgets = new ArrayList<>();
            List<Double> evals = new ArrayList<>();
            t.run(new Trainer.Listener() {
                @Override
                public void step(Trainer.StepStats s) {
                    budgets.add(s.budget());
                }

                @Override
                public void eval(int step, double loss) {
                    evals.add(loss);
                }
            });
            double after = evals.get(evals.size() - 1);
            assertTrue(after < before - 0.1, "held-out loss " + before + " -> " + after);
            assertEquals(240, budgets.get(0));
            assertEquals(80, budgets.get(budgets.size() - 1));
            assertEquals(80, t.allocator().keptTriplets(), "exactly target_r · modules triplets kept");
            assertEquals(digest, LoraTrainingTest.digest(lm), "the memory-mapped base is untouched");

            float[] trained = logits(withAdapter(m, ad), PROBE);
            Path adaDir = dir.resolve("adalora"), loraDir = dir.resolve("lora");
            PeftAdapters.save(ad, m, adaDir);
            long ranks = 0;
            try (SafetensorsFile st = SafetensorsFile.open(adaDir.resolve(PeftAdapters.WEIGHTS))) {
                for (LoraLayer l : ad.layers()) {
                    ranks += st.fileShape("base_model.model." + l.path() + ".lora_E")[0];
                }
            }
            assertEquals(80, ranks, "the saved adapter holds the target budget");
            float[] loaded = logits(withAdapter(m, PeftAdapters.load(adaDir, m, "default")), PROBE);
            assertClose(trained, loaded, "saved AdaLoRA (pruned)");
            AdaLoraExport.toLora(adaDir, loraDir);
            LoraAdapter exported = PeftAdapters.load(loraDir, m, "lora");
            assertEquals(80, exported.layers().stream().mapToInt(l -> l.r).sum());
            assertClose(trained, logits(withAdapter(m, exported), PROBE), "exported plain LoRA");
            m.adapters().set(null);
            m.merge(ad);
            assertClose(trained, logits(m, PROBE), "merged");
            m.unmerge();
        }
    }

    static Llama withAdapter(Llama m, LoraAdapter a) {
        m.adapters().set(a);
        return m;
    }

    static void assertClose(float[] want, float[] got, String what) {
        double worst = 0;
        for (int i = 0; i < want.length; i++) {
            worst = Math.max(worst, Math.abs(want[i] - got[i]));
        }
        assertTrue(worst <= 1e-4, what + ": max logit difference " + worst);
    }
}

package io.lora4j.tests;

import com.fasterxml.jackson.databind.JsonNode;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.ParamStore;
import io.lora4j.model.lora.TorchRandom;
import io.lora4j.model.train.ParamGroups;
import io.lora4j.model.train.TrainConfig;
import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * LoRA+ against PEFT's {@code create_loraplus_optimizer} + torch's AdamW (lr 2e-3, ratio 16,
 * loraplus_weight_decay 0.1) on q/v of stories260K with lora_B biases and a trained lm_head; and
 * {@link TorchRandom} against torch's CPU generator.
 */
class PeftLoraPlusReferenceTest {

    @Test
    void torchRandomDrawsWhatTorchDraws() {
        Map<String, float[]> t = PeftReference.tensors(PeftReference.dir().resolve("rng.safetensors"));
        TorchRandom r = new TorchRandom(7);
        float[] u = new float[20];
        for (int i = 0; i < u.length; i++) {
            u[i] = (float) (r.uniform() * 2.0 - 1.0); // uniform_(-1, 1)
        }
        PeftReference.assertClose(t.get("uniform"), u, 0, "uniform_");
        for (String k : List.of("randn_vector", "randn_scalar", "randn_scalar2")) {
            float[] n = new float[t.get(k).length];
            r.randn(n, 0, n.length);
            PeftReference.assertClose(t.get(k), n, 1e-6, k); // torch evaluates log/sin/cos with approximations
        }
        float[] b = new float[64];
        for (int i = 0; i < b.length; i++) {
            b[i] = r.bernoulli(0.3f) ? 1 : 0;
        }
        PeftReference.assertClose(t.get("bernoulli"), b, 0, "bernoulli");
    }

    @Test
    void groupsAndTwoAdamWStepsArePefts() {
        JsonNode ref = PeftReference.json(PeftReference.dir().resolve("loraplus.json"));
        Map<String, float[]> t = PeftReference.tensors(PeftReference.dir().resolve("loraplus.safetensors"));
        float lr = (float) ref.get("lr").asDouble(), ratio = (float) ref.get("loraplus_lr_ratio").asDouble();
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            LoraConfig lc = new LoraConfig(4, 8f, 0f, List.of("q_proj", "v_proj"), null, "lora_only", false, "false", List.of(),
                    Map.of(), Map.of(), List.of("lm_head"));
            LoraAdapter ad = new LoraAdapter("default", lc, lm.llama(), 1);
            ParamStore store = ad.store();
            ParamGroups groups = ParamGroups.of(store, ratio);
            JsonNode params = ref.get("params");
            assertEquals(params.size(), store.views().size(), "one PEFT parameter per lora4j tensor");
            for (ParamStore.View v : store.views()) {
                JsonNode p = params.get(v.name());
                assertTrue(p != null, v.name() + " has no PEFT parameter");
                ParamGroups.Group g = groups.groups().stream().filter(x -> x.off() <= v.off() && v.off() < x.off() + x.len())
                        .findFirst().orElseThrow();
                assertEquals(p.get("group").asText(), g.name(), v.name());
                assertEquals(p.get("lr").asDouble(), lr * g.lrScale(), 1e-7 * p.get("lr").asDouble(), v.name() + " lr");
                assertEquals(p.get("weight_decay").asDouble() > 0, g.decay(), v.name() + " weight decay");
            }
            TrainConfig cfg = new TrainConfig("adamw", lr, (float) ref.get("loraplus_weight_decay").asDouble(), 0.9f, 0.999f, 1e-8f,
                    "constant", 0, 2, 1, 1, 0f, 16, 1, false, false, 0, ratio);
            List<ParamStore.View> compared = store.views().stream().filter(v -> t.containsKey(v.name() + ".before")).toList();
            assertEquals(store.views().size() - 1, compared.size(), "all but lm_head have values in the reference");
            for (ParamStore.View v : compared) {
                v.load(t.get(v.name() + ".before"));
            }
            for (int step = 1; step <= 2; step++) {
                java.util.Arrays.fill(store.grads, 0f);
                for (ParamStore.View v : compared) {
                    System.arraycopy(t.get(v.name() + ".grad" + step), 0, store.grads, v.off(), v.len());
                }
                groups.update(store, store.firstMoments(), store.secondMoments(), cfg, lr, step);
                for (ParamStore.View v : compared) {
                    PeftReference.assertClose(t.get(v.name() + ".after" + step), v.toArray(), 1e-6, v.name() + " after step " + step);
                }
            }
        }
    }
}

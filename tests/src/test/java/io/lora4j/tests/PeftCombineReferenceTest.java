package io.lora4j.tests;

import com.fasterxml.jackson.databind.JsonNode;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Llama;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.lora.WeightedAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * {@code add_weighted_adapter} against what real PEFT wrote for the same three adapters on stories260K
 * ({@code combine/cases.json}): every combination type, negative weights, both majority-sign methods, an
 * svd_rank, a clamp, and DARE's masks from {@code torch.manual_seed(seed)}. Factor types, cat and DARE to
 * float rounding; the svd types by their update B·A and their factors up to the sign of each singular pair;
 * the clamp by applying lora4j's clamp to PEFT's unclamped factors.
 */
class PeftCombineReferenceTest {

    @Test
    void everyCombinationTypeWritesWhatPeftWrites(@TempDir Path tmp) {
        Path root = PeftReference.dir().resolve("combine");
        JsonNode cases = PeftReference.json(root.resolve("cases.json")).path("cases");
        Set<String> types = new HashSet<>();
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            Map<String, LoraAdapter> inputs = Map.of(
                    "x", PeftAdapters.load(root.resolve("inputs/x"), m, "x"),
                    "y", PeftAdapters.load(root.resolve("inputs/y"), m, "y"),
                    "z", PeftAdapters.load(root.resolve("inputs/z"), m, "z"));
            for (JsonNode c : cases) {
                String name = c.path("name").asText(), type = c.path("combination_type").asText();
                types.add(type);
                List<LoraAdapter> ads = new ArrayList<>();
                List<Float> weights = new ArrayList<>();
                for (int i = 0; i < c.path("adapters").size(); i++) {
                    ads.add(inputs.get(c.path("adapters").get(i).asText()));
                    weights.add((float) c.path("weights").get(i).asDouble());
                }
                var o = new WeightedAdapters.Options(type, c.path("svd_rank").asInt(0),
                        c.has("svd_clamp") ? c.get("svd_clamp").asDouble() : null,
                        c.has("density") ? c.get("density").asDouble() : null,
                        c.path("majority_sign_method").asText("total"), c.path("seed").asLong(0));
                LoraAdapter out = WeightedAdapters.combine(m, ads, weights, name, o);
                Path dir = tmp.resolve(name);
                PeftAdapters.save(out, m, dir);
                Path peftDir = root.resolve(name);
                JsonNode want = PeftReference.json(peftDir.resolve(PeftAdapters.CONFIG));
                JsonNode got = PeftReference.json(dir.resolve(PeftAdapters.CONFIG));
                assertEquals(want.get("r").asInt(), got.get("r").asInt(), name + ": r");
                assertEquals(want.get("lora_alpha").asDouble(), got.get("lora_alpha").asDouble(), name + ": lora_alpha");
                assertEquals(strings(want.get("target_modules")), strings(got.get("target_modules")), name + ": target_modules");
                Map<String, float[]> pw = PeftReference.tensors(peftDir.resolve(PeftAdapters.WEIGHTS));
                Map<String, float[]> lw = PeftReference.tensors(dir.resolve(PeftAdapters.WEIGHTS));
                assertEquals(pw.keySet(), lw.keySet(), name + ": tensors");
                int r = want.get("r").asInt();
                for (String k : pw.keySet()) {
                    if (!k.endsWith("lora_A.weight")) {
                        continue;
                    }
                    String kb = k.replace("lora_A", "lora_B");
                    String what = name + " " + k.substring(0, k.length() - ".lora_A.weight".length());
                    if (!type.contains("svd") || c.path("adapters").size() == 1) { // one adapter: always linear
                        PeftReference.assertClose(pw.get(k), lw.get(k), 2e-6, what + ".lora_A");
                        PeftReference.assertClose(pw.get(kb), lw.get(kb), 2e-6, what + ".lora_B");
                        continue;
                    }
                    if (c.has("svd_clamp")) {
                        continue; // the quantile depends on the signs of the singular vectors: clampWithPeftsSigns
                    }
                    PeftReference.assertClose(PeftReference.product(pw.get(k), pw.get(kb), r),
                            PeftReference.product(lw.get(k), lw.get(kb), r), 2e-5, what + " B·A");
                    PeftReference.assertCloseUpToSign(pw.get(k), pw.get(kb), lw.get(k), lw.get(kb), r, 2e-4, what);
                }
            }
        }
        assertEquals(Set.copyOf(WeightedAdapters.TYPES), types, "every combination type has a case");
    }

    /** PEFT's svd_clamp: lora4j's clamp of PEFT's unclamped rank-3 factors gives PEFT's clamped ones. */
    @Test
    void clampOfPeftsFactorsIsPeftsClamp() {
        Path root = PeftReference.dir().resolve("combine");
        Map<String, float[]> plain = PeftReference.tensors(root.resolve("svd_r3").resolve(PeftAdapters.WEIGHTS));
        Map<String, float[]> clamped = PeftReference.tensors(root.resolve("svd_r3_clamp").resolve(PeftAdapters.WEIGHTS));
        int n = 0;
        for (String k : plain.keySet()) {
            if (!k.endsWith("lora_A.weight")) {
                continue;
            }
            String kb = k.replace("lora_A", "lora_B");
            float[] a = plain.get(k).clone(), b = plain.get(kb).clone();
            WeightedAdapters.clamp(b, a, 0.9);
            PeftReference.assertClose(clamped.get(k), a, 0, k);
            PeftReference.assertClose(clamped.get(kb), b, 0, kb);
            n++;
        }
        assertEquals(6, n);
    }

    /**
     * svd_clamp end to end: lora4j's unclamped rank-3 factors, each singular pair given the sign PEFT's
     * has, clamped at the 0.9 quantile, are PEFT's clamped factors.
     */
    @Test
    void clampWithPeftsSignsIsPeftsClamp(@TempDir Path dir) {
        Path root = PeftReference.dir().resolve("combine");
        Map<String, float[]> plain = PeftReference.tensors(root.resolve("svd_r3").resolve(PeftAdapters.WEIGHTS));
        Map<String, float[]> clamped = PeftReference.tensors(root.resolve("svd_r3_clamp").resolve(PeftAdapters.WEIGHTS));
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            LoraAdapter x = PeftAdapters.load(root.resolve("inputs/x"), m, "x"), y = PeftAdapters.load(root.resolve("inputs/y"), m, "y");
            LoraAdapter out = WeightedAdapters.combine(m, List.of(x, y), List.of(0.7f, -0.4f), "svd3", "svd", 3);
            PeftAdapters.save(out, m, dir);
            Map<String, float[]> mine = PeftReference.tensors(dir.resolve(PeftAdapters.WEIGHTS));
            for (String k : plain.keySet()) {
                if (!k.endsWith("lora_A.weight")) {
                    continue;
                }
                String kb = k.replace("lora_A", "lora_B");
                float[] a = mine.get(k).clone(), b = mine.get(kb).clone(), pa = plain.get(k);
                int in = a.length / 3, rows = b.length / 3;
                for (int j = 0; j < 3; j++) {
                    double dot = 0;
                    for (int i = 0; i < in; i++) {
                        dot += (double) a[j * in + i] * pa[j * in + i];
                    }
                    for (int i = 0; dot < 0 && i < in; i++) {
                        a[j * in + i] = -a[j * in + i];
                    }
                    for (int o = 0; dot < 0 && o < rows; o++) {
                        b[o * 3 + j] = -b[o * 3 + j];
                    }
                }
                WeightedAdapters.clamp(b, a, 0.9);
                PeftReference.assertClose(clamped.get(k), a, 2e-5, k);
                PeftReference.assertClose(clamped.get(kb), b, 2e-5, kb);
            }
        }
    }

    private static Set<String> strings(JsonNode array) {
        Set<String> s = new HashSet<>();
        array.forEach(x -> s.add(x.asText()));
        return s;
    }
}

package io.lora4j.tests;

import com.fasterxml.jackson.databind.JsonNode;
import io.lora4j.model.JvmBackend;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Llama;
import io.lora4j.model.State;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.ParamStore;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.train.TrainGraph;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.EnumSet;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * DoRA against real PEFT 0.21 ({@code LoraConfig(use_dora=True)}, {@code get_peft_model}, autograd) on
 * stories260K, r 4, alpha 8, all seven projections of every block, A and B random, magnitudes away from
 * the row norms ({@code peft-reference/dora/}, made by {@code make_reference.py}): the gradients of A, B
 * and m of a 32-token sequence's mean loss, the logits unmerged and after {@code merge_and_unload}, and
 * greedy tokens of PEFT's saved adapter in lora4j and of lora4j's saved adapter in PEFT.
 */
class PeftDoraReferenceTest {
    private static final String PREFIX = "base_model.model.";

    private static Path ref() {
        return PeftReference.dir().resolve("dora");
    }

    private static int[] tokens() {
        return PeftReference.ints(PeftReference.json(ref().resolve("reference.json")).path("tokens"));
    }

    /** lora4j's gradients against PEFT's autograd, tensor by tensor: max |Δ| ≤ 1e-4 · max |PEFT's|. */
    @Test
    void gradientsOfABAndMagnitudeArePeftsForAllSevenProjections() {
        Map<String, float[]> want = PeftReference.tensors(ref().resolve("grads.safetensors"));
        int[] tokens = tokens();
        int T = tokens.length;
        int[] inputs = Arrays.copyOf(tokens, T - 1), targets = Arrays.copyOfRange(tokens, 1, T);
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            LoraAdapter ad = PeftAdapters.load(ref().resolve("peft_saved"), m, "peft");
            assertTrue(ad.config().useDora());
            TrainGraph g = new TrainGraph(m, ad, T - 1, false);
            double loss = g.forwardBackward(inputs, targets, T - 1, 1f / (T - 1), 0) / (T - 1);
            assertEquals(PeftReference.json(ref().resolve("reference.json")).path("loss").asDouble(), loss, 1e-5, "mean loss");
            Set<LinearModule> seen = EnumSet.noneOf(LinearModule.class);
            for (LoraLayer l : ad.layers()) {
                for (ParamStore.View v : new ParamStore.View[]{l.a, l.b, l.magnitude}) {
                    float[] grad = Arrays.copyOfRange(v.grads(), v.off(), v.off() + v.len());
                    int cols = v == l.a ? l.in : v == l.b ? l.r : 1;
                    float[] hf = v == l.a ? grad : hfRows(grad, l.module, m.config(), cols);
                    assertRelative(want.get(v.name()), hf, 1e-4, v.name());
                }
                seen.add(l.module);
            }
            assertEquals(EnumSet.allOf(LinearModule.class), seen);
            assertEquals(want.size(), 3 * ad.layers().size(), "every reference gradient compared");
        }
    }

    /** PEFT's logits of the same sequence, unmerged and merged, and lora4j's merged against its unmerged (≤ 1e-4). */
    @Test
    void logitsUnmergedAndMergedArePefts() {
        Map<String, float[]> want = PeftReference.tensors(ref().resolve("logits.safetensors"));
        int[] tokens = tokens();
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            LoraAdapter ad = PeftAdapters.load(ref().resolve("peft_saved"), m, "peft");
            m.adapters().set(ad);
            float[] unmerged = logits(m, tokens);
            assertRelative(want.get("unmerged"), unmerged, 1e-4, "unmerged logits vs PEFT");
            m.adapters().disable();
            m.merge(ad);
            float[] merged = logits(m, tokens);
            assertRelative(want.get("merged"), merged, 1e-4, "merged logits vs PEFT's merge_and_unload");
            assertRelative(unmerged, merged, 1e-4, "merged vs unmerged");
            m.unmerge();
            float[] base = logits(m, tokens);
            assertTrue(maxAbsDiff(base, unmerged) > 1e-2, "the adapter changes the logits");
        }
    }

    /** PEFT's saved DoRA adapter in lora4j gives PEFT's greedy tokens. */
    @Test
    void peftsAdapterGivesPeftsGreedyTokens() {
        JsonNode r = PeftReference.json(ref().resolve("reference.json"));
        int[] want = PeftReference.ints(r.path("greedy_peft_saved"));
        int[] base = PeftReference.ints(r.path("greedy_base"));
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            lm.llama().adapters().set(PeftAdapters.load(ref().resolve("peft_saved"), lm.llama(), "peft"));
            int[] got = Shared.apiTokens(lm, new int[]{1}, Shared.cliSampling(0f, 0), want.length - 1);
            assertArrayEquals(Arrays.copyOfRange(want, 1, want.length), got, "greedy tokens from BOS");
        }
        assertTrue(!Arrays.equals(want, base), "the adapter changes the greedy tokens");
    }

    /**
     * {@code dora/lora4j_saved} is what lora4j writes for {@link #lora4jAdapter} (so PEFT read lora4j's own
     * file), PEFT loaded it whole (checked by the script) and generated these greedy tokens; lora4j gives the same.
     */
    @Test
    void lora4jsSavedAdapterLoadsInPeftWithTheSameGreedyTokens(@TempDir Path tmp) throws IOException {
        Path committed = ref().resolve("lora4j_saved");
        int[] want = PeftReference.ints(PeftReference.json(ref().resolve("reference.json")).path("greedy_lora4j_saved"));
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            PeftAdapters.save(lora4jAdapter(lm.llama()), lm.llama(), tmp);
            Map<String, float[]> fresh = PeftReference.tensors(tmp.resolve(PeftAdapters.WEIGHTS));
            Map<String, float[]> saved = PeftReference.tensors(committed.resolve(PeftAdapters.WEIGHTS));
            assertEquals(saved.keySet(), fresh.keySet());
            for (String k : saved.keySet()) {
                assertArrayEquals(saved.get(k), fresh.get(k), k);
            }
            assertTrue(saved.keySet().stream().anyMatch(k -> k.endsWith(".lora_magnitude_vector")));
            JsonNode a = PeftReference.json(tmp.resolve(PeftAdapters.CONFIG)), b = PeftReference.json(committed.resolve(PeftAdapters.CONFIG));
            for (Iterator<String> it = b.fieldNames(); it.hasNext(); ) {
                String k = it.next();
                if (!k.equals("base_model_name_or_path")) {
                    assertEquals(b.get(k), a.get(k), "adapter_config.json " + k);
                }
            }
            assertTrue(a.get("use_dora").asBoolean());
            lm.llama().adapters().set(PeftAdapters.load(committed, lm.llama(), "lora4j"));
            int[] got = Shared.apiTokens(lm, new int[]{1}, Shared.cliSampling(0f, 0), want.length - 1);
            assertArrayEquals(Arrays.copyOfRange(want, 1, want.length), got, "PEFT's greedy tokens with lora4j's adapter");
        }
    }

    /**
     * The adapter of {@code dora/lora4j_saved}: DoRA r 4, alpha 8 on q, k, v, o and down of blocks 1 and 4,
     * A and B drawn (init "false", seed 5, B at a twentieth), magnitudes scaled by 0.95 … 1.05 per row.
     */
    static LoraAdapter lora4jAdapter(Llama m) {
        LoraConfig cfg = new LoraConfig(4, 8f, 0f, List.of("q_proj", "k_proj", "v_proj", "o_proj", "down_proj"), null, "none", false,
                "false", List.of(1, 4), Map.of(), Map.of(), List.of(), true);
        LoraAdapter ad = new LoraAdapter("default", cfg, m, 5);
        for (LoraLayer l : ad.layers()) {
            for (int i = 0; i < l.b.len(); i++) {
                l.b.set(i, l.b.get(i) / 20);
            }
            for (int i = 0; i < l.out; i++) {
                l.magnitude.set(i, l.magnitude.get(i) * (0.95f + 0.025f * (i % 5)));
            }
        }
        return ad;
    }

    /** Writes {@link #lora4jAdapter} to {@code args[0]} (make_reference.py's input: see its docstring). */
    public static void main(String[] args) {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            PeftAdapters.save(lora4jAdapter(lm.llama()), lm.llama(), Path.of(args[0]));
        }
    }

    /** (T, V) logits of every position of the sequence. */
    private static float[] logits(Llama m, int[] tokens) {
        int T = tokens.length, V = m.config().vocabSize(), C = m.config().dim();
        State s = new State(m.config(), T, T, T);
        for (int t = 0; t < T; t++) {
            io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), tokens[t], s.x, t * C);
        }
        new JvmBackend().forward(m, s, T, 0, T);
        return Arrays.copyOf(s.logits, T * V);
    }

    /** An (out, cols) q/k matrix from stories260K.gguf's row order to Hugging Face's (others as they are). */
    private static float[] hfRows(float[] x, LinearModule mod, LlamaConfig c, int cols) {
        return switch (mod) {
            case Q_PROJ -> PeftInitReferenceTest.hfRows(x, c.qDim(), cols, c.nHeads());
            case K_PROJ -> PeftInitReferenceTest.hfRows(x, c.kvDim(), cols, c.nKvHeads());
            default -> x;
        };
    }

    /** max |got − want| ≤ tol · max |want|. */
    private static void assertRelative(float[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length, what + ": length");
        double scale = 0;
        for (float w : want) {
            scale = Math.max(scale, Math.abs(w));
        }
        double d = maxAbsDiff(want, got);
        assertTrue(scale > 0, what + ": the reference is all zeros");
        assertTrue(d <= tol * scale, what + ": max |difference| " + d + " > " + tol + " × max |reference| " + scale);
    }

    private static double maxAbsDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }
}

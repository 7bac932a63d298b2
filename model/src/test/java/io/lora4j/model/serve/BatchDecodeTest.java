package io.lora4j.model.serve;

import io.lora4j.model.JvmBackend;
import io.lora4j.model.Llama;
import io.lora4j.model.State;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.lora.AdaLoraConfig;
import io.lora4j.model.lora.AdapterSet;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import org.junit.jupiter.api.Test;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * A server's batched decode step against the single-sequence backend: sequences at different
 * positions with different adapters (LoRA with a bias at weight 0.7, AdaLoRA, both together, none;
 * DoRA adapters in either order with LoRA) give the JVM backend's logits, and a row's logits are the
 * same bits alone and in the batch.
 */
class BatchDecodeTest {
    private static final LlamaConfig C = new LlamaConfig(64, 96, 2, 4, 2, 16, 50, 64, 1e-5f, 10000f, null,
            LlamaConfig.RopeStyle.HALVES, false);

    @Test
    void aBatchedStepGivesEachSequencesOwnLogits() {
        Llama m = new Llama(new TinyModel(C, 9, false));
        LoraAdapter lora = new LoraAdapter("l", new LoraConfig(4, 8f, 0f, LoraConfig.ALL_LINEAR, null, "lora_only", false, "false",
                List.of(), Map.of(), Map.of(), List.of()), m, 1);
        lora.layers().forEach(ll -> {
            for (int i = 0; i < ll.bias.len(); i++) {
                ll.bias.set(i, 0.03f * (i % 5 - 2));
            }
        });
        LoraConfig base = new LoraConfig(3, 6f, 0f, List.of("q_proj", "v_proj", "down_proj"), null, "none", false, "false",
                List.of(), Map.of(), Map.of(), List.of());
        LoraAdapter ada = new LoraAdapter("ada", AdaLoraConfig.of(base, 3, 1, 1, 1, 1, 0.85f, 0.85f, 0.5f, 10), m, 2);
        List<List<AdapterSet.Active>> adapters = List.of(
                List.of(new AdapterSet.Active(lora, 0.7f)),
                List.of(new AdapterSet.Active(ada, 1f)),
                List.of(),
                List.of(new AdapterSet.Active(lora, 1f), new AdapterSet.Active(ada, 0.5f)));
        assertBatchGivesEachRowItsOwnLogits(m, adapters, new int[][]{{1, 5, 9, 2}, {1, 7}, {1, 3, 3, 8, 11, 4, 6}, {1, 12, 13}}, 1);
    }

    /** DoRA rescales what came before it, so a row's adapters apply in the row's order: [LoRA, DoRA] and [DoRA, LoRA] differ. */
    @Test
    void doraBranchesApplyInEachRowsOwnOrder() {
        Llama m = new Llama(new TinyModel(C, 9, false));
        LoraAdapter lora = new LoraAdapter("l", new LoraConfig(4, 8f, 0f, List.of("q_proj", "v_proj", "up_proj"), null, "none",
                false, "false", List.of(), Map.of(), Map.of(), List.of()), m, 1);
        LoraAdapter d1 = dora(m, "d1", List.of("q_proj", "o_proj", "down_proj"), 3), d2 = dora(m, "d2", LoraConfig.ALL_LINEAR, 4);
        List<List<AdapterSet.Active>> adapters = List.of(
                List.of(new AdapterSet.Active(d1, 1f)),
                List.of(new AdapterSet.Active(lora, 1f), new AdapterSet.Active(d2, 0.8f)),
                List.of(new AdapterSet.Active(d2, 0.8f), new AdapterSet.Active(lora, 1f)),
                List.of(),
                List.of(new AdapterSet.Active(d1, 1f), new AdapterSet.Active(d2, 0.8f)));
        int[][] prompts = {{1, 5, 9, 2}, {1, 7}, {1, 7}, {1, 12, 13}, {1, 3, 3, 8}};
        float[][] rows = assertBatchGivesEachRowItsOwnLogits(m, adapters, prompts, 2);
        float diff = 0;
        for (int v = 0; v < C.vocabSize(); v++) {
            diff = Math.max(diff, Math.abs(rows[1][v] - rows[2][v]));
        }
        assertTrue(diff > 1e-3, "LoRA then DoRA vs DoRA then LoRA: logits differ by " + diff + " only");
    }

    /** Bottleneck adapters stack in each row's order, beside LoRA branches, as the single-sequence backend runs them. */
    @Test
    void bottleneckAdaptersApplyInEachRowsOwnOrder() {
        Llama m = new Llama(new TinyModel(C, 9, false));
        LoraAdapter lora = new LoraAdapter("l", new LoraConfig(4, 8f, 0f, List.of("o_proj", "down_proj"), null, "none",
                false, "false", List.of(), Map.of(), Map.of(), List.of()), m, 1);
        LoraAdapter b1 = bottleneck(m, "b1", new io.lora4j.model.lora.BottleneckConfig(true, true, 8, Map.of(), "swish", "bert", 1f,
                List.of(), 0f), 5);
        LoraAdapter b2 = bottleneck(m, "b2", new io.lora4j.model.lora.BottleneckConfig(false, true, 16, Map.of(), "tanh", "bert", 2f,
                List.of(0), 0f), 6);
        List<List<AdapterSet.Active>> adapters = List.of(
                List.of(new AdapterSet.Active(b1, 1f)),
                List.of(new AdapterSet.Active(b1, 1f), new AdapterSet.Active(b2, 0.8f)),
                List.of(new AdapterSet.Active(b2, 0.8f), new AdapterSet.Active(lora, 1f), new AdapterSet.Active(b1, 1f)),
                List.of());
        float[][] rows = assertBatchGivesEachRowItsOwnLogits(m, adapters, new int[][]{{1, 5, 9, 2}, {1, 7}, {1, 7}, {1, 12, 13}}, 1);
        float diff = 0;
        for (int v = 0; v < C.vocabSize(); v++) {
            diff = Math.max(diff, Math.abs(rows[1][v] - rows[2][v]));
        }
        assertTrue(diff > 1e-3, "the adapters change the logits: " + diff);
    }

    /**
     * A server prefills a joining prompt inside a step: its tokens are rows beside other sequences' decode
     * rows, and only the rows that want logits get them. The prompt's last logits are the same bits as
     * feeding it one token per step by itself, and the decode row's are those of its step alone.
     */
    @Test
    void promptRowsInAStepAreTheSameAsOneTokenPerStep() {
        Llama m = new Llama(new TinyModel(C, 9, false));
        LoraAdapter lora = new LoraAdapter("l", new LoraConfig(4, 8f, 0f, LoraConfig.ALL_LINEAR, null, "none", false, "false",
                List.of(), Map.of(), Map.of(), List.of()), m, 1);
        List<AdapterSet.Active> withLora = List.of(new AdapterSet.Active(lora, 1f));
        int V = C.vocabSize(), D = C.dim();
        int[] prompt = {1, 5, 9, 2, 7};
        // alone: one row per step
        State slow = new State(C, 1, 32, 1);
        BatchDecode one = new BatchDecode(m, 1, 4);
        for (int p = 0; p < prompt.length; p++) {
            io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), prompt[p], one.x(), 0);
            one.pos[0] = p;
            one.step(List.of(slow), List.of(withLora), 1);
        }
        float[] want = Arrays.copyOf(one.logits, V);
        // another sequence decoding at position 3 (its cache filled by three single steps), alone
        State other = new State(C, 1, 32, 1);
        for (int p = 0; p < 3; p++) {
            io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), 10 + p, one.x(), 0);
            one.pos[0] = p;
            one.step(List.of(other), List.of(List.of()), 1);
        }
        float[] otherCache = other.kCache[1].clone(), otherV = other.vCache[1].clone();
        io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), 13, one.x(), 0);
        one.pos[0] = 3;
        one.step(List.of(other), List.of(List.of()), 1);
        float[] wantOther = Arrays.copyOf(one.logits, V);
        System.arraycopy(otherCache, 0, other.kCache[1], 0, otherCache.length);
        System.arraycopy(otherV, 0, other.vCache[1], 0, otherV.length);
        // together: the decode row first, then the whole prompt as rows of the same step
        BatchDecode batch = new BatchDecode(m, 1 + prompt.length, 2, 4);
        State fast = new State(C, 1, 32, 1);
        List<State> states = new ArrayList<>(List.of(other));
        List<List<AdapterSet.Active>> adapters = new ArrayList<>(List.of(List.of()));
        io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), 13, batch.x(), 0);
        batch.pos[0] = 3;
        for (int p = 0; p < prompt.length; p++) {
            io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), prompt[p], batch.x(), (1 + p) * D);
            batch.pos[1 + p] = p;
            states.add(fast);
            adapters.add(withLora);
        }
        batch.step(states, adapters, 1 + prompt.length, new int[]{0, prompt.length}, 2);
        assertArrayEquals(wantOther, Arrays.copyOf(batch.logits, V), "the decode row");
        assertArrayEquals(want, Arrays.copyOfRange(batch.logits, V, 2 * V), "the prompt's last row");
        for (int l = 0; l < C.nLayers(); l++) {
            assertArrayEquals(Arrays.copyOf(slow.kCache[l], prompt.length * C.kvDim()),
                    Arrays.copyOf(fast.kCache[l], prompt.length * C.kvDim()), "keys of layer " + l);
        }
    }

    /** A bottleneck adapter whose bert-initialised weights are scaled up to matter. */
    static LoraAdapter bottleneck(Llama m, String name, io.lora4j.model.lora.BottleneckConfig cfg, long seed) {
        LoraAdapter a = new LoraAdapter(name, cfg, m, seed);
        float[] p = a.store().values;
        for (int i = 0; i < p.length; i++) {
            p[i] *= 10;
        }
        return a;
    }

    /** A DoRA adapter with random A and B and magnitudes away from the row norms (g ≠ 1). */
    static LoraAdapter dora(Llama m, String name, List<String> targets, long seed) {
        LoraAdapter a = new LoraAdapter(name, new LoraConfig(3, 6f, 0f, targets, null, "none", false, "false", List.of(), Map.of(),
                Map.of(), List.of(), true), m, seed);
        a.layers().forEach(ll -> {
            for (int i = 0; i < ll.out; i++) {
                ll.magnitude.set(i, ll.magnitude.get(i) * (1f + 0.3f * ((i * 7 + (int) seed) % 5 - 2) / 2f));
            }
        });
        return a;
    }

    /**
     * Prefills each prompt with its row's adapters, then decodes one token per row in one batched step and
     * compares every row with the single-sequence backend's decode; row {@code alone} again by itself gives
     * the same bits. Returns the batch's logits per row.
     */
    private static float[][] assertBatchGivesEachRowItsOwnLogits(Llama m, List<List<AdapterSet.Active>> adapters, int[][] prompts,
                                                                 int alone) {
        LlamaConfig c = m.config();
        int R = prompts.length, V = c.vocabSize();
        JvmBackend jvm = new JvmBackend();
        List<State> states = new ArrayList<>();
        float[][] want = new float[R][];
        for (int t = 0; t < R; t++) {
            // the prompt, then its next token alone through the single-sequence backend
            State s = new State(c, 8, 32, 1), ref = new State(c, 8, 32, 1);
            for (State st : List.of(s, ref)) {
                embed(m, st, prompts[t]);
                jvm.forward(m, st, adapters.get(t), prompts[t].length, 0, 1);
            }
            states.add(s);
            embed(m, ref, new int[]{20 + t});
            jvm.forward(m, ref, adapters.get(t), 1, prompts[t].length, 1);
            want[t] = Arrays.copyOf(ref.logits, V);
        }
        BatchDecode batch = new BatchDecode(m, R, 4);
        for (int t = 0; t < R; t++) {
            io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), 20 + t, batch.x(), t * c.dim());
            batch.pos[t] = prompts[t].length;
        }
        float[][] kvBefore = {states.get(alone).kCache[0].clone()};
        batch.step(states, adapters, R);
        float[][] together = new float[R][];
        for (int t = 0; t < R; t++) {
            together[t] = Arrays.copyOfRange(batch.logits, t * V, (t + 1) * V);
            float worst = 0;
            for (int v = 0; v < V; v++) {
                worst = Math.max(worst, Math.abs(want[t][v] - together[t][v]) / Math.max(1f, Math.abs(want[t][v])));
            }
            assertTrue(worst < 1e-4, "row " + t + ": max relative difference " + worst + " from the single-sequence decode");
        }
        // row `alone` again, by itself, from the same cache state: the same bits
        System.arraycopy(kvBefore[0], 0, states.get(alone).kCache[0], 0, kvBefore[0].length);
        BatchDecode one = new BatchDecode(m, 1, 4);
        io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), 20 + alone, one.x(), 0);
        one.pos[0] = prompts[alone].length;
        one.step(List.of(states.get(alone)), List.of(adapters.get(alone)), 1);
        assertArrayEquals(together[alone], Arrays.copyOf(one.logits, V), "a row's logits do not depend on its batch");
        return together;
    }

    private static void embed(Llama m, State s, int[] ids) {
        for (int t = 0; t < ids.length; t++) {
            io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), ids[t], s.x, t * m.config().dim());
        }
    }
}

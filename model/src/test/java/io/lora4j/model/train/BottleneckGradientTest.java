package io.lora4j.model.train;

import io.lora4j.model.Backend;
import io.lora4j.model.JvmBackend;
import io.lora4j.model.Llama;
import io.lora4j.model.State;
import io.lora4j.model.TinyModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.lora.BottleneckConfig;
import io.lora4j.model.lora.BottleneckLayer;
import io.lora4j.model.lora.LoraAdapter;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;
import java.util.Map;

import static io.lora4j.model.train.TrainGraphGradientTest.TARGETS;
import static io.lora4j.model.train.TrainGraphGradientTest.TOKENS;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Bottleneck adapters (Houlsby) in the block program: the hand-written backward of every module's W_down, b_down,
 * W_up and b_up through the whole model against central differences; checkpointing; the inference executor against
 * the training one; what is refused.
 */
class BottleneckGradientTest {

    /** A Houlsby adapter on the tiny model (dim 16, factor 4: width 4), its bert-initialised weights scaled up to matter. */
    static LoraAdapter adapter(Llama m, String act, boolean mh, boolean out) {
        BottleneckConfig cfg = new BottleneckConfig(mh, out, 4, Map.of(1, 8.0), act, "bert", 0.7f, List.of(), 0f);
        LoraAdapter ad = new LoraAdapter("bn", cfg, m, 17);
        float[] p = ad.store().values;
        for (int i = 0; i < p.length; i++) {
            p[i] = p[i] * 15 + 0.01f * ((i % 7) - 3); // non-zero biases too
        }
        return ad;
    }

    @ParameterizedTest
    @CsvSource({"swish,HALVES", "tanh,ADJACENT", "gelu_new,HALVES"})
    void everyBottleneckGradientMatchesCentralDifferences(String act, LlamaConfig.RopeStyle style) {
        Llama m = new Llama(new TinyModel(TinyModel.config(style), 3, false));
        LoraAdapter ad = adapter(m, act, true, true);
        assertEquals(4, ad.bottleneck(0, Sublayer.ATTENTION).d);
        assertEquals(2, ad.bottleneck(1, Sublayer.FFN).d, "the per-layer reduction factor");
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        g.forwardBackward(TOKENS, TARGETS, TOKENS.length, 1f, 0);
        TrainGraphGradientTest.assertAdapterGradients(g, ad, TOKENS.length, 1, 1, 300);
    }

    @Test
    void checkpointingGivesTheSameGradients() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.ADJACENT), 4, true));
        LoraAdapter a1 = adapter(m, "swish", true, true), a2 = adapter(m, "swish", true, true);
        double l1 = new TrainGraph(m, a1, 8, false).forwardBackward(TOKENS, TARGETS, TOKENS.length, 0.5f, 42);
        double l2 = new TrainGraph(m, a2, 8, true).forwardBackward(TOKENS, TARGETS, TOKENS.length, 0.5f, 42);
        TrainGraphGradientTest.assertSameLossAndGradients(l1, l2, a1, a2);
    }

    /** The inference executor (JvmBackend, token by token through a KV cache) gives the training executor's loss. */
    @ParameterizedTest
    @CsvSource({"true,true", "true,false", "false,true"})
    void inferenceExecutorAgreesWithTraining(boolean mh, boolean out) {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 5, false));
        LoraAdapter ad = adapter(m, "relu", mh, out);
        double train = new TrainGraph(m, ad, 8, false).loss(TOKENS, TARGETS, TOKENS.length);
        double base = new TrainGraph(m, null, 8, false).loss(TOKENS, TARGETS, TOKENS.length);
        m.adapters().set(ad);
        double inference = jvmLoss(m);
        m.adapters().set(null);
        assertEquals(train, inference, 1e-4 * Math.abs(train));
        assertEquals(base, jvmLoss(m), 1e-4 * Math.abs(base), "disabled: the base");
        assertTrue(Math.abs(train - base) > 1e-3, "the adapter changes the loss: " + train + " vs " + base);
    }

    /** Σ_t −log softmax(logits_t)[target_t] from the inference backend, one token at a time. */
    private static double jvmLoss(Llama m) {
        try (Backend b = new JvmBackend()) {
            State s = m.newState(1, 8);
            double sum = 0;
            for (int t = 0; t < TOKENS.length; t++) {
                float[] logits = m.forward(b, s, TOKENS, t, 1, t);
                if (TARGETS[t] < 0) {
                    continue;
                }
                double max = Double.NEGATIVE_INFINITY, z = 0;
                for (float v : logits) {
                    max = Math.max(max, v);
                }
                for (float v : logits) {
                    z += Math.exp(v - max);
                }
                sum += -(logits[TARGETS[t]] - max - Math.log(z));
            }
            return sum;
        }
    }

    @Test
    void aBottleneckAdapterIsNeitherMergedNorCombinedNorTrainedWithDropout() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 5, false));
        LoraAdapter ad = adapter(m, "swish", true, true);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.merge(ad));
        assertTrue(e.getMessage().contains("bottleneck adapter"), e.getMessage());
        BottleneckConfig dropped = new BottleneckConfig(true, true, 4, Map.of(), "swish", "bert", 1f, List.of(), 0.1f);
        e = assertThrows(IllegalArgumentException.class, () -> new TrainGraph(m, new LoraAdapter("d", dropped, m, 1), 8, false));
        assertTrue(e.getMessage().contains("dropout"), e.getMessage());
    }

    @Test
    void sizesFollowAdapterHub() {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 5, false));
        BottleneckConfig cfg = new BottleneckConfig(false, true, 3, Map.of(), "swish", "houlsby", 1f, List.of(0), 0f);
        LoraAdapter ad = new LoraAdapter("bn", cfg, m, 3);
        assertEquals(List.of(), ad.layers());
        assertEquals(null, ad.bottleneck(0, Sublayer.FFN), "leave_out 0");
        assertEquals(null, ad.bottleneck(1, Sublayer.ATTENTION), "mh_adapter false");
        BottleneckLayer b = ad.bottleneck(1, Sublayer.FFN);
        assertEquals(5, b.d, "int(16 // 3)");
        assertEquals(2L * 16 * 5 + 5 + 16, ad.trainableParameters());
        for (int i = 0; i < b.down.len(); i++) {
            assertTrue(Math.abs(b.down.get(i)) <= 0.02f, "houlsby: truncated to ±2σ");
        }
        assertEquals(0f, b.upBias.get(0));
        assertThrows(IllegalArgumentException.class, () -> new BottleneckConfig(false, false, 16, Map.of(), "swish", "bert", 1f, List.of(), 0f));
        assertThrows(IllegalArgumentException.class, () -> new BottleneckConfig(true, true, 16, Map.of(), "mish", "bert", 1f, List.of(), 0f));
        assertThrows(IllegalArgumentException.class, () -> new LoraAdapter("x", new BottleneckConfig(true, true, 16, Map.of(), "relu",
                "bert", 1f, List.of(0, 1), 0f), m, 1), "every layer left out");
    }
}

package io.lora4j.model.train;

import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.Quantization;
import io.lora4j.model.State;
import io.lora4j.model.TinyModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ties training to inference: the loss {@link TrainGraph} computes on a sequence is the mean
 * cross-entropy of the logits that the inference backend computes for the same tokens, with the
 * adapter active (non-zero B and a bias, so its branch counts; or DoRA, magnitudes away from the row
 * norms). A wiring difference between the two
 * executors of the block (a missed adapter, a wrong residual, a RoPE offset) shows here even when
 * every gradient check passes.
 */
class LossMatchesLogitsTest {

    @ParameterizedTest
    @CsvSource({"none,false", "nf4,false", "none,true", "nf4,true"})
    void trainingLossIsTheMeanCrossEntropyOfTheInferenceLogits(String quant, boolean dora) {
        LlamaConfig c = new LlamaConfig(64, 96, 2, 4, 2, 16, 50, 64, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.HALVES, false);
        Llama m = new Llama(new TinyModel(c, 5, false), Quantization.parse(quant, !quant.equals("none")));
        assertEquals(!quant.equals("none"), m.quantizedBase());
        LoraConfig cfg = new LoraConfig(4, 8f, 0f, LoraConfig.ALL_LINEAR, null, dora ? "none" : "lora_only", false, "false",
                List.of(), Map.of(), Map.of(), List.of(), dora);
        LoraAdapter ad = new LoraAdapter("default", cfg, m, 3);
        ad.layers().forEach(ll -> {
            for (int i = 0; i < ll.out; i++) {
                if (dora) {
                    ll.magnitude.set(i, ll.magnitude.get(i) * (0.8f + 0.1f * (i % 5)));
                } else {
                    ll.bias.set(i, 0.02f * (i % 5 - 2));
                }
            }
        });
        int T = 13;
        int[] tokens = new int[T], targets = new int[T];
        for (int t = 0; t < T; t++) {
            tokens[t] = (7 * t + 1) % c.vocabSize();
            targets[t] = (7 * t + 8) % c.vocabSize();
        }
        double trainLoss = new TrainGraph(m, ad, T, false).loss(tokens, targets, T) / T;

        m.adapters().set(ad);
        State s = new State(c, T, c.contextLength(), T);
        for (int t = 0; t < T; t++) {
            io.lora4j.kernels.Dequant.row(m.tokenEmbedding(), tokens[t], s.x, t * c.dim());
        }
        try (Backend jvm = Backend.named("jvm")) {
            jvm.forward(m, s, T, 0, T);
        }
        int V = c.vocabSize();
        double sum = 0;
        for (int t = 0; t < T; t++) {
            double max = Double.NEGATIVE_INFINITY;
            for (int v = 0; v < V; v++) {
                max = Math.max(max, s.logits[t * V + v]);
            }
            double z = 0;
            for (int v = 0; v < V; v++) {
                z += Math.exp(s.logits[t * V + v] - max);
            }
            sum += max + Math.log(z) - s.logits[t * V + targets[t]];
        }
        double inferenceLoss = sum / T;
        assertTrue(Math.abs(trainLoss - inferenceLoss) <= 1e-5 * Math.abs(inferenceLoss),
                quant + (dora ? " DoRA" : "") + ": training loss " + trainLoss + ", inference cross-entropy " + inferenceLoss);
    }
}

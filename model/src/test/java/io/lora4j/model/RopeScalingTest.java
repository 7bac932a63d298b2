package io.lora4j.model;

import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Rope;
import io.lora4j.model.format.TensorInfo;
import org.junit.jupiter.api.Test;

import java.lang.foreign.MemorySegment;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Llama-3 RoPE scaling reaches the forward pass both ways: from the config (HF rope_scaling) and
 * from llama.cpp's {@code rope_freqs.weight} divisors; the two give the same logits, and differ
 * from the unscaled model at long positions.
 */
class RopeScalingTest {

    @Test
    void configScalingAndRopeFreqsTensorAgree() {
        LlamaConfig plain = new LlamaConfig(16, 24, 2, 4, 2, 4, 11, 512, 1e-5f, 10000f, null, LlamaConfig.RopeStyle.ADJACENT, false);
        LlamaConfig.RopeScaling rs = new LlamaConfig.RopeScaling(8f, 1f, 4f, 16);
        LlamaConfig scaledCfg = new LlamaConfig(16, 24, 2, 4, 2, 4, 11, 512, 1e-5f, 10000f, rs, LlamaConfig.RopeStyle.ADJACENT, false);
        TinyModel scaled = new TinyModel(scaledCfg, 7, false);
        TinyModel viaTensor = new TinyModel(plain, 7, false);
        float[] base = Rope.frequencies(4, 10000f);
        float[] want = base.clone();
        Rope.applyLlama3Scaling(want, 8f, 1f, 4f, 16);
        float[] divisors = new float[base.length];
        for (int i = 0; i < base.length; i++) {
            divisors[i] = base[i] / want[i];
        }
        viaTensor.tensors().put("rope_freqs.weight", new TensorInfo("rope_freqs.weight", GgmlType.F32, new long[]{2},
                MemorySegment.ofArray(divisors)));
        assertTrue(divisors[1] > 1f, "the low-frequency pair is scaled");

        Llama a = new Llama(scaled), b = new Llama(viaTensor), c = new Llama(new TinyModel(plain, 7, false));
        int[] ids = new int[300];
        for (int i = 0; i < ids.length; i++) {
            ids[i] = (i * 7 + 3) % 11;
        }
        try (Backend be = Backend.named("jvm")) {
            float[] la = a.forward(be, a.newState(64, 512), ids, 0, ids.length, 0).clone();
            float[] lb = b.forward(be, b.newState(64, 512), ids, 0, ids.length, 0).clone();
            float[] lc = c.forward(be, c.newState(64, 512), ids, 0, ids.length, 0).clone();
            double diffPlain = 0;
            for (int i = 0; i < la.length; i++) {
                assertEquals(la[i], lb[i], 1e-4f * Math.max(1f, Math.abs(la[i])), "logit " + i);
                diffPlain = Math.max(diffPlain, Math.abs(la[i] - lc[i]));
            }
            assertTrue(diffPlain > 1e-4, "scaling changes the output at position 300");
        }
    }
}

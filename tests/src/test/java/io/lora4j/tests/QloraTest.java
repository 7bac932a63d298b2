package io.lora4j.tests;

import io.lora4j.kernels.Kbit;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.MemoryReport;
import io.lora4j.model.Quantization;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.train.Datasets;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

import java.util.Arrays;
import java.util.List;
import java.util.Locale;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * QLoRA on the real stories260K: LoRA r = 8 on all linear layers over an NF4 base with double
 * quantization lowers the held-out loss by a margin comparable to the same LoRA on the float base.
 */
class QloraTest {

    /** Held-out loss before and after training, with the model as {@code quant} loads it. */
    static double[] train(Quantization quant, int steps) throws Exception {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null, quant)) {
            Llama m = lm.llama();
            if (m.quantizedBase()) {
                m.prepareForKbitTraining();
            }
            byte[][] packed = new byte[7][];
            for (LinearModule mod : LinearModule.values()) {
                packed[mod.ordinal()] = quant.none() ? null : Kbit.values(mod.weight(m.layer(2)));
            }
            List<Example> all = Datasets.load(LoraTrainingTest.demoStories(), lm.tokenizer(), 64).examples();
            Datasets.Split split = Datasets.split(all, 0.2, 42);
            LoraConfig lc = LoraConfig.of(8, 16f, LoraConfig.ALL_LINEAR);
            LoraAdapter ad = new LoraAdapter("default", lc, m, 42);
            TrainConfig tc = new TrainConfig("adamw", 1e-3f, 0f, 0.9f, 0.999f, 1e-8f, "cosine", 10, steps, 2, 1, 1f,
                    64, 42, true, false, 0, 0f);
            Trainer t = new Trainer(m, ad, tc, split.train(), split.eval());
            double before = t.evalLoss();
            t.run(s -> { });
            double after = t.evalLoss();
            for (LinearModule mod : LinearModule.values()) {
                if (!quant.none()) {
                    assertArrayEquals(packed[mod.ordinal()], Kbit.values(mod.weight(m.layer(2))), "the quantized base is frozen: " + mod);
                }
            }
            return new double[]{before, after};
        }
    }

    static void compare(Quantization quant, int steps) throws Exception {
        double[] lora = train(Quantization.NONE, steps);
        double[] qlora = train(quant, steps);
        String both = String.format(Locale.ROOT, "%d steps: LoRA (F32 base) held-out loss %.4f -> %.4f (%+.4f); "
                        + "QLoRA (--quantize %s) %.4f -> %.4f (%+.4f)", steps, lora[0], lora[1], lora[1] - lora[0],
                quant.label(), qlora[0], qlora[1], qlora[1] - qlora[0]);
        System.out.println(both);
        assertTrue(lora[0] - lora[1] > 0.2, both);
        assertTrue(qlora[0] > lora[0], "the quantized base starts worse than the float one: " + both);
        assertTrue(qlora[0] - qlora[1] >= 0.8 * (lora[0] - lora[1]), "QLoRA's drop is comparable to LoRA's: " + both);
        assertTrue(qlora[1] - lora[1] <= qlora[0] - lora[0], "training does not widen the gap to the float base: " + both);
    }

    @Test
    void qloraLowersHeldOutLossLikeFloatLora() throws Exception {
        compare(Quantization.parse("nf4", true), 120);
    }

    /** The same on every other base quantization (the demo data is small: longer runs overfit it, so the length stays). */
    @Test
    @Tag("slow")
    void everyQuantizationOfTheBaseTrainsLikeFloatLora() throws Exception {
        for (String q : new String[]{"int8", "int8-zp", "nf4", "fp4"}) {
            compare(Quantization.parse(q, false), 120);
        }
        compare(Quantization.parse("fp4", true), 120);
    }

    @Test
    void nf4WithDoubleQuantizationStoresTheProjectionsInAtMost056BytesPerParameter() {
        try (LoadedModel a = LoadedModel.open(Shared.stories(), null, Quantization.parse("nf4", true));
             LoadedModel b = LoadedModel.open(Shared.stories(), null, Quantization.parse("nf4", false))) {
            MemoryReport dq = MemoryReport.of(a.llama()), plain = MemoryReport.of(b.llama());
            assertEquals("NF4_DQ", dq.linearTypes());
            assertTrue(dq.linearBytesPerParam() <= 0.56, dq.lines().toString());
            assertTrue(plain.linearBytesPerParam() >= 0.5625, plain.lines().toString());
            assertEquals(dq.restBytes(), plain.restBytes(), "embedding, output and norms as stored");
            assertEquals(4.0, (double) dq.restBytes() / dq.restParams(), 1e-12, "stories260K's are F32");
            System.out.println(Arrays.toString(dq.lines().toArray()));
        }
    }
}

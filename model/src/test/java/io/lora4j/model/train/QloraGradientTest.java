package io.lora4j.model.train;

import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.QuantizedBases;
import io.lora4j.model.Quantization;
import io.lora4j.model.TinyModel;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;

/**
 * QLoRA: LoRA on a quantized frozen base trains on exactly the quantization that is served — the
 * forward and the input gradients run from the packed bytes — and its adapter gradients match
 * central differences of the quantized model's loss.
 */
class QloraGradientTest {

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "Q8_0", "Q4_0", "Q4_K"}) // F32: the control
    void loraOnAStoredQuantizedGgufBase(GgmlType type) {
        WeightSource src = QuantizedBases.wide(type, 3);
        Llama m = new Llama(src);
        for (LinearModule mod : LinearModule.values()) {
            Weight w = mod.weight(m.layer(0));
            assertEquals(type, w.type(), mod.peftName);
            assertSame(src.tensors().get(w.name()).data(), w.data(), mod.peftName + " runs from the stored bytes");
        }
        check(m, 83, 140);
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"INT8", "INT8_ZP", "NF4", "NF4_DQ", "FP4", "FP4_DQ"})
    void loraOnABaseQuantizedOnLoad(GgmlType type) {
        Llama m = new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 3, false), new Quantization(type));
        for (int l = 0; l < m.config().nLayers(); l++) {
            for (LinearModule mod : LinearModule.values()) {
                assertEquals(type, mod.weight(m.layer(l)).type(), mod.path(l));
            }
        }
        check(m, 2, 200);
    }

    /** QDoRA: DoRA's row norms of the dequantized base, its gradients through the quantized forward. */
    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"NF4_DQ", "INT8"})
    void doraOnABaseQuantizedOnLoad(GgmlType type) {
        checkDora(new Llama(new TinyModel(TinyModel.config(LlamaConfig.RopeStyle.HALVES), 3, false), new Quantization(type)), 2, 200);
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"Q8_0", "Q4_K"})
    void doraOnAStoredQuantizedGgufBase(GgmlType type) {
        checkDora(new Llama(QuantizedBases.wide(type, 3)), 83, 140);
    }

    /** DoRA's gradients, the row norms held as PEFT's backward holds them. */
    private static void checkDora(Llama m, int stride, int minChecked) {
        LoraAdapter ad = TrainGraphGradientTest.doraAdapter(m, 0f);
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        int T = TrainGraphGradientTest.TOKENS.length;
        g.forwardBackward(TrainGraphGradientTest.TOKENS, TrainGraphGradientTest.TARGETS, T, 1f, 0);
        g.holdDoraNorms(true);
        TrainGraphGradientTest.assertAdapterGradients(g, ad, T, stride, 1, minChecked);
    }

    private static void check(Llama m, int stride, int minChecked) {
        LoraAdapter ad = TrainGraphGradientTest.adapter(m, 0f, List.of());
        TrainGraph g = new TrainGraph(m, ad, 8, false);
        int T = TrainGraphGradientTest.TOKENS.length;
        g.forwardBackward(TrainGraphGradientTest.TOKENS, TrainGraphGradientTest.TARGETS, T, 1f, 0);
        TrainGraphGradientTest.assertAdapterGradients(g, ad, T, stride, 1, minChecked);
    }
}

package io.lora4j.tests;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/**
 * The real adapter saved by HF PEFT 0.12 for SmolLM-135M loads onto a base of SmolLM's shapes
 * (hidden 576, 30 layers, 9 heads, 3 KV heads, ffn 1536, vocab 49152, tied) with its targets,
 * ranks and scaling, and with the q/k row order each base layout needs.
 */
class RealPeftAdapterTest {
    static final Path DIR = Shared.models().resolve("peft-lora-smollm-135m");

    /** A base of SmolLM's shapes whose weights are all zero (F16), in HF or GGUF row layout. */
    static WeightSource smolLmShapes(Arena arena, LlamaConfig.RopeStyle style) {
        LlamaConfig c = new LlamaConfig(576, 1536, 30, 9, 3, 64, 49152, 2048, 1e-5f, 10000f, null, style, true);
        MemorySegment zeros = arena.allocate(2L * 49152 * 576);
        Map<String, TensorInfo> t = new LinkedHashMap<>();
        java.util.function.BiConsumer<String, long[]> add = (name, shape) -> {
            long n = 1;
            for (long d : shape) {
                n *= d;
            }
            t.put(name, new TensorInfo(name, GgmlType.F16, shape, zeros.asSlice(0, 2 * n)));
        };
        add.accept("token_embd.weight", new long[]{576, 49152});
        for (int l = 0; l < 30; l++) {
            String p = "blk." + l + ".";
            add.accept(p + "attn_norm.weight", new long[]{576});
            add.accept(p + "attn_q.weight", new long[]{576, 576});
            add.accept(p + "attn_k.weight", new long[]{576, 192});
            add.accept(p + "attn_v.weight", new long[]{576, 192});
            add.accept(p + "attn_output.weight", new long[]{576, 576});
            add.accept(p + "ffn_norm.weight", new long[]{576});
            add.accept(p + "ffn_gate.weight", new long[]{576, 1536});
            add.accept(p + "ffn_up.weight", new long[]{576, 1536});
            add.accept(p + "ffn_down.weight", new long[]{1536, 576});
        }
        add.accept("output_norm.weight", new long[]{576});
        return new WeightSource() {
            public Path path() {
                return Path.of("smollm-135m-shapes");
            }

            public String format() {
                return "memory";
            }

            public Map<String, Object> metadata() {
                return Map.of();
            }

            public Map<String, TensorInfo> tensors() {
                return t;
            }

            public LlamaConfig config() {
                return c;
            }

            public void close() {
            }
        };
    }

    @Test
    void loadsWithPeftsShapesTargetsAndScaling() {
        try (Arena arena = Arena.ofConfined(); SafetensorsFile st = SafetensorsFile.open(DIR.resolve("adapter_model.safetensors"))) {
            Llama hf = new Llama(smolLmShapes(arena, LlamaConfig.RopeStyle.HALVES));
            LoraAdapter a = PeftAdapters.load(DIR, hf, "medical");
            assertEquals(60, a.layers().size(), "q_proj and v_proj in 30 layers");
            for (int l = 0; l < 30; l++) {
                for (LinearModule m : LinearModule.values()) {
                    LoraLayer x = a.get(l, m);
                    if (m == LinearModule.Q_PROJ || m == LinearModule.V_PROJ) {
                        assertEquals(16, x.r);
                        assertEquals(2.0f, x.scaling, "alpha 32 / r 16");
                        assertEquals(576, x.in);
                        assertEquals(m == LinearModule.Q_PROJ ? 576 : 192, x.out);
                    } else {
                        assertNull(x, m + " is not a target");
                    }
                }
            }
            // values as stored (HF base: no permutation)
            LoraLayer q7 = a.get(7, LinearModule.Q_PROJ);
            String key = "base_model.model.model.layers.7.self_attn.q_proj.lora_B.weight";
            MemorySegment b = st.tensor(key).data();
            for (int row : new int[]{0, 1, 33, 300, 575}) {
                for (int j = 0; j < 16; j += 5) {
                    assertEquals(b.get(ValueLayout.JAVA_FLOAT_UNALIGNED, 4L * (row * 16 + j)), q7.b.get(row * 16 + j));
                }
            }
            assertNotEquals(0f, q7.b.get(0) == 0f ? q7.b.get(1) : q7.b.get(0), "lora_B is trained, non-zero");

            // GGUF layout: q rows permuted per head (HF row h·64 + e·32 + i → GGUF row h·64 + 2i + e); v untouched
            Llama gguf = new Llama(smolLmShapes(arena, LlamaConfig.RopeStyle.ADJACENT));
            LoraAdapter g = PeftAdapters.load(DIR, gguf, "medical");
            LoraLayer gq = g.get(7, LinearModule.Q_PROJ);
            for (int h : new int[]{0, 4, 8}) {
                for (int i : new int[]{0, 5, 31}) {
                    for (int e = 0; e < 2; e++) {
                        int hfRow = h * 64 + e * 32 + i, ggRow = h * 64 + 2 * i + e;
                        assertEquals(q7.b.get(hfRow * 16 + 3), gq.b.get(ggRow * 16 + 3), "head " + h + " pair " + i);
                    }
                }
            }
            float[] va = a.get(7, LinearModule.V_PROJ).b.toArray(), vb = g.get(7, LinearModule.V_PROJ).b.toArray();
            org.junit.jupiter.api.Assertions.assertArrayEquals(va, vb);
        }
    }
}

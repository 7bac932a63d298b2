package io.lora4j.tests;

import io.lora4j.kernels.Dequant;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsWriter;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PiSSA, PiSSA with fast SVD and OLoRA against real PEFT on stories260K (r 4, alpha 8, all seven
 * projections of layers 0 and 3, {@code torch.manual_seed(1234)} before {@code get_peft_model}):
 * the initial A₀ and B₀ (OLoRA exactly, the SVD ones up to the sign of each rank), the residual PEFT
 * left in the base, the adapter converted with {@code path_initial_model_for_weight_conversion}, and
 * greedy tokens.
 */
class PeftInitReferenceTest {
    static final String PREFIX = "base_model.model.";

    static LoraConfig config(String kind) {
        return new LoraConfig(4, 8f, 0f, LoraConfig.ALL_LINEAR, null, "none", false, kind, List.of(0, 3), Map.of(), Map.of(),
                List.of());
    }

    /** An (out, cols) matrix of q/k from stories260K.gguf's row order (llama.cpp's adjacent pairs) to Hugging Face's. */
    static float[] hfRows(float[] m, int out, int cols, int heads) {
        int hs = out / heads, half = hs / 2;
        float[] r = new float[m.length];
        for (int h = 0; h < heads; h++) {
            for (int i = 0; i < half; i++) {
                for (int e = 0; e < 2; e++) {
                    System.arraycopy(m, (h * hs + 2 * i + e) * cols, r, (h * hs + e * half + i) * cols, cols);
                }
            }
        }
        return r;
    }

    @ParameterizedTest
    @ValueSource(strings = {"pissa", "pissa_niter_2", "olora"})
    void initialAdapterAndResidualArePeftsOnStories260K(String kind, @TempDir Path tmp) {
        Path ref = PeftReference.dir().resolve("init").resolve(kind);
        Map<String, float[]> want = PeftReference.tensors(ref.resolve("initial").resolve(PeftAdapters.WEIGHTS));
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            float[] k0 = Dequant.matrix(m.projection(0, LinearModule.K_PROJ));
            LoraAdapter ad = new LoraAdapter("default", config(kind), m, 1234);
            assertEquals(14, ad.layers().size());
            PeftAdapters.saveCheckpoint(ad, m, tmp);
            Map<String, float[]> got = PeftReference.tensors(tmp.resolve(PeftAdapters.INITIAL).resolve(PeftAdapters.WEIGHTS));
            assertEquals(want.keySet(), got.keySet());
            for (LoraLayer l : ad.layers()) {
                String k = PREFIX + l.path();
                float[] wa = want.get(k + ".lora_A.weight"), wb = want.get(k + ".lora_B.weight");
                float[] ga = got.get(k + ".lora_A.weight"), gb = got.get(k + ".lora_B.weight");
                if (kind.equals("olora")) { // Householder QR with LAPACK's signs: PEFT's factors themselves
                    PeftReference.assertClose(wa, ga, 2e-5, k + ".lora_A");
                    PeftReference.assertClose(wb, gb, 2e-5, k + ".lora_B");
                } else {
                    PeftReference.assertCloseUpToSign(wa, wb, ga, gb, l.r, 2e-4, k);
                }
                // the update the base gave up is the same either way
                PeftReference.assertClose(PeftReference.product(wa, wb, l.r), PeftReference.product(ga, gb, l.r), 2e-5,
                        k + " B0·A0");
            }
            Map<String, float[]> residual = PeftReference.tensors(ref.resolve("residual.safetensors"));
            float[] k = hfRows(Dequant.matrix(m.projection(0, LinearModule.K_PROJ)), 32, 64, 4);
            PeftReference.assertClose(residual.get("model.layers.0.self_attn.k_proj"), k, 2e-5, "residual k_proj");
            PeftReference.assertClose(residual.get("model.layers.3.mlp.down_proj"),
                    Dequant.matrix(m.projection(3, LinearModule.DOWN_PROJ)), 2e-5, "residual down_proj");
            assertTrue(maxDiff(k0, Dequant.matrix(m.projection(0, LinearModule.K_PROJ))) > 1e-3, "the base became a residual");
        }
    }

    /**
     * PEFT's converted adapter from its initial adapter and the trained one: lora4j, given the same two
     * (the trained one loaded onto the residual rebuilt from the initial values, as a checkpoint resumes),
     * writes the same converted file, and generates PEFT's greedy tokens with it on the original base and
     * with the trained adapter on the residual base.
     */
    @ParameterizedTest
    @ValueSource(strings = {"pissa", "pissa_niter_2", "olora"})
    void convertedAdapterIsPeftsAndGeneratesPeftsTokens(String kind, @TempDir Path tmp) throws IOException {
        Path ref = PeftReference.dir().resolve("init").resolve(kind);
        Path converted = ref.resolve("converted");
        Map<String, float[]> conv = PeftReference.tensors(converted.resolve(PeftAdapters.WEIGHTS));
        int[] tokens = PeftReference.ints(PeftReference.json(ref.resolve("greedy.json")).path("tokens"));
        int[] generated = Arrays.copyOfRange(tokens, 1, tokens.length);
        // the trained (unconverted) adapter: the first r rows of lora_A and columns of lora_B
        Path trained = tmp.resolve("trained");
        Files.createDirectories(trained);
        SafetensorsWriter w = new SafetensorsWriter();
        for (Map.Entry<String, float[]> e : conv.entrySet()) {
            long[] shape = PeftReference.shape(converted.resolve(PeftAdapters.WEIGHTS), e.getKey());
            boolean isA = e.getKey().endsWith("lora_A.weight");
            int rows = (int) shape[0], cols = (int) shape[1];
            int r = isA ? rows / 2 : cols / 2;
            float[] half = new float[isA ? r * cols : rows * r];
            for (int i = 0; i < (isA ? r : rows); i++) {
                System.arraycopy(e.getValue(), i * cols, half, i * (isA ? cols : r), isA ? cols : r);
            }
            w.add(e.getKey(), isA ? new long[]{r, cols} : new long[]{rows, r}, half);
        }
        w.write(trained.resolve(PeftAdapters.WEIGHTS));
        Files.writeString(trained.resolve(PeftAdapters.CONFIG), Files.readString(ref.resolve("initial").resolve(PeftAdapters.CONFIG))
                .replace("\"init_lora_weights\": true", "\"init_lora_weights\": \"" + kind + "\""));
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            LoraAdapter a = PeftAdapters.load(trained, lm.llama(), "trained", ref.resolve("initial"));
            assertTrue(a.initialValues() != null);
            Path out = tmp.resolve("out");
            PeftAdapters.save(a, lm.llama(), out);
            Map<String, float[]> mine = PeftReference.tensors(out.resolve(PeftAdapters.WEIGHTS));
            assertEquals(conv.keySet(), mine.keySet());
            for (String k : conv.keySet()) {
                assertArrayEquals(conv.get(k), mine.get(k), k);
            }
            var cfg = PeftReference.json(out.resolve(PeftAdapters.CONFIG));
            var pc = PeftReference.json(converted.resolve(PeftAdapters.CONFIG));
            for (String key : List.of("r", "lora_alpha", "init_lora_weights", "use_rslora")) {
                assertEquals(pc.get(key).asDouble(), cfg.get(key).asDouble(), key);
            }
            lm.llama().adapters().set(a);
            assertArrayEquals(generated, Shared.apiTokens(lm, new int[]{1}, Shared.cliSampling(0f, 0), generated.length),
                    "trained adapter on the residual base");
        }
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            lm.llama().adapters().set(PeftAdapters.load(converted, lm.llama(), "converted"));
            assertArrayEquals(generated, Shared.apiTokens(lm, new int[]{1}, Shared.cliSampling(0f, 0), generated.length),
                    "PEFT's converted adapter on the original base");
        }
        // loading the unconverted adapter alone decomposes the base again, as PEFT's from_pretrained does
        // (pissa, olora); pissa_niter's random projection is not in the files, so it is refused
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            if (kind.startsWith("pissa_niter")) {
                ModelFormatException e = assertThrows(ModelFormatException.class,
                        () -> PeftAdapters.load(trained, lm.llama(), "trained"));
                assertTrue(e.getMessage().contains("path_initial_model_for_weight_conversion"), e.getMessage());
                return;
            }
            lm.llama().adapters().set(PeftAdapters.load(trained, lm.llama(), "trained"));
            assertArrayEquals(generated, Shared.apiTokens(lm, new int[]{1}, Shared.cliSampling(0f, 0), generated.length),
                    "unconverted adapter, base decomposed on load");
        }
    }

    static double maxDiff(float[] a, float[] b) {
        double d = 0;
        for (int i = 0; i < a.length; i++) {
            d = Math.max(d, Math.abs(a[i] - b[i]));
        }
        return d;
    }
}

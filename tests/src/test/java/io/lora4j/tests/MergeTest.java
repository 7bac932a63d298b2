package io.lora4j.tests;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.MergedExport;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** merge / unmerge / merge_and_unload on stories260K with an adapter on all seven projection types. */
class MergeTest {
    static final int[] PROBE = {1, 403, 407, 261, 378, 432, 383};

    /** Non-zero A and B (init "false"), scaled down so the model still makes sense. */
    static LoraAdapter adapter(Llama m) {
        LoraConfig c = new LoraConfig(4, 2f, 0f, LoraConfig.ALL_LINEAR, null, "none", false, "false", List.of(),
                Map.of(), Map.of(), List.of());
        LoraAdapter a = new LoraAdapter("test", c, m, 3);
        for (var l : a.layers()) {
            for (int i = 0; i < l.b.len(); i++) {
                l.b.set(i, l.b.get(i) * 0.2f);
            }
        }
        return a;
    }

    static float[] logits(Llama m) {
        try (Backend b = Backend.named("jvm")) {
            return m.forward(b, m.newState(8, 32), PROBE, 0, PROBE.length, 0).clone();
        }
    }

    static int[] greedy(Llama m, int n) {
        try (Backend b = Backend.named("jvm")) {
            return Generator.generate(m, b, m.newState(16, 128), new int[]{1, 403}, 0, n,
                    new Sampler(Sampler.Params.greedy(), m.config().vocabSize()), Set.of(), t -> { }).tokens();
        }
    }

    @Test
    void mergedEqualsUnmergedAndUnmergeRestoresTheBase(@TempDir Path dir) throws Exception {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            float[] base = logits(m);
            LoraAdapter a = adapter(m);
            m.adapters().set(a);
            float[] unmerged = logits(m);
            int[] unmergedTokens = greedy(m, 40);
            m.adapters().set(null);
            assertTrue(LoraTrainingTest.maxDiff(base, unmerged) > 1e-2, "the adapter matters");

            m.merge(a);
            assertEquals(List.of("test"), m.mergedAdapters());
            float[] merged = logits(m);
            for (int i = 0; i < merged.length; i++) {
                assertEquals(unmerged[i], merged[i], 1e-4f * Math.max(1f, Math.abs(unmerged[i])), "logit " + i);
            }
            assertArrayEquals(unmergedTokens, greedy(m, 40), "greedy tokens merged vs unmerged");

            // merge_and_unload → GGUF → load back: the same greedy tokens
            Path gguf = dir.resolve("merged.gguf");
            MergedExport.writeGguf(m, gguf, GgmlType.F32);
            try (LoadedModel back = LoadedModel.open(gguf, null)) {
                assertArrayEquals(unmergedTokens, greedy(back.llama(), 40), "exported GGUF");
            }
            // and as a Hugging Face directory (rotate-half Q/K), with the tokenizer given
            Path hf = dir.resolve("hf");
            MergedExport.writeHf(m, hf, GgmlType.F32);
            try (LoadedModel back = LoadedModel.open(hf, Shared.models().resolve("stories260K/tok512.model"))) {
                assertArrayEquals(unmergedTokens, greedy(back.llama(), 40), "exported HF directory");
            }

            m.unmerge();
            assertTrue(m.mergedAdapters().isEmpty());
            assertArrayEquals(base, logits(m), "unmerge restores the memory-mapped base exactly");
        }
    }

    @Test
    void nonFiniteMergesAreRefusedAndNothingChanges(@TempDir Path dir) {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            Llama m = lm.llama();
            float[] base = logits(m);
            LoraAdapter a = adapter(m);
            a.layers().get(3).b.set(0, Float.POSITIVE_INFINITY);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> m.merge(a));
            assertTrue(e.getMessage().contains("non-finite") && e.getMessage().contains(a.layers().get(3).path()), e.getMessage());
            assertTrue(m.mergedAdapters().isEmpty());
            assertArrayEquals(base, logits(m));
        }
    }

    @Test
    void mergeCommandWritesAModelThatGenerates(@TempDir Path dir) throws Exception {
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            PeftAdapters.save(adapter(lm.llama()), lm.llama(), dir.resolve("ad"));
        }
        Path out = dir.resolve("m.gguf");
        Shared.Run r = Shared.cli("merge", "--model", Shared.stories().toString(), "--adapter", dir.resolve("ad").toString(),
                "-o", out.toString(), "--type", "f16");
        assertEquals(0, r.code(), r.err());
        assertTrue(Files.size(out) > 0);
        Shared.Run g = Shared.cli("generate", "--model", out.toString(), "--prompt", "Once", "--temperature", "0", "--max-tokens", "24");
        assertEquals(0, g.code(), g.err());
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            String base = Shared.apiGenerate(lm, "Once", Sampler.Params.greedy(), 24);
            String unmerged = Shared.apiGenerate(Shared.withAdapters(lm, dir.resolve("ad")), "Once", Sampler.Params.greedy(), 24);
            assertEquals(unmerged, g.out(), "the merged F16 model generates as the base with the adapter unmerged");
            assertNotEquals(base, unmerged, "the adapter changes the text");
        }
        Shared.Run inspect = Shared.cli("inspect", "--model", out.toString(), "--no-tensors");
        assertTrue(inspect.out().contains("merged LoRA"), inspect.out());
    }
}

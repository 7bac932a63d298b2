package io.lora4j.tests;

import io.lora4j.model.lora.Merge;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Quantization;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static io.lora4j.tests.CliErrorsTest.assertCleanError;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** --quantize / --double-quant on the commands, merging into a quantized base, and their errors. */
class CliQuantizeTest {
    static final String STORIES = Shared.stories().toString();

    @Test
    void generateAndInspectAQuantizedBase() {
        Shared.Run g = Shared.cli("generate", "--model", STORIES, "--quantize", "nf4", "--double-quant", "--prompt", "Once upon a time",
                "--temperature", "0", "--max-tokens", "20");
        assertEquals(0, g.code(), g.err());
        try (LoadedModel f32 = LoadedModel.open(Shared.stories(), null);
             LoadedModel nf4 = LoadedModel.open(Shared.stories(), null, Quantization.parse("nf4", true))) {
            assertEquals(Shared.apiGenerate(nf4, "Once upon a time", Sampler.Params.greedy(), 20), g.out(),
                    "generate --quantize nf4 --double-quant = Generator on the base quantized on load");
            assertNotEquals(Shared.apiGenerate(f32, "Once upon a time", Sampler.Params.greedy(), 20), g.out(),
                    "the quantized base continues differently from the F32 one within 20 tokens");
        }
        Shared.Run i = Shared.cli("inspect", "--model", STORIES, "--no-tensors", "--quantize", "nf4", "--double-quant");
        assertEquals(0, i.code(), i.err());
        assertTrue(i.out().contains("memory with --quantize nf4+dq (computed, nothing quantized):"), i.out());
        assertTrue(i.out().matches("(?s).*base block projections +NF4_DQ +0\\.\\d+ MiB +0\\.5\\d+ bytes/param.*"), i.out());
        Shared.Run plain = Shared.cli("inspect", "--model", STORIES, "--no-tensors");
        assertTrue(plain.out().matches("(?s).*base block projections +F32 .* 4\\.0000 bytes/param.*"), plain.out());
    }

    @Test
    void trainOnAQuantizedBasePreparesItAndReportsMemory(@TempDir Path dir) {
        Shared.Run r = Shared.cli("train", "--model", STORIES, "--quantize", "nf4", "--double-quant", "--target-modules", "all-linear",
                "--steps", "3", "--seq-len", "32", "-o", dir.resolve("out").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("quantized base (NF4_DQ on load, --quantize nf4+dq): prepared for k-bit training"), r.err());
        for (String part : new String[]{"base block projections", "base rest (embedding, output, norms)", "base total",
                "adapter (values + gradients)", "optimizer state", "activations (", "backward scratch"}) {
            assertTrue(r.err().contains(part), part + ": " + r.err());
        }
        // the adapter loads onto the quantized base, every projection trained (lora_B starts at zero)
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null, Quantization.parse("nf4", true))) {
            LoraAdapter a = PeftAdapters.load(dir.resolve("out"), lm.llama(), "q");
            assertEquals(35, a.layers().size());
            for (LoraLayer l : a.layers()) {
                float max = 0;
                for (float v : l.b.toArray()) {
                    max = Math.max(max, Math.abs(v));
                }
                assertTrue(max > 0 && Float.isFinite(max), l.path() + ": lora_B max |v| " + max);
            }
        }
    }

    @ParameterizedTest
    @ValueSource(strings = {"Q8_0", "Q4_0"})
    void qloraOnAStoredQuantizedGgufBase(String type, @TempDir Path dir) {
        Path q8 = dir.resolve("tiny-" + type + ".gguf");
        Shared.Run c = Shared.cli("create-model", "--preset", "tiny", "--type", type.toLowerCase(java.util.Locale.ROOT), "--out", q8.toString(), "--tokenizer-from",
                Shared.models().resolve("llama-2-tiny-random-gguf/llama-2-tiny-random.gguf").toString());
        assertEquals(0, c.code(), c.err());
        Shared.Run r = Shared.cli("train", "--model", q8.toString(), "--target-modules", "all-linear", "--steps", "2",
                "--seq-len", "16", "-o", dir.resolve("out").toString());
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().matches("(?s).*quantized base \\((F16\\+)?" + type + " as stored\\): prepared for k-bit training.*"), r.err());
        // merged and requantized, the quantized projections keep their type in the exported GGUF
        Path merged = dir.resolve("merged.gguf");
        Shared.Run m = Shared.cli("merge", "--model", q8.toString(), "--adapter", dir.resolve("out").toString(), "-o", merged.toString(),
                "--requantize", "--sample-tokens", "16");
        assertEquals(0, m.code(), m.err());
        assertTrue(m.err().matches("(?s).*merge error \\(merged vs the adapters unmerged; base (F16\\+)?" + type + " as stored\\).*"), m.err());
        Shared.Run i = Shared.cli("inspect", "--model", merged.toString());
        assertTrue(i.out().matches("(?s).*blk\\.0\\.attn_q\\.weight +" + type + " .*"), i.out());
        // quantizing it again is refused, naming the file, the tensor and the type
        assertCleanError(Shared.cli("generate", "--model", q8.toString(), "--quantize", "nf4", "--max-tokens", "1"), 1,
                "tiny-" + type + ".gguf", "tensor blk.0.attn_q.weight is " + type + ", already quantized");
        assertCleanError(Shared.cli("inspect", "--model", q8.toString(), "--quantize", "int8"), 1, "already quantized");
    }

    @Test
    void usageErrors() {
        assertCleanError(Shared.cli("generate", "--model", STORIES, "--quantize", "int8", "--double-quant", "--max-tokens", "1"), 1,
                "--double-quant compresses the absmax constants of --quantize nf4 or fp4");
        assertCleanError(Shared.cli("bench", "--model", STORIES, "--quantize", "q4_k", "-p", "0", "-n", "1"), 1,
                "--quantize must be none, int8, int8-zp, nf4 or fp4, got 'q4_k'");
        assertCleanError(Shared.cli("train", "--model", STORIES, "--quantize", "nf5", "--steps", "1"), 1, "--quantize must be");
    }

    @Test
    void mergeIntoAQuantizedBaseNeedsConsentAndReportsItsError(@TempDir Path dir) throws Exception {
        Path ad = dir.resolve("ad");
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null, Quantization.parse("int8", false))) {
            PeftAdapters.save(MergeTest.adapter(lm.llama()), lm.llama(), ad);
        }
        Path out = dir.resolve("m.gguf");
        assertCleanError(Shared.cli("merge", "--model", STORIES, "--quantize", "int8", "--adapter", ad.toString(), "-o", out.toString()), 1,
                "the base weight blk.0.attn_q.weight is INT8 (quantized); choose --dequantize", "--requantize", "nothing was merged");
        assertTrue(!Files.exists(out), "nothing written");
        assertCleanError(Shared.cli("merge", "--model", STORIES, "--quantize", "int8", "--adapter", ad.toString(), "-o", out.toString(),
                "--dequantize", "--requantize"), 1, "--dequantize and --requantize exclude each other");

        Shared.Run re = Shared.cli("merge", "--model", STORIES, "--quantize", "int8", "--adapter", ad.toString(), "-o", out.toString(),
                "--requantize", "--sample-tokens", "24", "--warn-kl", "1e-9");
        assertEquals(0, re.code(), re.err());
        assertTrue(re.err().matches("(?s).*merge error \\(merged vs the adapters unmerged; base INT8 on load, --quantize int8\\): max \\|Δlogit\\| \\S+, "
                + "KL\\(merged ‖ unmerged\\) mean \\S+, max \\S+ nats over 24 positions.*"), re.err());
        assertTrue(re.err().contains("warning: the merge changes the output distribution by a mean KL of"), re.err());
        assertTrue(re.err().contains("note: GGUF and safetensors have no int8; the block projections are written dequantized as F32"), re.err());
        // the written model is the requantized merge: it generates what the library's in-memory merge does
        Shared.Run g = Shared.cli("generate", "--model", out.toString(), "--prompt", "Once", "--temperature", "0", "--max-tokens", "24");
        assertEquals(0, g.code(), g.err());
        String unmerged;
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null, Quantization.parse("int8", false))) {
            lm.llama().merge(PeftAdapters.load(ad, lm.llama(), "ad"), Merge.Mode.REQUANTIZE);
            assertEquals(Shared.apiGenerate(lm, "Once", Sampler.Params.greedy(), 24), g.out(), "merge --requantize");
        }
        try (LoadedModel lm = Shared.withAdapters(LoadedModel.open(Shared.stories(), null, Quantization.parse("int8", false)), ad)) {
            unmerged = Shared.apiGenerate(lm, "Once", Sampler.Params.greedy(), 24);
        }

        Shared.Run de = Shared.cli("merge", "--model", STORIES, "--quantize", "int8", "--adapter", ad.toString(), "-o", out.toString(),
                "--dequantize", "--sample-tokens", "24");
        assertEquals(0, de.code(), de.err());
        assertTrue(!de.err().contains("warning:"), "a dequantized merge is exact up to float rounding: " + de.err());
        Shared.Run gd = Shared.cli("generate", "--model", out.toString(), "--prompt", "Once", "--temperature", "0", "--max-tokens", "24");
        assertEquals(0, gd.code(), gd.err());
        assertEquals(unmerged, gd.out(), "merge --dequantize generates as the int8 base with the adapter unmerged");
        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null, Quantization.parse("int8", false))) {
            assertNotEquals(Shared.apiGenerate(lm, "Once", Sampler.Params.greedy(), 24), unmerged, "the adapter changes the text");
        }
        // bench --merge on a quantized base needs the same consent
        assertCleanError(Shared.cli("bench", "--model", STORIES, "--quantize", "int8", "--adapter", ad.toString(), "--merge",
                "-p", "0", "-n", "2", "-r", "1"), 1, "choose --dequantize");
        assertEquals(0, Shared.cli("bench", "--model", STORIES, "--quantize", "int8", "--adapter", ad.toString(), "--merge", "--requantize",
                "-p", "0", "-n", "2", "-r", "1").code());
    }
}

package io.lora4j.tests;

import com.fasterxml.jackson.databind.ObjectMapper;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The rough edges a new user hit (issue 20): tokenize with only a tokenizer, the base model named as
 * typed, merging an Arrow model to GGUF, a context smaller than the prompt, an unknown chat role in
 * training data.
 */
class CliFirstUseTest {
    static final Path VOCAB = Shared.models().resolve("ggml-vocab/ggml-vocab-llama-spm.gguf");

    /** llama.cpp's test vectors for the vocabulary (inputs and expected ids without BOS). */
    static List<String[]> vectors() throws Exception {
        String[] inp = Files.readString(Path.of(VOCAB + ".inp"), StandardCharsets.UTF_8).split("\n__ggml_vocab_test__\n", -1);
        List<String> out = Files.readAllLines(Path.of(VOCAB + ".out"));
        List<String[]> v = new ArrayList<>();
        for (int i = 0; i < out.size(); i++) {
            v.add(new String[]{inp[i], out.get(i).strip()});
        }
        return v;
    }

    @Test
    void tokenizeNeedsOnlyATokenizer() throws Exception {
        // a vocabulary-only GGUF (no tensors): llama.cpp's ids, BOS first
        Shared.Run r = Shared.cli("tokenize", "--bos", "--model", VOCAB.toString(), "Hello world");
        assertEquals(0, r.code(), r.err());
        assertEquals("[1, 15043, 3186]", r.out().strip());
        for (String[] v : vectors()) {
            if (v[0].isBlank() || v[0].startsWith("-") || v[1].isEmpty()) {
                continue; // picocli reads these as options or empty arguments
            }
            Shared.Run t = Shared.cli("tokenize", "--model", VOCAB.toString(), v[0]);
            assertEquals(0, t.code(), t.err());
            assertEquals("[" + String.join(", ", v[1].split(" ")) + "]", t.out().strip(), "llama.cpp's ids for '" + v[0] + "'");
        }
        // --tokenizer alone: the model (here one that does not exist) is not loaded
        Path missing = Path.of("no-such-model.gguf");
        Shared.Run sp = Shared.cli("tokenize", "--bos", "--model", missing.toString(), "--tokenizer",
                Shared.models().resolve("llama2-tokenizer/tokenizer.model").toString(), "Hello world");
        assertEquals(0, sp.code(), sp.err());
        assertEquals("[1, 15043, 3186]", sp.out().strip());
        Shared.Run bin = Shared.cli("tokenize", "--tokenizer", Shared.models().resolve("stories260K/tok512.bin").toString(),
                "--decode", "403 407 261 378");
        assertEquals(0, bin.code(), bin.err());
        assertEquals("Once upon a time", bin.out().strip());
    }

    @Test
    void adapterRecordsTheBaseModelAsTyped(@TempDir Path dir) throws Exception {
        String typed = Path.of("").toAbsolutePath().relativize(Shared.stories().toAbsolutePath()).toString();
        assertTrue(!Path.of(typed).isAbsolute() && typed.startsWith(".."), typed);
        Path out = dir.resolve("a");
        Shared.Run r = Shared.cli("train", "--model", typed, "--steps", "1", "--seq-len", "16", "-o", out.toString());
        assertEquals(0, r.code(), r.err());
        assertEquals(typed, new ObjectMapper().readTree(out.resolve("adapter_config.json").toFile()).get("base_model_name_or_path").asText());
    }

    @Test
    void mergeFromAnArrowModelWritesTheSameGgufAsFromItsSource(@TempDir Path dir) throws Exception {
        Path adapter = dir.resolve("adapter"), arrow = dir.resolve("stories.arrow");
        assertEquals(0, Shared.cli("train", "--model", Shared.stories().toString(), "--steps", "2", "--seq-len", "16",
                "--target-modules", "all-linear", "-o", adapter.toString()).code());
        assertEquals(0, Shared.cli("convert", "--model", Shared.stories().toString(), "-o", arrow.toString()).code());
        Path fromGguf = dir.resolve("g.gguf"), fromArrow = dir.resolve("a.gguf");
        Shared.Run g = Shared.cli("merge", "--model", Shared.stories().toString(), "--adapter", adapter.toString(), "-o", fromGguf.toString());
        assertEquals(0, g.code(), g.err());
        Shared.Run a = Shared.cli("merge", "--model", arrow.toString(), "--adapter", adapter.toString(), "-o", fromArrow.toString());
        assertEquals(0, a.code(), a.err());
        assertArrayEquals(Files.readAllBytes(fromGguf), Files.readAllBytes(fromArrow), "metadata, types and tensors carried over exactly");
        // an Arrow model converted from a llama2.c checkpoint has no GGUF metadata or tokenizer to copy
        Path fromBin = dir.resolve("bin.arrow");
        assertEquals(0, Shared.cli("convert", "--model", Shared.models().resolve("stories260K/stories260K.bin").toString(),
                "-o", fromBin.toString()).code());
        CliErrorsTest.assertCleanError(Shared.cli("merge", "--model", fromBin.toString(), "--adapter", adapter.toString(),
                "-o", dir.resolve("x.gguf").toString()), 1, "GGUF export needs the GGUF metadata", "converted from llama2c",
                "Hugging Face directory");
    }

    @Test
    void aContextSmallerThanThePromptIsAClearError() {
        Shared.Run r = Shared.cli("generate", "--model", Shared.stories().toString(), "--prompt", "Once upon a time there was a little girl",
                "--ctx-size", "4", "-n", "5");
        CliErrorsTest.assertCleanError(r, 1, "the prompt is 12 tokens but the context holds 4 (--ctx-size 4)", "raise --ctx-size");
        assertEquals("", r.out(), "nothing printed before the error");
        Shared.Run full = Shared.cli("generate", "--model", Shared.stories().toString(), "--prompt", "Once upon a time",
                "--ctx-size", "5", "-n", "5");
        CliErrorsTest.assertCleanError(full, 1, "the prompt is 5 tokens but the context holds 5", "no room to generate");
        Shared.Run capped = Shared.cli("generate", "--model", Shared.stories().toString(), "--prompt", "Once upon a time",
                "--ctx-size", "99999", "-n", "1");
        assertEquals(0, capped.code(), capped.err());
    }

    @Test
    void anUnknownChatRoleInTrainingDataNamesTheFileAndLine(@TempDir Path dir) throws Exception {
        Path data = dir.resolve("chat.jsonl");
        Files.writeString(data, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n"
                + "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"tool\", \"content\": \"<|eot_id|>\"}]}\n");
        CliErrorsTest.assertCleanError(Shared.cli("train", "--model", Shared.stories().toString(), "--data", data.toString(),
                "--steps", "1", "-o", dir.resolve("o").toString()), 1, data + ": line 2: unknown chat role 'tool'");
        assertTrue(Arrays.asList(dir.toFile().list()).contains("chat.jsonl"));
    }
}

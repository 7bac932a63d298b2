package io.lora4j.model.tokenizer;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.ModelFormatException;
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
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Every shared tokenizer vector: llama.cpp's test-tokenizer-0 files and llama2.c's test prompts. */
class TokenizerVectorsTest {
    static final Path MODELS = Path.of(System.getProperty("lora4j.shared", "../shared"), "models");

    /** llama.cpp's .inp/.out pairs: strings separated by "\n__ggml_vocab_test__\n", ids one line each. */
    static void checkVocabFile(Tokenizer tok, String base) throws Exception {
        String inp = Files.readString(MODELS.resolve("ggml-vocab/" + base + ".inp"), StandardCharsets.UTF_8);
        String[] cases = inp.split("\n__ggml_vocab_test__\n", -1);
        List<String> out = Files.readAllLines(MODELS.resolve("ggml-vocab/" + base + ".out"));
        int checked = 0;
        List<String> failures = new ArrayList<>();
        for (int i = 0; i < cases.length && i < out.size(); i++) {
            String c = cases[i];
            if (i == cases.length - 1 && c.endsWith("\n")) {
                c = c.substring(0, c.length() - 1);
            }
            String line = out.get(i).strip();
            int[] want = line.isEmpty() ? new int[0] : Arrays.stream(line.split("\\s+")).mapToInt(Integer::parseInt).toArray();
            int[] got = tok.encode(c);
            if (!Arrays.equals(want, got)) {
                failures.add("case " + i + " " + new ObjectMapper().writeValueAsString(c) + ": want " + Arrays.toString(want)
                        + " got " + Arrays.toString(got));
            }
            checked++;
        }
        // the .inp ends with a separator, so its last element is not a case: 46 strings, 46 lines
        assertEquals(46, checked, "vector count");
        assertTrue(failures.isEmpty(), failures.size() + " of " + checked + " differ:\n" + String.join("\n", failures));
    }

    @Test
    void llama2SentencePieceFromTokenizerModel() throws Exception {
        checkVocabFile(Tokenizers.fromSentencePieceModel(MODELS.resolve("llama2-tokenizer/tokenizer.model")), "ggml-vocab-llama-spm.gguf");
    }

    @Test
    void llama2SentencePieceFromGgufMetadata() throws Exception {
        try (GgufFile g = GgufFile.open(MODELS.resolve("ggml-vocab/ggml-vocab-llama-spm.gguf"))) {
            checkVocabFile(Tokenizers.fromGgufMetadata(g.metadata(), g.path()), "ggml-vocab-llama-spm.gguf");
        }
    }

    @Test
    void llama3TiktokenFromTokenizerModel() throws Exception {
        Tokenizer tok = Tokenizers.fromTiktoken(MODELS.resolve("llama3-tokenizer/tokenizer.model"));
        checkVocabFile(tok, "ggml-vocab-llama-bpe.gguf");
        assertEquals(128256, tok.vocabSize());
        assertEquals(128000, tok.bos());
        assertEquals(128009, tok.tokenId("<|eot_id|>"));
        assertTrue(tok.stopTokens().contains(128009));
        assertArrayEquals(new int[]{128000, 9906, 128009}, tok.encodeWithSpecial("<|begin_of_text|>Hello<|eot_id|>"));
        assertEquals("Hello", tok.decode(new int[]{128000, 9906, 128009}));
    }

    @Test
    void llama2cTestPromptsWithTokenizerModelAndTokenizerBin() throws Exception {
        JsonNode cases = new ObjectMapper().readTree(MODELS.resolve("llama2-tokenizer/llama2c_test_prompt_encodings.json").toFile()).path("cases");
        for (Tokenizer tok : new Tokenizer[]{Tokenizers.fromSentencePieceModel(MODELS.resolve("llama2-tokenizer/tokenizer.model")),
                Tokenizers.fromLlama2cBin(MODELS.resolve("llama2-tokenizer/tokenizer.bin"))}) {
            int n = 0;
            for (JsonNode c : cases) {
                int[] want = new int[c.path("expected_tokens").size()];
                for (int i = 0; i < want.length; i++) {
                    want[i] = c.path("expected_tokens").get(i).asInt();
                }
                int[] body = tok.encode(c.path("prompt").asText());
                int[] got = new int[body.length + 1];
                got[0] = tok.bos();
                System.arraycopy(body, 0, got, 1, body.length);
                assertArrayEquals(want, got, "prompt " + c.path("prompt").asText());
                n++;
            }
            assertEquals(5, n);
        }
    }

    @Test
    void stories260KTokenizersAgree() {
        Path dir = MODELS.resolve("stories260K");
        for (Path p : new Path[]{dir.resolve("tok512.model"), dir.resolve("tok512.bin"), dir.resolve("stories260K.gguf")}) {
            Tokenizer tok = Tokenizers.load(p);
            assertArrayEquals(new int[]{403, 407, 261, 378}, tok.encode("Once upon a time"), p.toString());
            assertEquals(" Once upon a time", tok.decode(tok.encode("Once upon a time")), p.toString());
            assertEquals(512, tok.vocabSize());
        }
    }

    @Test
    void roundTripsIncludingBytesOutsideTheVocabulary() {
        String[] texts = {"Hello, world!", "naïve café — 日本語 🦙 ∑", "  leading and trailing  ", "tabs\tand\nnewlines\r\n",
                "1234567890", ""};
        List<Tokenizer> toks = List.of(Tokenizers.load(MODELS.resolve("llama2-tokenizer/tokenizer.model")),
                Tokenizers.load(MODELS.resolve("llama3-tokenizer/tokenizer.model")),
                Tokenizers.load(MODELS.resolve("tiktoken-small/tiktoken_small.model")),
                Tokenizers.load(MODELS.resolve("peft-lora-smollm-135m/tokenizer.json")));
        for (Tokenizer tok : toks) {
            for (String t : texts) {
                String back = tok.decode(tok.encode(t));
                if (tok instanceof SentencePieceTokenizer && !t.isEmpty()) {
                    back = back.substring(1); // the dummy prefix
                }
                assertEquals(t, back, tok.getClass().getSimpleName() + " round trip");
            }
        }
    }

    @Test
    void smolLmHfTokenizerJson() {
        Tokenizer tok = Tokenizers.load(MODELS.resolve("peft-lora-smollm-135m/tokenizer.json"));
        assertEquals(49152, tok.vocabSize());
        assertEquals(1, tok.bos(), "<|im_start|>");
        assertEquals(2, tok.eos(), "<|im_end|>");
        // Digits(individual_digits): every digit is its own token
        int[] digits = tok.encode("2024");
        assertEquals(4, digits.length);
        for (int i = 0; i < 4; i++) {
            assertEquals(String.valueOf("2024".charAt(i)), tok.decode(new int[]{digits[i]}));
        }
        // a common word with a leading space is one token, and the vocabulary says which
        int hello = tok.tokenId(" Hello");
        assertTrue(hello > 16, "' Hello' is in the vocabulary");
        assertArrayEquals(new int[]{hello}, tok.encode(" Hello"));
        assertArrayEquals(new int[]{1}, tok.encodeWithSpecial("<|im_start|>"));
        ChatTemplate.Encoded e = ChatTemplate.forTokenizer(tok).encode(List.of(new ChatTemplate.Message("user", "Hi"),
                new ChatTemplate.Message("assistant", "Hello")), false);
        assertEquals(ChatTemplate.Family.CHATML, ChatTemplate.forTokenizer(tok).family());
        assertEquals("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n",
                String.join("", Arrays.stream(e.ids()).mapToObj(tok::tokenText).toList()));
        int masked = 0;
        for (boolean b : e.assistantMask()) {
            masked += b ? 1 : 0;
        }
        assertEquals(tok.encode("Hello").length + 1, masked, "assistant content and <|im_end|>");
    }

    @Test
    void llama3AndLlama2ChatTemplates() {
        Tokenizer l3 = Tokenizers.load(MODELS.resolve("llama3-tokenizer/tokenizer.model"));
        ChatTemplate.Encoded e = ChatTemplate.forTokenizer(l3).encode(List.of(new ChatTemplate.Message("system", "Be brief."),
                new ChatTemplate.Message("user", "Hi")), true);
        assertEquals("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                        + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
                String.join("", Arrays.stream(e.ids()).mapToObj(l3::tokenText).toList()));
        Tokenizer l2 = Tokenizers.load(MODELS.resolve("llama2-tokenizer/tokenizer.model"));
        ChatTemplate.Encoded f = ChatTemplate.forTokenizer(l2).encode(List.of(new ChatTemplate.Message("system", "S"),
                new ChatTemplate.Message("user", "U"), new ChatTemplate.Message("assistant", "A"),
                new ChatTemplate.Message("user", "V")), true);
        // Meta's reference: [BOS] "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]" "A " [EOS] [BOS] "[INST] V [/INST]"
        List<Integer> want = new ArrayList<>();
        want.add(1);
        Arrays.stream(l2.encode("[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]")).forEach(want::add);
        int[] answer = l2.encode("A ");
        Arrays.stream(answer).forEach(want::add);
        want.add(2);
        want.add(1);
        Arrays.stream(l2.encode("[INST] V [/INST]")).forEach(want::add);
        assertArrayEquals(want.stream().mapToInt(Integer::intValue).toArray(), f.ids());
        int masked = 0;
        for (boolean b : f.assistantMask()) {
            masked += b ? 1 : 0;
        }
        assertEquals(answer.length + 1, masked, "the answer and its </s>");
        assertEquals(" [INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A  [INST] V [/INST]", l2.decode(f.ids()));
    }

    @Test
    void brokenFilesAreReportedWithTheirName(@TempDir Path dir) throws Exception {
        Path bad = dir.resolve("bad-tiktoken.model");
        Files.writeString(bad, "IQ== 0\nnot*base64 1\n");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Tokenizers.load(bad));
        assertTrue(e.getMessage().contains("bad-tiktoken.model") && e.getMessage().contains("line 2"), e.getMessage());
        byte[] proto = Files.readAllBytes(MODELS.resolve("stories260K/tok512.model"));
        Path cut = dir.resolve("cut.model");
        Files.write(cut, Arrays.copyOf(proto, proto.length / 3));
        e = assertThrows(ModelFormatException.class, () -> Tokenizers.load(cut));
        assertTrue(e.getMessage().contains("cut.model"), e.getMessage());
        e = assertThrows(ModelFormatException.class, () -> Tokenizers.load(dir.resolve("missing.model")));
        assertTrue(e.getMessage().contains("missing.model") && e.getMessage().contains("no such file"), e.getMessage());
    }

    /**
     * A bad tokenizer_config.json is reported against the file it was read from: the one beside a
     * tokenizer.json, or for a tokenizer carried inside another file (an Arrow model) that file.
     */
    @Test
    void aBadTokenizerConfigNamesTheFileItCameFrom(@TempDir Path dir) throws Exception {
        byte[] json = Files.readAllBytes(MODELS.resolve("peft-lora-smollm-135m/tokenizer.json"));
        Path arrow = dir.resolve("model.arrow");
        ModelFormatException e = assertThrows(ModelFormatException.class,
                () -> Tokenizers.fromBytes(arrow, "tokenizer.json", json, "{bad".getBytes(StandardCharsets.UTF_8)));
        assertTrue(e.getMessage().startsWith(arrow + ": ") && e.getMessage().contains("tokenizer_config.json: invalid JSON"),
                e.getMessage());
        Path tj = Files.write(dir.resolve("tokenizer.json"), json);
        Path cfg = Files.writeString(dir.resolve("tokenizer_config.json"), "{bad");
        e = assertThrows(ModelFormatException.class, () -> Tokenizers.load(tj));
        assertTrue(e.getMessage().startsWith(cfg + ": invalid JSON"), e.getMessage());
    }
}

package io.lora4j.model.train;

import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.tokenizer.Tokenizers;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class DatasetsTest {
    static final Tokenizer TOK = Tokenizers.load(Path.of(System.getProperty("lora4j.shared", "../shared"),
            "models/stories260K/tok512.model"));

    @Test
    void plainTextIsPackedIntoWindowsWithNextTokenTargets(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("a.txt");
        Files.writeString(f, "Once upon a time.\n\nLily liked the park.\n");
        Datasets.Loaded d = Datasets.load(f, TOK, 4);
        assertEquals(2, d.records());
        int[] stream = concat(List.of(doc("Once upon a time."), doc("Lily liked the park.")));
        int k = 0;
        for (Example e : d.examples()) {
            for (int t = 0; t < e.tokens().length; t++) {
                assertEquals(stream[k + t], e.tokens()[t]);
                assertEquals(stream[k + t + 1], e.targets()[t]);
            }
            k += e.tokens().length;
            assertTrue(e.tokens().length <= 4);
        }
        assertEquals(stream.length - 1, k, "every position but the last is an input");
    }

    @Test
    void promptCompletionLearnsOnlyTheCompletion(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("pc.jsonl");
        Files.writeString(f, "{\"prompt\": \"Lily saw\", \"completion\": \" a cat.\"}\n");
        Example e = Datasets.load(f, TOK, 64).examples().get(0);
        int[] p = TOK.encode("Lily saw");
        int[] c = TOK.encode(" a cat.");
        int n = 1 + p.length + c.length + 1;
        assertEquals(n - 1, e.tokens().length);
        for (int t = 0; t < e.tokens().length; t++) {
            boolean predictsCompletion = t + 1 >= 1 + p.length;
            assertEquals(predictsCompletion, e.targets()[t] >= 0, "position " + t);
        }
        assertEquals(TOK.eos(), e.targets()[e.targets().length - 1]);
    }

    @Test
    void messagesLearnOnlyAssistantTurns(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("chat.jsonl");
        Files.writeString(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", \"content\": \"Hello there\"}]}\n");
        Example e = Datasets.load(f, TOK, 256).examples().get(0);
        int counted = e.countedTargets();
        assertEquals(TOK.encode("Hello there ").length + 1, counted, "the answer and </s>");
        assertEquals(TOK.eos(), e.targets()[e.targets().length - 1]);
    }

    /** The first usable field wins (text, then prompt+completion, then messages); fields not used are not checked. */
    @Test
    void unusedFieldsOfARecordAreIgnored(@TempDir Path dir) throws Exception {
        Path plain = Files.writeString(dir.resolve("plain.jsonl"), "{\"text\": \"Lily ran.\"}\n{\"prompt\": \"Tom\", \"completion\": \" sat.\"}\n");
        Path extra = Files.writeString(dir.resolve("extra.jsonl"), "{\"text\": \"Lily ran.\", \"messages\": [{\"role\": \"user\"}]}\n"
                + "{\"prompt\": \"Tom\", \"completion\": \" sat.\", \"messages\": [{\"content\": null}]}\n");
        ArrowDatasetsTest.assertSameExamples(Datasets.load(plain, TOK, 32), Datasets.load(extra, TOK, 32));
        Path chat = Files.writeString(dir.resolve("chat.jsonl"), "{\"text\": null, \"messages\": [{\"role\": \"user\"}]}\n");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Datasets.load(chat, TOK, 32));
        assertTrue(e.getMessage().contains("line 1: every message needs role and content"), e.getMessage());
    }

    @Test
    void badRecordsAreNamedByLine(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("bad.jsonl");
        Files.writeString(f, "{\"text\": \"ok\"}\n{\"txet\": 1}\n");
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Datasets.load(f, TOK, 16));
        assertTrue(e.getMessage().contains("bad.jsonl") && e.getMessage().contains("line 2"), e.getMessage());
        Files.writeString(f, "{\"text\": \"ok\"\n");
        e = assertThrows(ModelFormatException.class, () -> Datasets.load(f, TOK, 16));
        assertTrue(e.getMessage().contains("line 1") && e.getMessage().contains("invalid JSON"), e.getMessage());
    }

    @Test
    void splitIsSeededAndDisjoint() {
        List<Example> all = new java.util.ArrayList<>();
        for (int i = 0; i < 20; i++) {
            all.add(new Example(new int[]{i}, new int[]{i}));
        }
        Datasets.Split a = Datasets.split(all, 0.25, 7), b = Datasets.split(all, 0.25, 7);
        assertEquals(5, a.eval().size());
        assertEquals(15, a.train().size());
        assertEquals(a.eval(), b.eval());
        for (Example x : a.eval()) {
            assertTrue(!a.train().contains(x));
        }
    }

    static int[] doc(String s) {
        int[] body = TOK.encode(s);
        int[] ids = new int[body.length + 2];
        ids[0] = TOK.bos();
        System.arraycopy(body, 0, ids, 1, body.length);
        ids[ids.length - 1] = TOK.eos();
        return ids;
    }

    static int[] concat(List<int[]> parts) {
        return parts.stream().flatMapToInt(java.util.Arrays::stream).toArray();
    }
}

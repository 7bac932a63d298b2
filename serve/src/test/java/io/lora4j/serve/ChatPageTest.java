package io.lora4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

import static io.lora4j.serve.Server.JSON;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The chat page at {@code /}, its own script run by Node (the machines' JavaScript engine; the test is
 * skipped where there is none) with a minimal DOM ({@code chat-page-driver.mjs}): it lists the models,
 * streams a reply with fetch and a stream reader, and shows the same text a plain chat request returns.
 */
class ChatPageTest {
    @TempDir
    static Path tmp;
    static ServeFixture f;

    @BeforeAll
    static void start() throws Exception {
        f = ServeFixture.standard(tmp, 1);
    }

    @AfterAll
    static void stop() {
        f.close();
    }

    @Test
    void theChatPageStreamsTheReplyAPlainRequestGets() throws Exception {
        assumeTrue(node(), "node is not on the PATH");
        Path driver = tmp.resolve("chat-page-driver.mjs");
        try (InputStream in = ChatPageTest.class.getResourceAsStream("chat-page-driver.mjs")) {
            Files.copy(in, driver);
        }
        Process p = new ProcessBuilder("node", driver.toString(), f.url(""), "a0", "12", "The dragon")
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(p.waitFor(60, TimeUnit.SECONDS), "the driver finished");
        assertEquals(0, p.exitValue(), out);
        JsonNode page = JSON.readTree(out);
        List<String> models = new ArrayList<>();
        page.get("models").forEach(m -> models.add(m.asText()));
        assertEquals(List.of("stories260K", "a0"), models, "the model list");

        HttpResponse<String> plain = f.post("/v1/chat/completions", "{\"model\":\"a0\",\"max_tokens\":12,\"temperature\":0,"
                + "\"messages\":[{\"role\":\"user\",\"content\":\"The dragon\"}]}");
        String want = JSON.readTree(plain.body()).get("choices").get(0).get("message").get("content").asText();
        JsonNode log = page.get("log");
        assertEquals(2, log.size(), log.toString());
        assertEquals("you: The dragon", log.get(0).get("text").asText());
        assertEquals("assistant", log.get(1).get("role").asText());
        assertEquals(want, log.get(1).get("text").asText(), "the streamed reply on the page");
        assertTrue(!want.isEmpty(), "a reply");
        assertTrue(page.get("stats").asText().matches("first token [0-9.]+ s, [0-9]+ pieces, [0-9.]+ pieces/s"), page.toString());
    }

    private static boolean node() {
        try {
            Process p = new ProcessBuilder("node", "--version").redirectErrorStream(true).start();
            p.getInputStream().readAllBytes();
            return p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0;
        } catch (Exception e) {
            return false;
        }
    }
}

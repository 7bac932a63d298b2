package io.lora4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import io.lora4j.model.serve.Engine;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.io.OutputStream;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static io.lora4j.serve.Server.JSON;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Adapters loaded and unloaded at run time, the adapter directory's boundary, and every bad input answered with a 4xx. */
class ServerSafetyTest {
    @TempDir
    static Path tmp;
    static ServeFixture f;

    @BeforeAll
    static void start() throws Exception {
        f = ServeFixture.standard(tmp, 2);
    }

    @AfterAll
    static void stop() {
        f.close();
    }

    /** Status and the OpenAI error JSON's message. */
    static void assertError(HttpResponse<String> r, int status, String inMessage) throws Exception {
        assertEquals(status, r.statusCode(), r.body());
        JsonNode e = JSON.readTree(r.body()).get("error");
        assertTrue(e != null && e.get("message").asText().contains(inMessage), r.body());
        assertTrue(e.has("type") && e.has("code") && e.has("param"), "OpenAI's error shape: " + r.body());
    }

    @Test
    void anAdapterLoadsServesAndUnloadsWithoutARestart() throws Exception {
        String body = "{\"model\":\"hot\",\"prompt\":\"The dragon\",\"max_tokens\":8,\"temperature\":0}";
        assertError(f.post("/v1/completions", body), 404, "does not exist");
        HttpResponse<String> load = f.post("/v1/load_lora_adapter", "{\"lora_name\":\"hot\",\"lora_path\":\"a0\"}");
        assertEquals(200, load.statusCode(), load.body());
        assertError(f.post("/v1/load_lora_adapter", "{\"lora_name\":\"hot\",\"lora_path\":\"a0\"}"), 400, "already loaded");
        HttpResponse<String> used = f.post("/v1/completions", body);
        assertEquals(200, used.statusCode(), used.body());
        assertEquals(ServerTest.completionOf(f, "a0", "The dragon", 8), JSON.readTree(used.body()).get("choices").get(0).get("text").asText(),
                "'hot' is a0 under another name");
        assertTrue(f.get("/v1/models").body().contains("\"hot\""));
        assertEquals(200, f.post("/v1/unload_lora_adapter", "{\"lora_name\":\"hot\"}").statusCode());
        assertError(f.post("/v1/completions", body), 404, "does not exist");
        assertError(f.post("/v1/unload_lora_adapter", "{\"lora_name\":\"hot\"}"), 404, "no adapter named");
    }

    @Test
    void loadRequestsCannotLeaveTheAdapterDirectory() throws Exception {
        Path outside = Files.createDirectories(tmp.resolve("outside"));
        Files.walk(f.adapterDir.resolve("a1")).forEach(p -> {
            try {
                if (Files.isRegularFile(p)) {
                    Files.copy(p, outside.resolve(p.getFileName()));
                }
            } catch (Exception e) {
                throw new RuntimeException(e);
            }
        });
        Files.createSymbolicLink(f.adapterDir.resolve("link"), outside);
        for (String path : List.of("../outside", outside.toString(), "a1/../../outside", "link")) {
            assertError(f.post("/v1/load_lora_adapter", JSON.createObjectNode().put("lora_name", "x").put("lora_path", path).toString()),
                    403, "outside");
        }
        assertError(f.post("/v1/load_lora_adapter", "{\"lora_name\":\"x\",\"lora_path\":\"nothing-here\"}"), 404, "no adapter");
        assertError(f.post("/v1/load_lora_adapter", "{\"lora_name\":\"../x\",\"lora_path\":\"a1\"}"), 400, "must be");
        // a symbolic link is not servable by name either
        assertError(f.post("/v1/completions", "{\"model\":\"link\",\"prompt\":\"x\",\"max_tokens\":2}"), 404, "does not exist");
    }

    @Test
    void badRequestsGetFourHundreds() throws Exception {
        assertError(f.post("/v1/completions", "{not json"), 400, "not valid JSON");
        assertError(f.post("/v1/completions", ""), 400, "empty");
        assertError(f.post("/v1/completions", "{\"prompt\":\"x\",\"temperature\":-1}"), 400, "temperature");
        assertError(f.post("/v1/completions", "{\"prompt\":\"x\",\"top_p\":0}"), 400, "top_p");
        assertError(f.post("/v1/completions", "{\"prompt\":\"x\",\"max_tokens\":0}"), 400, "max_tokens");
        assertError(f.post("/v1/completions", "{\"prompt\":\"x\",\"n\":2}"), 400, "n must be 1");
        assertError(f.post("/v1/completions", "{\"prompt\":\"x\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}"), 400, "stop");
        assertError(f.post("/v1/completions", "{\"prompt\":42}"), 400, "prompt must be a string");
        assertError(f.post("/v1/completions", "{\"model\":\"no-such\",\"prompt\":\"x\"}"), 404, "does not exist");
        assertError(f.post("/v1/chat/completions", "{\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}"), 400, "role");
        assertError(f.post("/v1/chat/completions", "{\"messages\":[]}"), 400, "messages");
        assertError(f.post("/completion", "{\"prompt\":\"x\",\"lora\":[{\"id\":99,\"scale\":1}]}"), 404, "no adapter with id");
        HttpResponse<String> tooLong = f.post("/v1/completions", JSON.createObjectNode()
                .put("prompt", "the ".repeat(400)).toString());
        assertError(tooLong, 400, "context");
        assertEquals("context_length_exceeded", JSON.readTree(tooLong.body()).get("error").get("code").asText());
        assertError(f.post("/v1/completions", "{\"prompt\":\"" + "x".repeat(2 << 20) + "\"}"), 413, "larger than");
        assertError(f.get("/no/such/route"), 404, "no route");
        // and the server is still serving
        assertEquals(200, f.post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":2}").statusCode());
    }

    @Test
    void stopStringsEndTheTextBeforeThem() throws Exception {
        String full = ServerTest.completionOf(f, "stories260K", "Once upon a time", 20); // ", there was a little girl named Lily. ..."
        HttpResponse<String> r = f.post("/v1/completions", "{\"prompt\":\"Once upon a time\",\"max_tokens\":20,\"temperature\":0,"
                + "\"stop\":[\"girl\",\"zzz\"]}");
        JsonNode c = JSON.readTree(r.body()).get("choices").get(0);
        assertEquals(full.substring(0, full.indexOf("girl")), c.get("text").asText());
        assertEquals("stop", c.get("finish_reason").asText());
        assertTrue(JSON.readTree(r.body()).get("usage").get("completion_tokens").asInt() < 20);
    }

    /** A client that goes away in the middle of a stream frees its sequence. */
    @Test
    void aDisconnectedStreamIsCancelled() throws Exception {
        long before = f.engine.finished();
        try (Socket s = new Socket("127.0.0.1", f.port)) {
            byte[] body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":200,\"stream\":true}".getBytes(StandardCharsets.UTF_8);
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + body.length
                    + "\r\n\r\n").getBytes(StandardCharsets.UTF_8));
            out.write(body);
            out.flush();
            InputStream in = s.getInputStream();
            byte[] buf = new byte[4096];
            int n = in.read(buf);
            assertTrue(n > 0 && new String(buf, 0, n, StandardCharsets.UTF_8).contains("200"), "the stream started");
        } // closed: the server's next write fails and cancels the sequence
        long deadline = System.nanoTime() + 30_000_000_000L;
        while (f.engine.finished() == before && System.nanoTime() < deadline) {
            Thread.sleep(20);
        }
        assertEquals(before + 1, f.engine.finished(), "the sequence ended");
        assertEquals(0, f.engine.running());
        assertTrue(f.engine.completionTokens() > 0);
    }

    @Test
    void metricsAreInPrometheusTextFormat() throws Exception {
        f.post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":3}");
        String m = f.get("/metrics").body();
        for (String name : List.of("lora4j_completion_tokens_total", "lora4j_prompt_tokens_total", "lora4j_running_sequences",
                "lora4j_queued_requests", "lora4j_loaded_adapters", "lora4j_tokens_per_second",
                "lora4j_requests_total{route=\"/v1/completions\",status=\"200\"}")) {
            assertTrue(m.contains(name), name + " in\n" + m);
        }
    }

    @Test
    void anApiKeyIsRequiredWhenSetAndAFullQueueAnswers429(@TempDir Path dir) throws Exception {
        try (ServeFixture g = new ServeFixture(dir, 0, new Engine.Options(1, 256, 1, 32), "s3cret", 1 << 20)) {
            String body = "{\"prompt\":\"Once upon a time\",\"max_tokens\":60}";
            assertError(g.post("/v1/completions", body), 401, "API key");
            assertError(g.post("/v1/completions", body, "Authorization", "Bearer wrong"), 401, "API key");
            assertEquals(200, g.get("/health").statusCode());
            assertEquals(200, g.post("/v1/completions", body, "Authorization", "Bearer s3cret").statusCode());
            // one slot and one place in the queue: of 6 at once, some are turned away with Retry-After
            try (ExecutorService pool = Executors.newFixedThreadPool(6)) {
                List<Future<HttpResponse<String>>> rs = new ArrayList<>();
                for (int i = 0; i < 6; i++) {
                    rs.add(pool.submit(() -> g.post("/v1/completions", body, "Authorization", "Bearer s3cret")));
                }
                int ok = 0, busy = 0;
                for (Future<HttpResponse<String>> r : rs) {
                    HttpResponse<String> x = r.get(120, TimeUnit.SECONDS);
                    if (x.statusCode() == 429) {
                        busy++;
                        assertEquals("1", x.headers().firstValue("Retry-After").orElse(null));
                        assertError(x, 429, "busy");
                    } else {
                        assertEquals(200, x.statusCode(), x.body());
                        ok++;
                    }
                }
                assertTrue(ok >= 2 && busy >= 1, ok + " served, " + busy + " refused");
            }
        }
    }
}

package io.lora4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.openai.client.OpenAIClient;
import com.openai.client.okhttp.OpenAIOkHttpClient;
import com.openai.core.http.StreamResponse;
import com.openai.models.chat.completions.ChatCompletion;
import com.openai.models.chat.completions.ChatCompletionChunk;
import com.openai.models.chat.completions.ChatCompletionCreateParams;
import com.openai.models.completions.Completion;
import com.openai.models.completions.CompletionCreateParams;
import dev.langchain4j.model.chat.response.ChatResponse;
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler;
import dev.langchain4j.model.openai.OpenAiChatModel;
import dev.langchain4j.model.openai.OpenAiStreamingChatModel;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.net.http.HttpResponse;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import static io.lora4j.serve.Server.JSON;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The server against real clients: the official OpenAI Java SDK, LangChain4j, and plain HTTP. */
class ServerTest {
    @TempDir
    static Path tmp;
    static ServeFixture f;
    static OpenAIClient openai;

    @BeforeAll
    static void start() throws Exception {
        f = ServeFixture.standard(tmp, 4);
        openai = OpenAIOkHttpClient.builder().baseUrl(f.url("/v1")).apiKey("not-needed").maxRetries(0).build();
    }

    @AfterAll
    static void stop() {
        openai.close();
        f.close();
    }

    static String completion(String model, String prompt, int maxTokens) throws Exception {
        return completionOf(f, model, prompt, maxTokens);
    }

    /** The greedy completion text of {@code prompt} by {@code model} on the fixture's server. */
    static String completionOf(ServeFixture f, String model, String prompt, int maxTokens) throws Exception {
        HttpResponse<String> r = f.post("/v1/completions", JSON.createObjectNode().put("model", model).put("prompt", prompt)
                .put("max_tokens", maxTokens).put("temperature", 0).toString());
        assertEquals(200, r.statusCode(), r.body());
        return JSON.readTree(r.body()).get("choices").get(0).get("text").asText();
    }

    @Test
    void theBaseModelsGreedyContinuationIsLlamaCpps() throws Exception {
        // llama.cpp's greedy continuation of "Once upon a time" on stories260K (the golden tests' reference)
        String text = completion("stories260K", "Once upon a time", 20);
        assertEquals(", there was a little girl named Lily. She loved to play outsid", text);
    }

    @Test
    void theOpenAiJavaSdkGetsTheSameTextStreamingAndNot() throws Exception {
        ChatCompletionCreateParams chat = ChatCompletionCreateParams.builder().model("a0").addUserMessage("The dragon")
                .maxCompletionTokens(16).temperature(0.0).build();
        ChatCompletion c = openai.chat().completions().create(chat);
        String whole = c.choices().get(0).message().content().orElseThrow();
        assertEquals(16, c.usage().orElseThrow().completionTokens());
        StringBuilder streamed = new StringBuilder();
        try (StreamResponse<ChatCompletionChunk> s = openai.chat().completions().createStreaming(chat)) {
            s.stream().forEach(ch -> ch.choices().forEach(x -> x.delta().content().ifPresent(streamed::append)));
        }
        assertEquals(whole, streamed.toString(), "streamed chat = whole chat");
        HttpResponse<String> plain = f.post("/v1/chat/completions", "{\"model\":\"a0\",\"max_tokens\":16,\"temperature\":0,"
                + "\"messages\":[{\"role\":\"user\",\"content\":\"The dragon\"}]}");
        assertEquals(whole, JSON.readTree(plain.body()).get("choices").get(0).get("message").get("content").asText());

        Completion base = openai.completions().create(CompletionCreateParams.builder().model("stories260K")
                .prompt("Once upon a time").maxTokens(20).temperature(0.0).build());
        Completion adapted = openai.completions().create(CompletionCreateParams.builder().model("a1")
                .prompt("Once upon a time").maxTokens(20).temperature(0.0).build());
        assertEquals(completion("stories260K", "Once upon a time", 20), base.choices().get(0).text());
        assertEquals(completion("a1", "Once upon a time", 20), adapted.choices().get(0).text());
        assertNotEquals(base.choices().get(0).text(), adapted.choices().get(0).text(), "the adapter changes the text");
    }

    @Test
    void langChain4jsOpenAiChatModelsWorkAgainstTheServer() throws Exception {
        OpenAiChatModel model = OpenAiChatModel.builder().baseUrl(f.url("/v1")).apiKey("not-needed").modelName("a2")
                .temperature(0.0).maxTokens(12).maxRetries(0).build();
        String answer = model.chat("Tom the cat");
        HttpResponse<String> plain = f.post("/v1/chat/completions", "{\"model\":\"a2\",\"max_tokens\":12,\"temperature\":0,"
                + "\"messages\":[{\"role\":\"user\",\"content\":\"Tom the cat\"}]}");
        assertEquals(JSON.readTree(plain.body()).get("choices").get(0).get("message").get("content").asText(), answer);

        OpenAiStreamingChatModel streaming = OpenAiStreamingChatModel.builder().baseUrl(f.url("/v1")).apiKey("not-needed")
                .modelName("a2").temperature(0.0).maxTokens(12).build();
        CompletableFuture<ChatResponse> done = new CompletableFuture<>();
        StringBuilder pieces = new StringBuilder();
        streaming.chat("Tom the cat", new StreamingChatResponseHandler() {
            @Override
            public void onPartialResponse(String partial) {
                pieces.append(partial);
            }

            @Override
            public void onCompleteResponse(ChatResponse r) {
                done.complete(r);
            }

            @Override
            public void onError(Throwable error) {
                done.completeExceptionally(error);
            }
        });
        ChatResponse r = done.get(60, TimeUnit.SECONDS);
        assertEquals(answer, pieces.toString());
        assertEquals(answer, r.aiMessage().text());
    }

    /**
     * 16 concurrent greedy requests over 4 adapters and the base return what each returns alone; the long
     * prompt (over the fixture's 32 prompt rows per step) is prefilled over several steps, cut differently
     * alone and beside other joining prompts.
     */
    @Test
    void batchingChangesNothing() throws Exception {
        String[] models = {"stories260K", "a0", "a1", "a2", "a3"};
        String[] prompts = {"Once upon a time", "The dragon", "Tom the cat", "A small boat",
            "Mia built a big sand castle by the sea. Her brother Sam wanted to help, so he brought a bucket of water and a little red flag"};
        List<String[]> cases = new ArrayList<>();
        for (int i = 0; i < 16; i++) {
            cases.add(new String[]{models[i % models.length], prompts[(i * 3) % prompts.length]});
        }
        List<String> alone = new ArrayList<>();
        for (String[] c : cases) {
            alone.add(completion(c[0], c[1], 24));
        }
        try (ExecutorService pool = Executors.newFixedThreadPool(16)) {
            List<Future<String>> together = new ArrayList<>();
            for (String[] c : cases) {
                together.add(pool.submit(() -> completion(c[0], c[1], 24)));
            }
            for (int i = 0; i < cases.size(); i++) {
                assertEquals(alone.get(i), together.get(i).get(120, TimeUnit.SECONDS), "request " + i + " " + cases.get(i)[0]);
            }
        }
        long distinct = alone.stream().distinct().count();
        assertTrue(distinct >= 5, "the adapters give different texts: " + alone);
        JsonNode models1 = JSON.readTree(f.get("/v1/models").body());
        assertEquals(5, models1.get("data").size(), models1.toString());
    }

    @Test
    void llamaCppCompletionTakesPerRequestLoraScales() throws Exception {
        assertEquals(200, f.post("/v1/load_lora_adapter", "{\"lora_name\":\"scaled\",\"lora_path\":\"a3\"}").statusCode());
        JsonNode list = JSON.readTree(f.get("/lora-adapters").body());
        int id = -1;
        for (JsonNode a : list) {
            if (a.get("name").asText().equals("scaled")) {
                id = a.get("id").asInt();
            }
        }
        assertTrue(id >= 0, list.toString());
        String none = JSON.readTree(f.post("/completion", "{\"prompt\":\"A small boat\",\"n_predict\":16,\"temperature\":0}").body())
                .get("content").asText();
        String full = JSON.readTree(f.post("/completion", "{\"prompt\":\"A small boat\",\"n_predict\":16,\"temperature\":0,"
                + "\"lora\":[{\"id\":" + id + ",\"scale\":1.0}]}").body()).get("content").asText();
        String zero = JSON.readTree(f.post("/completion", "{\"prompt\":\"A small boat\",\"n_predict\":16,\"temperature\":0,"
                + "\"lora\":[{\"id\":" + id + ",\"scale\":0.0}]}").body()).get("content").asText();
        assertEquals(completion("stories260K", "A small boat", 16), none, "no lora: the base");
        assertEquals(none, zero, "scale 0 is the base");
        assertEquals(completion("a3", "A small boat", 16), full, "scale 1 is the adapter the OpenAI route serves");
        // the global scales of /lora-adapters apply to requests without a lora field
        f.post("/lora-adapters", "[{\"id\":" + id + ",\"scale\":1.0}]");
        String global = JSON.readTree(f.post("/completion", "{\"prompt\":\"A small boat\",\"n_predict\":16,\"temperature\":0}")
                .body()).get("content").asText();
        f.post("/lora-adapters", "[{\"id\":" + id + ",\"scale\":0.0}]");
        assertEquals(full, global);
        assertEquals(200, f.post("/v1/unload_lora_adapter", "{\"lora_name\":\"scaled\"}").statusCode());
    }
}

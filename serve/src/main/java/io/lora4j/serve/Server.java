package io.lora4j.serve;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.Javalin;
import io.javalin.http.Context;
import io.lora4j.model.Llama;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.AdapterSet;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.serve.Engine;
import io.lora4j.model.tokenizer.ChatTemplate;
import io.lora4j.model.tokenizer.Tokenizer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.UUID;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.ThreadLocalRandom;

/**
 * {@code lora4j serve}: OpenAI's completions and chat completions (the adapter chosen by
 * {@code model}), llama.cpp's {@code /completion} with per-request {@code lora} scales and
 * {@code /lora-adapters}, vLLM's {@code /v1/load_lora_adapter} and {@code /v1/unload_lora_adapter},
 * {@code /v1/models}, {@code /health}, Prometheus {@code /metrics} and a chat page at {@code /}, over one
 * {@link Engine} that decodes every running request in one batch whatever adapters they use.
 * <p>
 * HTTP is Javalin (Jetty 12) on virtual threads: a request's handler blocks on its own token queue
 * while the engine thread decodes, so thousands of waiting clients cost no platform threads, and a
 * streaming response is plain server-sent events written as tokens arrive; a write that fails (the
 * client went away) cancels the sequence. Errors are OpenAI's error JSON with a 4xx status; nothing a
 * request sends can stop the server.
 */
public final class Server implements AutoCloseable {

    /**
     * @param host          address to bind (127.0.0.1 unless the operator says otherwise)
     * @param port          TCP port (0: any free one)
     * @param apiKey        required as {@code Authorization: Bearer …} on every route but /health and /, or null
     * @param adapterDir    the only place adapters may be loaded from at run time, or null
     * @param maxLoras      adapters held in memory at once (least recently used dropped)
     * @param maxBodyBytes  largest request body
     * @param modelName     the base model's id in /v1/models
     */
    public record Options(String host, int port, String apiKey, Path adapterDir, int maxLoras, long maxBodyBytes,
                          String modelName) {
    }

    static final ObjectMapper JSON = new ObjectMapper();

    private final Llama model;
    private final Tokenizer tok;
    private final Engine engine;
    private final Options opt;
    private final AdapterRegistry adapters;
    private final ServeMetrics metrics;
    private final long started = System.currentTimeMillis() / 1000;
    private Javalin app;

    public Server(Llama model, Tokenizer tok, Engine engine, Options opt, Map<String, Path> preload) {
        this.model = model;
        this.tok = tok;
        this.engine = engine;
        this.opt = opt;
        this.adapters = new AdapterRegistry(model, opt.adapterDir(), opt.maxLoras());
        preload.forEach(adapters::preload);
        this.metrics = new ServeMetrics(engine, adapters);
    }

    /** Starts listening; returns the port. */
    public int start() {
        app = Javalin.create(cfg -> {
            cfg.concurrency.useVirtualThreads = true;
            cfg.http.maxRequestSize = opt.maxBodyBytes();
            cfg.startup.showJavalinBanner = false;
            cfg.routes.before(this::authorize);
            cfg.routes.get("/", ctx -> page(ctx));
            cfg.routes.get("/health", ctx -> ctx.json(Map.of("status", "ok")));
            cfg.routes.get("/metrics", this::metrics);
            cfg.routes.get("/v1/models", this::models);
            cfg.routes.post("/v1/completions", ctx -> generate(ctx, Api.COMPLETIONS));
            cfg.routes.post("/v1/chat/completions", ctx -> generate(ctx, Api.CHAT));
            cfg.routes.post("/completion", ctx -> generate(ctx, Api.LLAMA_CPP));
            cfg.routes.get("/lora-adapters", this::listLoras);
            cfg.routes.post("/lora-adapters", this::setLoraScales);
            cfg.routes.post("/v1/load_lora_adapter", this::loadLora);
            cfg.routes.post("/v1/unload_lora_adapter", this::unloadLora);
            cfg.routes.exception(ApiError.class, (e, ctx) -> error(ctx, e.status, e.getMessage(), e.type, e.code));
            cfg.routes.exception(AdapterRegistry.AdapterException.class, (e, ctx) -> error(ctx, e.status, e.getMessage(),
                    e.status == 404 ? "not_found_error" : "invalid_request_error", null));
            cfg.routes.exception(Exception.class, (e, ctx) -> error(ctx, 500, "internal error: " + e, "server_error", null));
            cfg.routes.error(404, "*", ctx -> {
                String r = ctx.result();
                if (r == null || !r.startsWith("{")) { // no route matched (ours answer with JSON already)
                    error(ctx, 404, "no route " + ctx.method() + " " + ctx.path(), "not_found_error", null);
                }
            });
            cfg.routes.error(413, "*", ctx -> error(ctx, 413, "the request body is larger than " + opt.maxBodyBytes() + " bytes",
                    "invalid_request_error", null));
        });
        app.start(opt.host(), opt.port());
        return app.port();
    }

    @Override
    public void close() {
        if (app != null) {
            app.stop();
        }
    }

    // ---- routes ----

    private enum Api { COMPLETIONS, CHAT, LLAMA_CPP }

    /** An error answered as OpenAI's error JSON. */
    static final class ApiError extends RuntimeException {
        final int status;
        final String type;
        final String code;

        ApiError(int status, String message, String type, String code) {
            super(message);
            this.status = status;
            this.type = type;
            this.code = code;
        }

        static ApiError bad(String message) {
            return new ApiError(400, message, "invalid_request_error", null);
        }
    }

    private void authorize(Context ctx) {
        if (opt.apiKey() == null || ctx.path().equals("/health") || ctx.path().equals("/")) {
            return;
        }
        String h = ctx.header("Authorization");
        byte[] given = h != null && h.startsWith("Bearer ") ? h.substring(7).getBytes(StandardCharsets.UTF_8) : new byte[0];
        if (!MessageDigest.isEqual(given, opt.apiKey().getBytes(StandardCharsets.UTF_8))) { // constant time
            throw new ApiError(401, "missing or wrong API key (Authorization: Bearer …)", "authentication_error", "invalid_api_key");
        }
    }

    private void error(Context ctx, int status, String message, String type, String code) {
        metrics.request(ctx.path(), status);
        ObjectNode e = JSON.createObjectNode();
        ObjectNode body = e.putObject("error");
        body.put("message", message);
        body.put("type", type);
        body.putNull("param");
        if (code == null) {
            body.putNull("code");
        } else {
            body.put("code", code);
        }
        if (status == 429) {
            ctx.header("Retry-After", "1");
        }
        ctx.status(status).contentType("application/json").result(e.toString());
    }

    private void page(Context ctx) throws IOException {
        try (InputStream in = Server.class.getResourceAsStream("chat.html")) {
            ctx.contentType("text/html; charset=utf-8").result(in.readAllBytes());
        }
    }

    private void metrics(Context ctx) throws IOException {
        ctx.contentType(ServeMetrics.CONTENT_TYPE).result(metrics.scrape());
    }

    private void models(Context ctx) {
        ObjectNode out = JSON.createObjectNode();
        out.put("object", "list");
        ArrayNode data = out.putArray("data");
        data.add(model(opt.modelName(), null));
        for (String n : adapters.names()) {
            data.add(model(n, opt.modelName()));
        }
        ok(ctx, out);
    }

    private ObjectNode model(String id, String parent) {
        ObjectNode m = JSON.createObjectNode();
        m.put("id", id);
        m.put("object", "model");
        m.put("created", started);
        m.put("owned_by", "lora4j");
        if (parent != null) {
            m.put("parent", parent);
        }
        return m;
    }

    private void listLoras(Context ctx) {
        ArrayNode out = JSON.createArrayNode();
        int id = 0;
        for (var e : adapters.entries()) {
            ObjectNode a = out.addObject();
            a.put("id", id++);
            a.put("name", e.getKey());
            a.put("path", e.getValue().toString());
            a.put("scale", adapters.defaultScale(e.getKey()));
        }
        ok(ctx, out);
    }

    private void setLoraScales(Context ctx) {
        JsonNode body = body(ctx);
        if (!body.isArray()) {
            throw ApiError.bad("expected a JSON array of {\"id\": n, \"scale\": s}");
        }
        List<Map.Entry<String, Path>> entries = adapters.entries();
        for (JsonNode n : body) {
            String name = loraName(n, entries);
            adapters.setDefaultScale(name, (float) number(n, "scale", 1.0, -100, 100));
        }
        listLoras(ctx);
    }

    private void loadLora(Context ctx) {
        JsonNode body = body(ctx);
        String name = text(body, "lora_name", null);
        if (name == null) {
            throw ApiError.bad("lora_name is missing");
        }
        adapters.load(name, text(body, "lora_path", null));
        metrics.request(ctx.path(), 200);
        ctx.contentType("text/plain").result("Success: LoRA adapter '" + name + "' added successfully.");
    }

    private void unloadLora(Context ctx) {
        JsonNode body = body(ctx);
        String name = text(body, "lora_name", null);
        if (name == null) {
            throw ApiError.bad("lora_name is missing");
        }
        adapters.unload(name);
        metrics.request(ctx.path(), 200);
        ctx.contentType("text/plain").result("Success: LoRA adapter '" + name + "' removed successfully.");
    }

    // ---- generation ----

    /** What a finished generation reports. */
    private record Done(Engine.Finish why, int promptTokens, int completionTokens, RuntimeException error) {
    }

    private void generate(Context ctx, Api api) throws IOException {
        JsonNode body = body(ctx);
        boolean llama = api == Api.LLAMA_CPP;
        String modelId = llama ? opt.modelName() : text(body, "model", opt.modelName());
        List<AdapterSet.Active> active = llama ? llamaLoras(body) : adaptersOf(modelId);
        if (body.has("n") && body.get("n").asInt(1) != 1) {
            throw ApiError.bad("n must be 1");
        }
        int[] prompt = switch (api) {
            case CHAT -> chatPrompt(body);
            case COMPLETIONS, LLAMA_CPP -> textPrompt(body);
        };
        int ctxLen = engine.options().contextLength();
        if (prompt.length >= ctxLen) {
            throw new ApiError(400, "the prompt has " + prompt.length + " tokens; the context holds " + ctxLen
                    + " (prompt and completion)", "invalid_request_error", "context_length_exceeded");
        }
        int room = ctxLen - prompt.length;
        int maxTokens = llama ? (int) number(body, "n_predict", -1, -1, Integer.MAX_VALUE)
                : (int) number(body, api == Api.CHAT && body.has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens",
                api == Api.COMPLETIONS ? 16 : room, 1, Integer.MAX_VALUE);
        if (maxTokens < 0) {
            maxTokens = room;
        }
        float temperature = (float) number(body, "temperature", llama ? 0.8 : 1.0, 0, 2);
        float topP = (float) number(body, "top_p", llama ? 0.95 : 1.0, Double.MIN_VALUE, 1);
        int topK = llama ? (int) number(body, "top_k", 40, 0, Integer.MAX_VALUE) : 0;
        long seed = body.hasNonNull("seed") && body.get("seed").asLong() != -1 ? body.get("seed").asLong()
                : ThreadLocalRandom.current().nextLong() | 1;
        List<String> stops = stops(body.get("stop"));
        boolean stream = body.path("stream").asBoolean(false);
        Sampler.Params sampling = new Sampler.Params(temperature, topK, topP, 0f, 1f, 64, seed);

        BlockingQueue<Object> events = new LinkedBlockingQueue<>();
        TextStream text = new TextStream(tok, stops);
        Engine.Listener listener = new Engine.Listener() {
            @Override
            public boolean token(int id) {
                String s = text.add(id);
                if (!s.isEmpty()) {
                    events.add(s);
                }
                return !text.stopped();
            }

            @Override
            public void done(Engine.Finish why, int promptTokens, int completionTokens, RuntimeException error) {
                String s = why == Engine.Finish.ERROR ? "" : text.flush();
                if (!s.isEmpty()) {
                    events.add(s);
                }
                events.add(new Done(text.stopped() ? Engine.Finish.STOP : why, promptTokens, completionTokens, error));
            }
        };
        Engine.Handle handle;
        try {
            handle = engine.submit(new Engine.Request(prompt, maxTokens, sampling, active, tok.stopTokens(), listener));
        } catch (Engine.Busy e) {
            throw new ApiError(429, "the server is busy: " + e.getMessage() + "; retry later", "rate_limit_error", "server_busy");
        } catch (IllegalArgumentException e) {
            throw ApiError.bad(e.getMessage());
        }
        String id = (api == Api.CHAT ? "chatcmpl-" : "cmpl-") + UUID.randomUUID();
        if (stream) {
            stream(ctx, api, id, modelId, body, events, handle);
        } else {
            whole(ctx, api, id, modelId, events);
        }
    }

    private void whole(Context ctx, Api api, String id, String modelId, BlockingQueue<Object> events) {
        StringBuilder all = new StringBuilder();
        Done d = drain(events, all::append);
        if (d.why == Engine.Finish.ERROR) {
            throw new ApiError(500, "generation failed: " + d.error, "server_error", null);
        }
        ObjectNode out = JSON.createObjectNode();
        if (api == Api.LLAMA_CPP) {
            out.put("content", all.toString());
            out.put("model", opt.modelName());
            out.put("stop", true);
            out.put("stop_type", d.why == Engine.Finish.LENGTH ? "limit" : "eos");
            out.put("tokens_predicted", d.completionTokens);
            out.put("tokens_evaluated", d.promptTokens);
            ok(ctx, out);
            return;
        }
        out.put("id", id);
        out.put("object", api == Api.CHAT ? "chat.completion" : "text_completion");
        out.put("created", System.currentTimeMillis() / 1000);
        out.put("model", modelId);
        ObjectNode choice = out.putArray("choices").addObject();
        choice.put("index", 0);
        if (api == Api.CHAT) {
            ObjectNode msg = choice.putObject("message");
            msg.put("role", "assistant");
            msg.put("content", all.toString());
            msg.putNull("refusal");
            choice.putNull("logprobs");
        } else {
            choice.put("text", all.toString());
            choice.putNull("logprobs");
        }
        choice.put("finish_reason", finishReason(d.why));
        out.set("usage", usage(d));
        ok(ctx, out);
    }

    private void stream(Context ctx, Api api, String id, String modelId, JsonNode body, BlockingQueue<Object> events,
                        Engine.Handle handle) {
        ctx.res().setStatus(200);
        ctx.res().setContentType("text/event-stream");
        ctx.res().setHeader("Cache-Control", "no-cache");
        long created = System.currentTimeMillis() / 1000;
        boolean includeUsage = body.path("stream_options").path("include_usage").asBoolean(false);
        Done d;
        try {
            OutputStream out = ctx.res().getOutputStream();
            if (api == Api.CHAT) {
                ObjectNode first = chunk(api, id, created, modelId);
                ((ObjectNode) first.get("choices").get(0)).putObject("delta").put("role", "assistant").put("content", "");
                send(out, first.toString());
            }
            IOException[] broken = new IOException[1];
            d = drain(events, s -> {
                if (broken[0] != null) {
                    return;
                }
                try {
                    send(out, piece(api, id, created, modelId, s).toString());
                } catch (IOException e) {
                    broken[0] = e;
                    handle.cancel(); // the client is gone: free its slot at the next step
                }
            });
            if (broken[0] != null) {
                metrics.request(ctx.path(), 499);
                return;
            }
            if (d.why == Engine.Finish.ERROR) {
                ObjectNode e = JSON.createObjectNode();
                e.putObject("error").put("message", "generation failed: " + d.error).put("type", "server_error");
                send(out, e.toString());
            } else if (api == Api.LLAMA_CPP) {
                ObjectNode last = JSON.createObjectNode();
                last.put("content", "");
                last.put("stop", true);
                last.put("stop_type", d.why == Engine.Finish.LENGTH ? "limit" : "eos");
                last.put("tokens_predicted", d.completionTokens);
                last.put("tokens_evaluated", d.promptTokens);
                send(out, last.toString());
            } else {
                ObjectNode last = chunk(api, id, created, modelId);
                ObjectNode c = (ObjectNode) last.get("choices").get(0);
                if (api == Api.CHAT) {
                    c.putObject("delta");
                } else {
                    c.put("text", "");
                }
                c.put("finish_reason", finishReason(d.why));
                send(out, last.toString());
                if (includeUsage) {
                    ObjectNode u = chunk(api, id, created, modelId);
                    u.putArray("choices");
                    u.set("usage", usage(d));
                    send(out, u.toString());
                }
                send(out, "[DONE]");
            }
            metrics.request(ctx.path(), 200);
        } catch (IOException e) {
            handle.cancel();
            metrics.request(ctx.path(), 499);
        }
    }

    /** Takes text pieces (to {@code sink}) until the Done marker. */
    private static Done drain(BlockingQueue<Object> events, java.util.function.Consumer<String> sink) {
        while (true) {
            Object e;
            try {
                e = events.take();
            } catch (InterruptedException ex) {
                Thread.currentThread().interrupt();
                throw new ApiError(503, "interrupted", "server_error", null);
            }
            if (e instanceof Done d) {
                return d;
            }
            sink.accept((String) e);
        }
    }

    private static void send(OutputStream out, String data) throws IOException {
        out.write(("data: " + data + "\n\n").getBytes(StandardCharsets.UTF_8));
        out.flush();
    }

    private static ObjectNode chunk(Api api, String id, long created, String modelId) {
        ObjectNode c = JSON.createObjectNode();
        c.put("id", id);
        c.put("object", api == Api.CHAT ? "chat.completion.chunk" : "text_completion");
        c.put("created", created);
        c.put("model", modelId);
        ObjectNode choice = c.putArray("choices").addObject();
        choice.put("index", 0);
        choice.putNull("finish_reason");
        return c;
    }

    private static ObjectNode piece(Api api, String id, long created, String modelId, String text) {
        if (api == Api.LLAMA_CPP) {
            ObjectNode p = JSON.createObjectNode();
            p.put("content", text);
            p.put("stop", false);
            return p;
        }
        ObjectNode c = chunk(api, id, created, modelId);
        ObjectNode choice = (ObjectNode) c.get("choices").get(0);
        if (api == Api.CHAT) {
            choice.putObject("delta").put("content", text);
        } else {
            choice.put("text", text);
        }
        return c;
    }

    private static String finishReason(Engine.Finish why) {
        return why == Engine.Finish.LENGTH ? "length" : "stop";
    }

    private static ObjectNode usage(Done d) {
        ObjectNode u = JSON.createObjectNode();
        u.put("prompt_tokens", d.promptTokens);
        u.put("completion_tokens", d.completionTokens);
        u.put("total_tokens", d.promptTokens + d.completionTokens);
        return u;
    }

    private void ok(Context ctx, JsonNode out) {
        metrics.request(ctx.path(), 200);
        ctx.contentType("application/json").result(out.toString());
    }

    // ---- request fields ----

    private static JsonNode body(Context ctx) {
        try {
            JsonNode n = JSON.readTree(ctx.bodyAsBytes());
            if (n == null || n.isMissingNode()) {
                throw ApiError.bad("the request body is empty; expected JSON");
            }
            return n;
        } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
            throw ApiError.bad("the request body is not valid JSON: " + e.getOriginalMessage());
        } catch (IOException e) {
            throw ApiError.bad("the request body could not be read: " + e.getMessage());
        }
    }

    private static String text(JsonNode body, String field, String otherwise) {
        JsonNode n = body.get(field);
        if (n == null || n.isNull()) {
            return otherwise;
        }
        if (!n.isTextual()) {
            throw ApiError.bad(field + " must be a string");
        }
        return n.asText();
    }

    private static double number(JsonNode body, String field, double otherwise, double min, double max) {
        JsonNode n = body.get(field);
        if (n == null || n.isNull()) {
            return otherwise;
        }
        if (!n.isNumber() || !(n.asDouble() >= min && n.asDouble() <= max)) {
            throw new ApiError(400, field + " must be a number in [" + fmt(min) + ", " + fmt(max) + "], got " + n,
                    "invalid_request_error", null);
        }
        return n.asDouble();
    }

    private static String fmt(double v) {
        return v == Math.rint(v) && Math.abs(v) < 1e15 ? Long.toString((long) v) : Double.toString(v);
    }

    private static List<String> stops(JsonNode n) {
        List<String> out = new ArrayList<>();
        if (n == null || n.isNull()) {
            return out;
        }
        if (n.isTextual()) {
            out.add(n.asText());
        } else if (n.isArray() && n.size() <= 4) {
            for (JsonNode s : n) {
                if (!s.isTextual()) {
                    throw ApiError.bad("stop must be a string or an array of up to 4 strings");
                }
                out.add(s.asText());
            }
        } else {
            throw ApiError.bad("stop must be a string or an array of up to 4 strings");
        }
        out.removeIf(String::isEmpty);
        return out;
    }

    private int[] textPrompt(JsonNode body) {
        JsonNode p = body.get("prompt");
        if (p != null && p.isArray() && p.size() == 1 && p.get(0).isTextual()) {
            p = p.get(0);
        }
        if (p == null || !p.isTextual()) {
            throw ApiError.bad("prompt must be a string");
        }
        int[] ids = tok.encode(p.asText());
        if (!(tok.addBos() && tok.bos() >= 0)) {
            return ids; // an empty one is refused by the engine
        }
        int[] out = new int[ids.length + 1];
        out[0] = tok.bos();
        System.arraycopy(ids, 0, out, 1, ids.length);
        return out;
    }

    private int[] chatPrompt(JsonNode body) {
        JsonNode ms = body.get("messages");
        if (ms == null || !ms.isArray() || ms.isEmpty()) {
            throw ApiError.bad("messages must be a non-empty array of {role, content}");
        }
        List<ChatTemplate.Message> messages = new ArrayList<>();
        for (JsonNode m : ms) {
            String role = text(m, "role", null);
            JsonNode c = m.get("content");
            String content;
            if (c != null && c.isTextual()) {
                content = c.asText();
            } else if (c != null && c.isArray()) { // content parts: the text ones, in order
                StringBuilder sb = new StringBuilder();
                for (JsonNode part : c) {
                    if (!"text".equals(part.path("type").asText()) || !part.path("text").isTextual()) {
                        throw ApiError.bad("only text content parts are supported");
                    }
                    sb.append(part.get("text").asText());
                }
                content = sb.toString();
            } else {
                throw ApiError.bad("every message needs a role and a string content");
            }
            if (role == null || !Set.of("system", "user", "assistant").contains(role)) {
                throw ApiError.bad("unknown message role '" + role + "' (system, user, assistant)");
            }
            messages.add(new ChatTemplate.Message(role, content));
        }
        return ChatTemplate.forTokenizer(tok).encode(messages, true).ids();
    }

    /** The adapters of an OpenAI request: none for the base model's id, else the adapter of that name at weight 1. */
    private List<AdapterSet.Active> adaptersOf(String modelId) {
        if (modelId.equals(opt.modelName())) {
            return List.of();
        }
        LoraAdapter a = adapters.get(modelId);
        if (a == null) {
            throw new ApiError(404, "the model '" + modelId + "' does not exist (GET /v1/models lists them)",
                    "invalid_request_error", "model_not_found");
        }
        return List.of(new AdapterSet.Active(a, 1f));
    }

    /** llama.cpp's per-request {@code lora: [{id, scale}]}, else the scales set through /lora-adapters. */
    private List<AdapterSet.Active> llamaLoras(JsonNode body) {
        List<Map.Entry<String, Path>> entries = adapters.entries();
        List<AdapterSet.Active> out = new ArrayList<>();
        JsonNode l = body.get("lora");
        if (l == null || l.isNull()) {
            for (var e : entries) {
                float s = adapters.defaultScale(e.getKey());
                if (s != 0f) {
                    out.add(new AdapterSet.Active(need(e.getKey()), s));
                }
            }
            return out;
        }
        if (!l.isArray()) {
            throw ApiError.bad("lora must be an array of {\"id\": n, \"scale\": s}");
        }
        Set<String> seen = new HashSet<>();
        for (JsonNode n : l) {
            String name = loraName(n, entries);
            float s = (float) number(n, "scale", 1.0, -100, 100);
            if (!seen.add(name)) {
                throw ApiError.bad("adapter " + name + " is named twice in lora");
            }
            if (s != 0f) {
                out.add(new AdapterSet.Active(need(name), s));
            }
        }
        return out;
    }

    private LoraAdapter need(String name) {
        LoraAdapter a = adapters.get(name);
        if (a == null) {
            throw new ApiError(404, "no adapter named '" + name + "'", "invalid_request_error", "model_not_found");
        }
        return a;
    }

    private static String loraName(JsonNode n, List<Map.Entry<String, Path>> entries) {
        JsonNode id = n.get("id");
        if (id == null || !id.canConvertToInt()) {
            throw ApiError.bad("every lora entry needs an integer id (GET /lora-adapters lists them)");
        }
        int i = id.asInt();
        if (i < 0 || i >= entries.size()) {
            throw new ApiError(404, "no adapter with id " + i + " (GET /lora-adapters lists them)", "invalid_request_error", null);
        }
        return entries.get(i).getKey();
    }
}

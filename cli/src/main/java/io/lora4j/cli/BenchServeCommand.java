package io.lora4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.serve.Engine;
import io.lora4j.serve.Server;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * {@code lora4j bench-serve}: a load generator for {@code lora4j serve} (a server on this machine only):
 * N streaming completion requests at a given concurrency, spread over M adapters, reporting requests/s,
 * output tokens/s, time to first token and the time per output token (p50/p99). Without {@code --url}
 * it starts a server on {@code --model} in-process with M random LoRA adapters (r 8 on q, k, v, o).
 */
@Command(name = "bench-serve", mixinStandardHelpOptions = true,
        description = "Load-test a lora4j server on this machine: streaming requests at a concurrency, over several adapters; "
                + "requests/s, output tokens/s, time to first token and per-token latency (p50/p99).")
final class BenchServeCommand implements Callable<Integer> {
    private static final ObjectMapper JSON = new ObjectMapper();

    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--url", description = "A running server (loopback addresses only), e.g. http://127.0.0.1:8080; "
            + "default: start one in-process on --model.")
    String url;

    @Option(names = "--api-key", description = "Bearer key for --url.")
    String apiKey;

    @Option(names = "--requests", defaultValue = "32", description = "Requests to send (default ${DEFAULT-VALUE}, at most 100000).")
    int requests;

    @Option(names = "--concurrency", defaultValue = "8", description = "Requests in flight at once (default ${DEFAULT-VALUE}).")
    int concurrency;

    @Option(names = "--adapters", defaultValue = "0", description = "Spread requests over this many adapters (with --url: "
            + "the names --adapter-names gives; in-process: random ones); 0 = the base model (default ${DEFAULT-VALUE}).")
    int adapters;

    @Option(names = "--adapter-names", split = ",", description = "With --url: the adapter names to use.")
    List<String> adapterNames;

    @Option(names = "--max-tokens", defaultValue = "64", description = "Tokens per request (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--prompt", defaultValue = "Once upon a time", description = "Prompt of every request.")
    String prompt;

    @Option(names = "--timeout", defaultValue = "600", description = "Stop after this many seconds (default ${DEFAULT-VALUE}).")
    int timeout;

    @Option(names = "--warmup", defaultValue = "10", paramLabel = "SECONDS",
            description = "Untimed warm-up before the clock starts: rounds of the same load (every adapter used) until this many "
                    + "seconds have passed, at least one round (default ${DEFAULT-VALUE}; 0 = one round).")
    int warmup;

    @Option(names = "--max-sequences", defaultValue = "8", description = "In-process server: sequences decoding at once (default ${DEFAULT-VALUE}).")
    int maxSequences;

    /** One request's timings. */
    private record Sample(boolean ok, long start, long first, long end, int tokens) {
    }

    @Override
    public Integer call() throws Exception {
        if (requests < 1 || requests > 100_000 || concurrency < 1 || concurrency > 1024 || maxTokens < 1 || timeout < 1
                || warmup < 0 || warmup > 3600) {
            throw new IllegalArgumentException("--requests 1..100000, --concurrency 1..1024, --max-tokens and --timeout >= 1, "
                    + "--warmup 0..3600");
        }
        if (url != null) {
            checkLoopback(url);
            List<String> names = adapterNames == null ? List.of() : adapterNames;
            if (adapters > names.size()) {
                throw new IllegalArgumentException("--adapters " + adapters + " with --url needs that many --adapter-names");
            }
            run(url, apiKey, names.subList(0, adapters), "(a running server)");
            return 0;
        }
        Path dir = Files.createTempDirectory("lora4j-bench-serve");
        try (LoadedModel lm = modelOptions.open()) {
            List<String> names = new ArrayList<>();
            for (int i = 0; i < adapters; i++) {
                LoraConfig c = new LoraConfig(8, 16f, 0f, List.of("q_proj", "k_proj", "v_proj", "o_proj"), null, "none", false,
                        "false", List.of(), Map.of(), Map.of(), List.of());
                PeftAdapters.save(new LoraAdapter("r" + i, c, lm.llama(), 100 + i), lm.llama(), dir.resolve("r" + i));
                names.add("r" + i);
            }
            int ctx = Math.min(2048, lm.llama().config().contextLength());
            try (Engine engine = new Engine(lm.llama(), new Engine.Options(maxSequences, ctx, 4 * requests, 64), 8);
                 Server server = new Server(lm.llama(), lm.tokenizer(), engine, new Server.Options("127.0.0.1", 0, null, dir,
                         Math.max(1, adapters), 1 << 20, "base"), Map.of())) {
                int port = server.start();
                run("http://127.0.0.1:" + port, null, names, modelOptions.modelPath() + ", in-process, " + maxSequences + " sequences");
            }
        } finally {
            try (var s = Files.walk(dir)) {
                s.sorted(Collections.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
        return 0;
    }

    private static void checkLoopback(String u) throws Exception {
        URI uri = URI.create(u);
        if (uri.getHost() == null || !InetAddress.getByName(uri.getHost()).isLoopbackAddress()) {
            throw new IllegalArgumentException("--url must name a server on this machine (a loopback address), got " + u);
        }
    }

    private void run(String base, String key, List<String> names, String where) throws Exception {
        HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        // warm-up, not timed: rounds of the same load over every adapter (each loaded on first use) at the same
        // concurrency until --warmup seconds have passed, so the kernels are compiled and the adapters resident
        // before the clock starts (one round was too little: a single stream's steps took twice their steady
        // time for its first ~10 s while C2 compiled the batched kernels)
        long warmEnd = System.nanoTime() + TimeUnit.SECONDS.toNanos(warmup);
        do {
            load(http, base, key, names, Math.max(concurrency, names.size()), Long.MAX_VALUE);
        } while (System.nanoTime() < warmEnd);
        long t0 = System.nanoTime();
        List<Sample> samples = load(http, base, key, names, requests, t0 + TimeUnit.SECONDS.toNanos(timeout));
        double wall = (System.nanoTime() - t0) / 1e9;
        List<Sample> ok = samples.stream().filter(Sample::ok).toList();
        long tokens = ok.stream().mapToLong(Sample::tokens).sum();
        List<Double> ttft = ok.stream().map(s -> (s.first - s.start) / 1e6).sorted().toList();
        List<Double> tpot = ok.stream().filter(s -> s.tokens > 1).map(s -> (s.end - s.first) / 1e6 / (s.tokens - 1)).sorted().toList();
        System.out.printf(Locale.ROOT, "bench-serve: %s | %d requests (%d failed), concurrency %d, %s, %d tokens each%n",
                where, samples.size(), samples.size() - ok.size(), concurrency,
                names.isEmpty() ? "base model" : names.size() + " adapters", maxTokens);
        System.out.printf(Locale.ROOT, "  requests/s %.2f | output tokens/s %.1f | wall %.1f s%n", ok.size() / wall, tokens / wall, wall);
        System.out.printf(Locale.ROOT, "  time to first token ms: p50 %.1f  p99 %.1f | time per output token ms: p50 %.1f  p99 %.1f%n",
                pct(ttft, 50), pct(ttft, 99), pct(tpot, 50), pct(tpot, 99));
    }

    /** {@code count} requests, {@code concurrency} in flight, request i to adapter i mod |names| (or the base), until the deadline. */
    private List<Sample> load(HttpClient http, String base, String key, List<String> names, int count, long deadline) throws Exception {
        AtomicInteger next = new AtomicInteger();
        List<Sample> samples = Collections.synchronizedList(new ArrayList<>());
        try (ExecutorService pool = Executors.newFixedThreadPool(concurrency)) {
            List<Future<?>> workers = new ArrayList<>();
            for (int w = 0; w < concurrency; w++) {
                workers.add(pool.submit(() -> {
                    int i;
                    while ((i = next.getAndIncrement()) < count && System.nanoTime() < deadline) {
                        samples.add(one(http, base, key, names.isEmpty() ? null : names.get(i % names.size())));
                    }
                    return null;
                }));
            }
            for (Future<?> f : workers) {
                f.get();
            }
        }
        return samples;
    }

    private Sample one(HttpClient http, String base, String key, String model) {
        ObjectNode body = JSON.createObjectNode();
        if (model != null) {
            body.put("model", model);
        }
        body.put("prompt", prompt).put("max_tokens", maxTokens).put("temperature", 0.8).put("stream", true);
        body.putObject("stream_options").put("include_usage", true);
        HttpRequest.Builder rb = HttpRequest.newBuilder(URI.create(base + "/v1/completions"))
                .header("Content-Type", "application/json").POST(HttpRequest.BodyPublishers.ofString(body.toString()));
        if (key != null) {
            rb.header("Authorization", "Bearer " + key);
        }
        long start = System.nanoTime(), first = 0;
        int tokens = 0;
        try {
            HttpResponse<java.io.InputStream> r = http.send(rb.build(), HttpResponse.BodyHandlers.ofInputStream());
            if (r.statusCode() != 200) {
                r.body().close();
                return new Sample(false, start, start, System.nanoTime(), 0);
            }
            try (BufferedReader in = new BufferedReader(new InputStreamReader(r.body(), StandardCharsets.UTF_8))) {
                String line;
                while ((line = in.readLine()) != null) {
                    if (!line.startsWith("data: ") || line.equals("data: [DONE]")) {
                        continue;
                    }
                    JsonNode ev = JSON.readTree(line.substring(6));
                    if (ev.has("usage") && ev.get("usage").has("completion_tokens")) {
                        tokens = ev.get("usage").get("completion_tokens").asInt();
                    } else if (first == 0 && !ev.path("choices").path(0).path("text").asText("").isEmpty()) {
                        first = System.nanoTime();
                    }
                }
            }
            return new Sample(first != 0, start, first, System.nanoTime(), tokens);
        } catch (Exception e) {
            return new Sample(false, start, start, System.nanoTime(), 0);
        }
    }

    private static double pct(List<Double> sorted, int p) {
        if (sorted.isEmpty()) {
            return Double.NaN;
        }
        int i = (int) Math.ceil(p / 100.0 * sorted.size()) - 1;
        return sorted.get(Math.max(0, Math.min(sorted.size() - 1, i)));
    }
}

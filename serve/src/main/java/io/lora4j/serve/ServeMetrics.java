package io.lora4j.serve;

import io.lora4j.model.serve.Engine;
import io.prometheus.metrics.core.metrics.Counter;
import io.prometheus.metrics.core.metrics.CounterWithCallback;
import io.prometheus.metrics.core.metrics.GaugeWithCallback;
import io.prometheus.metrics.expositionformats.PrometheusTextFormatWriter;
import io.prometheus.metrics.model.registry.PrometheusRegistry;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.util.ArrayDeque;

/** The server's Prometheus metrics (text exposition format at /metrics), through the Prometheus Java client. */
final class ServeMetrics {
    static final String CONTENT_TYPE = PrometheusTextFormatWriter.CONTENT_TYPE;
    private static final long WINDOW_NANOS = 10_000_000_000L;

    private final PrometheusRegistry registry = new PrometheusRegistry();
    private final Counter requests;
    private final Engine engine;
    private final ArrayDeque<long[]> samples = new ArrayDeque<>(); // (nanos, completion tokens so far)

    ServeMetrics(Engine engine, AdapterRegistry adapters) {
        this.engine = engine;
        requests = Counter.builder().name("lora4j_requests_total").help("HTTP requests answered, by route and status")
                .labelNames("route", "status").register(registry);
        CounterWithCallback.builder().name("lora4j_prompt_tokens_total").help("Prompt tokens prefilled")
                .callback(cb -> cb.call(engine.promptTokens())).register(registry);
        CounterWithCallback.builder().name("lora4j_completion_tokens_total").help("Tokens generated")
                .callback(cb -> cb.call(engine.completionTokens())).register(registry);
        GaugeWithCallback.builder().name("lora4j_running_sequences").help("Sequences decoding in the batch now")
                .callback(cb -> cb.call(engine.running())).register(registry);
        GaugeWithCallback.builder().name("lora4j_queued_requests").help("Requests waiting for a sequence slot")
                .callback(cb -> cb.call(engine.queued())).register(registry);
        GaugeWithCallback.builder().name("lora4j_loaded_adapters").help("Adapters held in memory")
                .callback(cb -> cb.call(adapters.loadedCount())).register(registry);
        GaugeWithCallback.builder().name("lora4j_tokens_per_second").help("Generated tokens per second over the last 10 s")
                .callback(cb -> cb.call(tokensPerSecond())).register(registry);
    }

    /** Counts an answered request. */
    void request(String route, int status) {
        String r = switch (route) {
            case "/v1/completions", "/v1/chat/completions", "/completion", "/v1/models", "/lora-adapters",
                 "/v1/load_lora_adapter", "/v1/unload_lora_adapter", "/metrics", "/health", "/" -> route;
            default -> "other";
        };
        requests.labelValues(r, Integer.toString(status)).inc();
    }

    private synchronized double tokensPerSecond() {
        long now = System.nanoTime();
        samples.addLast(new long[]{now, engine.completionTokens()});
        while (samples.size() > 1 && now - samples.peekFirst()[0] > WINDOW_NANOS) {
            samples.removeFirst();
        }
        long[] first = samples.peekFirst(), last = samples.peekLast();
        double dt = (last[0] - first[0]) / 1e9;
        return dt <= 0 ? 0 : (last[1] - first[1]) / dt;
    }

    byte[] scrape() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        PrometheusTextFormatWriter.create().write(out, registry.scrape());
        return out.toByteArray();
    }
}

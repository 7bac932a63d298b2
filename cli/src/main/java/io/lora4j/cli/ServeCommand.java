package io.lora4j.cli;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.serve.Engine;
import io.lora4j.serve.Server;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Callable;
import java.util.concurrent.CountDownLatch;

/** {@code lora4j serve}: the OpenAI-compatible server (see {@link Server}) until interrupted. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = "Serve the model over HTTP: OpenAI /v1/completions and /v1/chat/completions (the adapter chosen by "
                + "\"model\"), llama.cpp /completion with per-request lora scales, vLLM-style adapter loading, "
                + "/metrics, and a chat page at /. Requests on different adapters decode in one batch.")
final class ServeCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;
    @Mixin
    QuantizeOptions quantize;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "Address to bind (default ${DEFAULT-VALUE}: this machine only).")
    String host;

    @Option(names = "--port", defaultValue = "8080", description = "TCP port (default ${DEFAULT-VALUE}; 0 picks a free one).")
    int port;

    @Option(names = "--api-key", description = "Require 'Authorization: Bearer KEY' on every route but /health and / "
            + "(default: no key; or the LORA4J_API_KEY environment variable).")
    String apiKey;

    @Option(names = "--adapter", paramLabel = "DIR[:NAME]", description = "Serve this PEFT adapter under NAME (default: the "
            + "directory's name); repeatable.")
    List<String> adapterSpecs;

    @Option(names = "--adapter-dir", paramLabel = "DIR", description = "Every PEFT adapter directory inside DIR is servable by "
            + "its name, loaded on first use; run-time loading (/v1/load_lora_adapter) accepts paths inside DIR only.")
    Path adapterDir;

    @Option(names = "--max-loras", defaultValue = "8", description = "Adapters held in memory at once, least recently used "
            + "dropped (default ${DEFAULT-VALUE}).")
    int maxLoras;

    @Option(names = "--max-sequences", defaultValue = "8", description = "Requests decoding at once, each with its own KV "
            + "cache (default ${DEFAULT-VALUE}).")
    int maxSequences;

    @Option(names = {"-c", "--ctx-size"}, defaultValue = "2048", paramLabel = "N",
            description = "Positions per request, prompt and completion (default ${DEFAULT-VALUE}, capped by the model's).")
    int ctxSize;

    @Option(names = "--queue", defaultValue = "64", description = "Requests that may wait for a free sequence; beyond, 429 "
            + "with Retry-After (default ${DEFAULT-VALUE}).")
    int queue;

    @Option(names = {"-b", "--batch-size"}, defaultValue = "64", paramLabel = "N",
            description = "Prompt tokens per step: joining prompts run beside the decoding sequences, at most this many "
                    + "of their tokens per step (default ${DEFAULT-VALUE}).")
    int prefillChunk;

    @Option(names = "--max-body", defaultValue = "1048576", description = "Largest request body in bytes (default ${DEFAULT-VALUE}).")
    long maxBody;

    @Override
    public Integer call() throws InterruptedException {
        String key = apiKey != null ? apiKey : System.getenv("LORA4J_API_KEY");
        if (port < 0 || port > 65535) {
            throw new IllegalArgumentException("--port must be in 0..65535");
        }
        try (LoadedModel lm = modelOptions.open(quantize)) {
            Map<String, Path> preload = new LinkedHashMap<>();
            for (String s : adapterSpecs == null ? List.<String>of() : adapterSpecs) {
                AdapterSpec a = AdapterSpec.parse(s);
                if (!Files.isRegularFile(a.dir().resolve(PeftAdapters.CONFIG))) {
                    throw new IllegalArgumentException("--adapter " + s + ": no " + PeftAdapters.CONFIG + " in " + a.dir());
                }
                preload.put(a.name(), a.dir());
            }
            int ctx = Math.min(ctxSize, lm.llama().config().contextLength());
            Engine.Options eo = new Engine.Options(maxSequences, ctx, queue, prefillChunk);
            String name = modelName(modelOptions.modelPath());
            try (Engine engine = new Engine(lm.llama(), eo, 64);
                 Server server = new Server(lm.llama(), lm.tokenizer(), engine,
                         new Server.Options(host, port, key, adapterDir, maxLoras, maxBody, name), preload)) {
                int bound = server.start();
                System.err.printf("lora4j serve: %s on http://%s:%d/ (model id '%s', %d sequences x %d positions%s)%n",
                        modelOptions.modelPath(), host, bound, name, maxSequences, ctx, key != null ? ", API key required" : "");
                CountDownLatch stop = new CountDownLatch(1);
                Runtime.getRuntime().addShutdownHook(new Thread(stop::countDown));
                stop.await();
            }
        }
        return 0;
    }

    /** The model's id in /v1/models: its file name without the extension. */
    static String modelName(Path model) {
        String f = model.getFileName().toString();
        int dot = f.lastIndexOf('.');
        return dot > 0 ? f.substring(0, dot) : f;
    }
}

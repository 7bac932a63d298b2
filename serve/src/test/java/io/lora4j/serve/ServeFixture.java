package io.lora4j.serve;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.serve.Engine;
import io.lora4j.model.train.Example;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A server on stories260K (from ../shared/models) with adapters trained here for a few steps on
 * different texts, so that each continues a prompt its own way. Port 0: a free loopback port.
 */
final class ServeFixture implements AutoCloseable {
    static final String[] TEXTS = {
            "The dragon Spark flew over the blue hills and the dragon Spark sang to the moon.",
            "Tom the cat ate a big red apple and Tom the cat took a nap in the sun.",
            "A small boat sailed on the sea and the small boat found a shiny shell.",
            "Mia built a tall tower of blocks and Mia laughed when the tower fell down."};

    final LoadedModel lm;
    final Engine engine;
    final Server server;
    final int port;
    final Path adapterDir;
    final HttpClient http = HttpClient.newHttpClient();

    ServeFixture(Path tmp, int adapters, Engine.Options eo, String apiKey, long maxBody) throws Exception {
        lm = LoadedModel.open(stories(), null);
        adapterDir = Files.createDirectories(tmp.resolve("adapters"));
        for (int i = 0; i < adapters; i++) {
            train("a" + i, TEXTS[i % TEXTS.length], i);
        }
        engine = new Engine(lm.llama(), eo, 8);
        server = new Server(lm.llama(), lm.tokenizer(), engine,
                new Server.Options("127.0.0.1", 0, apiKey, adapterDir, 8, maxBody, "stories260K"), Map.of());
        port = server.start();
    }

    static ServeFixture standard(Path tmp, int adapters) throws Exception {
        return new ServeFixture(tmp, adapters, new Engine.Options(8, 256, 64, 32), null, 1 << 20);
    }

    static Path stories() {
        return Path.of(System.getProperty("lora4j.shared", "../shared"), "models/stories260K/stories260K.gguf");
    }

    /** Trains a LoRA (r 4 on q, v, down) for 30 AdamW steps on one text and saves it as {@code adapterDir/name}. */
    private void train(String name, String text, long seed) {
        LoraAdapter a = new LoraAdapter(name, LoraConfig.of(4, 8f, List.of("q_proj", "v_proj", "down_proj")), lm.llama(), seed);
        int[] ids = lm.tokenizer().encode(text);
        int[] tokens = new int[ids.length], targets = new int[ids.length];
        tokens[0] = lm.tokenizer().bos();
        System.arraycopy(ids, 0, tokens, 1, ids.length - 1);
        System.arraycopy(ids, 0, targets, 0, ids.length);
        List<Example> data = new ArrayList<>(List.of(new Example(tokens, targets)));
        TrainConfig cfg = new TrainConfig("adamw", 1e-2f, 0f, 0.9f, 0.999f, 1e-8f, "constant", 0, 30, 1, 1, 1f, 64, seed,
                false, false, 0, 0f);
        new Trainer(lm.llama(), a, cfg, data, List.of()).run(new Trainer.Listener() {
            @Override
            public void step(Trainer.StepStats s) {
            }
        });
        PeftAdapters.save(a, lm.llama(), adapterDir.resolve(name));
    }

    String url(String path) {
        return "http://127.0.0.1:" + port + path;
    }

    HttpResponse<String> post(String path, String json, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url(path))).POST(HttpRequest.BodyPublishers.ofString(json))
                .header("Content-Type", "application/json");
        if (headers.length > 0) {
            b.headers(headers);
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    HttpResponse<String> get(String path, String... headers) throws Exception {
        HttpRequest.Builder b = HttpRequest.newBuilder(URI.create(url(path))).GET();
        if (headers.length > 0) {
            b.headers(headers);
        }
        return http.send(b.build(), HttpResponse.BodyHandlers.ofString());
    }

    @Override
    public void close() {
        server.close();
        engine.close();
        lm.close();
    }
}

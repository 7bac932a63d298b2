package io.lora4j.serve;

import io.lora4j.model.serve.Engine;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.InputStream;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.net.Socket;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * 2,000 requests at concurrency 16 over the base and 4 adapters, streaming and not, every tenth one
 * abandoned by its client in the middle of its stream: no error, every sequence freed, and the heap
 * back at its starting level.
 */
@Tag("slow")
class ServeSoakTest {

    @Test
    void twoThousandMixedRequestsLeaveNothingBehind(@TempDir Path tmp) throws Exception {
        try (ServeFixture f = new ServeFixture(tmp, 4, new Engine.Options(16, 256, 64, 32), null, 1 << 20)) {
            String[] models = {"stories260K", "a0", "a1", "a2", "a3"};
            f.post("/v1/completions", "{\"prompt\":\"Once\",\"max_tokens\":4}"); // warm up
            long heapBefore = usedHeapAfterGc();
            AtomicInteger failures = new AtomicInteger(), cancelled = new AtomicInteger();
            try (ExecutorService pool = Executors.newFixedThreadPool(16)) {
                List<Future<?>> all = new ArrayList<>();
                for (int i = 0; i < 2000; i++) {
                    int k = i;
                    all.add(pool.submit(() -> {
                        String body = "{\"model\":\"" + models[k % models.length] + "\",\"prompt\":\"Once upon a time\","
                                + "\"max_tokens\":" + (8 + k % 17) + ",\"stream\":" + (k % 2 == 0) + "}";
                        try {
                            if (k % 10 == 3) {
                                abandon(f, body.replace("\"stream\":false", "\"stream\":true"));
                                cancelled.incrementAndGet();
                            } else {
                                HttpResponse<String> r = f.post("/v1/completions", body);
                                if (r.statusCode() != 200 || (k % 2 == 0 && !r.body().contains("[DONE]"))) {
                                    failures.incrementAndGet();
                                }
                            }
                        } catch (Exception e) {
                            failures.incrementAndGet();
                        }
                        return null;
                    }));
                }
                for (Future<?> x : all) {
                    x.get(10, TimeUnit.MINUTES);
                }
            }
            assertEquals(0, failures.get(), "requests that failed");
            long deadline = System.nanoTime() + 30_000_000_000L;
            while ((f.engine.running() > 0 || f.engine.queued() > 0) && System.nanoTime() < deadline) {
                Thread.sleep(20);
            }
            assertEquals(0, f.engine.running(), "no sequence left running");
            assertEquals(0, f.engine.queued(), "no request left waiting");
            assertEquals(2001, f.engine.finished(), "every request ended");
            assertEquals(200, cancelled.get());
            long heapAfter = usedHeapAfterGc();
            assertTrue(heapAfter < heapBefore + 64L * 1024 * 1024,
                    "heap after " + heapAfter / 1048576 + " MiB, before " + heapBefore / 1048576 + " MiB");
        }
    }

    /** Sends a streaming request, reads the start of the answer and hangs up. */
    private static void abandon(ServeFixture f, String body) throws Exception {
        try (Socket s = new Socket("127.0.0.1", f.port)) {
            byte[] b = body.getBytes(StandardCharsets.UTF_8);
            OutputStream out = s.getOutputStream();
            out.write(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " + b.length
                    + "\r\n\r\n").getBytes(StandardCharsets.UTF_8));
            out.write(b);
            out.flush();
            InputStream in = s.getInputStream();
            in.read(new byte[512]);
        }
    }

    private static long usedHeapAfterGc() throws InterruptedException {
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(200);
        }
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }
}

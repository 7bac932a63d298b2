package io.lora4j.kernels;

import org.junit.jupiter.api.Test;

import java.util.concurrent.atomic.AtomicIntegerArray;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

class ThreadsTest {
    @Test
    void everyIndexRunsExactlyOnce() {
        for (int n : new int[]{1, 2, 3, 7, 1000, 100_003}) {
            AtomicIntegerArray hits = new AtomicIntegerArray(n);
            for (int rep = 0; rep < 20; rep++) {
                Threads.parallelFor(n, (from, to) -> {
                    for (int i = from; i < to; i++) {
                        hits.incrementAndGet(i);
                    }
                });
            }
            for (int i = 0; i < n; i++) {
                assertEquals(20, hits.get(i), "n=" + n + " index " + i);
            }
        }
    }

    @Test
    void nestedCallsRunInline() {
        AtomicIntegerArray hits = new AtomicIntegerArray(64 * 64);
        Threads.parallelFor(64, (from, to) -> {
            for (int i = from; i < to; i++) {
                int row = i;
                Threads.parallelFor(64, (f, t) -> {
                    for (int j = f; j < t; j++) {
                        hits.incrementAndGet(row * 64 + j);
                    }
                });
            }
        });
        for (int i = 0; i < 64 * 64; i++) {
            assertEquals(1, hits.get(i));
        }
    }

    @Test
    void aFailureInAnyChunkReachesTheCaller() {
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> Threads.parallelFor(10_000, (from, to) -> {
            if (to == 10_000) {
                throw new IllegalStateException("boom in the last chunk");
            }
        }));
        assertEquals("boom in the last chunk", e.getMessage());
        // the pool still works afterwards
        AtomicIntegerArray hits = new AtomicIntegerArray(100);
        Threads.parallelFor(100, (from, to) -> {
            for (int i = from; i < to; i++) {
                hits.incrementAndGet(i);
            }
        });
        for (int i = 0; i < 100; i++) {
            assertEquals(1, hits.get(i));
        }
    }
}

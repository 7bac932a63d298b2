package io.lora4j.model.train;

import io.lora4j.model.Llama;
import io.lora4j.model.lora.LoraAdapter;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Data-parallel replicas (in threads here, Spark tasks in the spark module) train the adapter that one
 * trainer with a batch as large as all of theirs together trains: bit for bit, losses included.
 */
class ReplicasTest {

    /** Replicas in one process: a barrier and a shared table of payloads. */
    static final class InMemory {
        final int n;
        final CyclicBarrier barrier;
        final byte[][] slots;

        InMemory(int n) {
            this.n = n;
            this.barrier = new CyclicBarrier(n);
            this.slots = new byte[n][];
        }

        Replicas replica(int i) {
            return new Replicas() {
                @Override
                public int index() {
                    return i;
                }

                @Override
                public int count() {
                    return n;
                }

                @Override
                public List<byte[]> exchange(byte[] mine) {
                    try {
                        slots[i] = mine;
                        barrier.await();
                        List<byte[]> all = new ArrayList<>(Arrays.asList(slots.clone()));
                        barrier.await(); // everyone has read before the next step overwrites
                        return all;
                    } catch (Exception e) {
                        throw new IllegalStateException(e);
                    }
                }
            };
        }
    }

    @ParameterizedTest
    @CsvSource({"2,1,1,adamw,0.0", "2,2,1,sgd,0.1", "3,1,2,adamw,0.1"})
    void replicasTrainTheAdapterOfOneTrainerWithTheirBatchesTogether(int replicas, int batch, int accum, String opt, float dropout)
            throws Exception {
        Llama m = TrainerTest.model();
        List<Example> data = TrainerTest.data(11, 8, 5);
        LoraAdapter single = TrainerTest.adapter(m, dropout);
        Trainer one = new Trainer(m, single, TrainerTest.cfg(opt, 4, batch * replicas, accum), data, List.of());
        List<Double> losses = new ArrayList<>();
        for (int s = 0; s < 4; s++) {
            losses.add(one.trainStep().loss());
        }
        InMemory group = new InMemory(replicas);
        List<LoraAdapter> copies = new ArrayList<>();
        try (ExecutorService pool = Executors.newFixedThreadPool(replicas)) {
            List<Future<List<Double>>> runs = new ArrayList<>();
            for (int r = 0; r < replicas; r++) {
                LoraAdapter a = TrainerTest.adapter(m, dropout);
                copies.add(a);
                Trainer t = new Trainer(m, a, TrainerTest.cfg(opt, 4, batch, accum), data, List.of());
                t.replicas(group.replica(r));
                runs.add(pool.submit(() -> {
                    List<Double> l = new ArrayList<>();
                    for (int s = 0; s < 4; s++) {
                        l.add(t.trainStep().loss());
                    }
                    return l;
                }));
            }
            for (Future<List<Double>> run : runs) {
                assertEquals(losses, run.get(), "the same losses on every replica as on the single trainer");
            }
        }
        for (LoraAdapter a : copies) {
            assertArrayEquals(single.store().values, a.store().values, "every replica's adapter is the single trainer's, bit for bit");
        }
        assertTrue(!Arrays.equals(TrainerTest.adapter(m, dropout).store().values, single.store().values), "the adapter trained");
    }
}

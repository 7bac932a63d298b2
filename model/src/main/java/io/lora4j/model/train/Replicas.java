package io.lora4j.model.train;

import java.util.List;

/**
 * Synchronous data parallelism for a {@link Trainer}: {@link #count} replicas hold the same adapter and
 * the same data order; in every optimizer step replica r computes the gradients of its share of the
 * step's sequences (the r-th slice of {@code count × batch × accumulation} sequences), the replicas
 * exchange them, and each sums all of them in the step's sequence order and applies the same update,
 * so every copy stays bit-identical — and equal to one trainer whose batch is {@code count} times
 * larger, which sums per-sequence gradients in the same order.
 */
public interface Replicas {
    /** This replica's index, 0-based. */
    int index();

    /** How many replicas train together. */
    int count();

    /**
     * Sends this replica's step payload and returns every replica's, in replica order (this one's
     * included). Blocks until all have sent theirs.
     */
    List<byte[]> exchange(byte[] mine);

    /** One trainer alone. */
    Replicas ALONE = new Replicas() {
        @Override
        public int index() {
            return 0;
        }

        @Override
        public int count() {
            return 1;
        }

        @Override
        public List<byte[]> exchange(byte[] mine) {
            return List.of(mine);
        }
    };
}

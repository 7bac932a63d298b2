package io.lora4j.kernels;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;

/**
 * The worker pool behind every fast kernel: {@link #threadCount()} threads (the caller plus
 * daemon workers; system property {@code lora4j.threads}, default all cores). A
 * {@link #parallelFor} cuts [0, n) into a few contiguous chunks per thread that the caller and
 * the workers claim until none is left (so a thread slowed by the OS does not hold the others up),
 * and returns when all are done. Workers spin briefly before parking, so back-to-back kernels
 * (a decode step issues ~100) pay a few microseconds each, not a thread wake-up. Nested calls,
 * and calls while another thread owns the pool, run inline.
 */
public final class Threads {

    /** A body over a half-open range of outer-loop indices. */
    public interface RangeBody {
        void run(int from, int to);
    }

    private static final int N = Math.max(1, Integer.getInteger("lora4j.threads", Runtime.getRuntime().availableProcessors()));
    private static final long SPIN_NANOS = 200_000;
    private static final Worker[] WORKERS = new Worker[N - 1];
    private static final ReentrantLock LOCK = new ReentrantLock();
    private static final AtomicInteger PENDING = new AtomicInteger();
    private static final AtomicInteger NEXT = new AtomicInteger();
    private static final int CHUNKS_PER_THREAD = 4;
    private static volatile int chunks;
    private static volatile int total;
    private static final ThreadLocal<Boolean> INSIDE = ThreadLocal.withInitial(() -> false);
    private static volatile Thread owner;

    static {
        for (int i = 0; i < WORKERS.length; i++) {
            WORKERS[i] = new Worker(i + 1);
            WORKERS[i].start();
        }
    }

    private Threads() {
    }

    public static int threadCount() {
        return N;
    }

    /** Runs body over [0, n) on all threads. */
    public static void parallelFor(int n, RangeBody body) {
        parallelFor(n, Long.MAX_VALUE / 2, body);
    }

    /**
     * Runs body over [0, n), in parallel only when {@code n · workPerItem} (roughly, floating-point
     * operations) is worth a dispatch; otherwise inline on the caller.
     */
    public static void parallelFor(int n, long workPerItem, RangeBody body) {
        if (n <= 0) {
            return;
        }
        int parts = (int) Math.min(N, n);
        if (parts == 1 || (double) n * workPerItem < 32_768 || INSIDE.get() || !LOCK.tryLock()) {
            body.run(0, n);
            return;
        }
        try {
            owner = Thread.currentThread();
            total = n;
            chunks = (int) Math.min(n, (long) parts * CHUNKS_PER_THREAD);
            NEXT.set(0);
            PENDING.set(parts - 1);
            for (int i = 1; i < parts; i++) {
                WORKERS[i - 1].submit(body);
            }
            Throwable failure = null;
            INSIDE.set(true);
            try {
                claim(body);
            } catch (Throwable t) {
                failure = t;
            } finally {
                INSIDE.set(false);
            }
            long spinUntil = System.nanoTime() + SPIN_NANOS;
            while (PENDING.get() > 0) {
                if (System.nanoTime() < spinUntil) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.parkNanos(20_000);
                }
            }
            for (int i = 1; i < parts; i++) {
                Throwable t = WORKERS[i - 1].takeFailure();
                if (t != null && failure == null) {
                    failure = t;
                }
            }
            if (failure instanceof RuntimeException re) {
                throw re;
            }
            if (failure instanceof Error er) {
                throw er;
            }
            if (failure != null) {
                throw new IllegalStateException(failure);
            }
        } finally {
            owner = null;
            LOCK.unlock();
        }
    }

    /** Runs chunks of the current job until none is left. */
    private static void claim(RangeBody body) {
        int c = chunks;
        int n = total;
        for (int k = NEXT.getAndIncrement(); k < c; k = NEXT.getAndIncrement()) {
            body.run((int) ((long) n * k / c), (int) ((long) n * (k + 1) / c));
        }
    }

    private static final class Worker extends Thread {
        private volatile RangeBody body;
        private volatile long seq;
        private long done;
        private volatile Throwable failure;

        Worker(int index) {
            super("lora4j-worker-" + index);
            setDaemon(true);
        }

        void submit(RangeBody b) {
            body = b;
            seq = seq + 1; // publishes body (and the job fields written before)
            LockSupport.unpark(this);
        }

        Throwable takeFailure() {
            Throwable t = failure;
            failure = null;
            return t;
        }

        @Override
        public void run() {
            INSIDE.set(true);
            while (true) {
                long spinUntil = System.nanoTime() + SPIN_NANOS;
                while (seq == done) {
                    if (System.nanoTime() < spinUntil) {
                        Thread.onSpinWait();
                    } else {
                        LockSupport.park(this);
                    }
                }
                done = seq;
                try {
                    claim(body);
                } catch (Throwable t) {
                    failure = t;
                }
                PENDING.decrementAndGet();
                Thread o = owner;
                if (o != null) {
                    LockSupport.unpark(o);
                }
            }
        }
    }
}

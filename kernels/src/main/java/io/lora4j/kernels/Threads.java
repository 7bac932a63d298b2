package io.lora4j.kernels;
// TEMPORARY STUB (replaced by helper's version on merge)
public final class Threads {
    public interface RangeBody { void run(int from, int to); }
    public static int threadCount() { return 1; }
    public static void parallelFor(int n, RangeBody body) { body.run(0, n); }
    public static void parallelFor(int n, long work, RangeBody body) { body.run(0, n); }
}

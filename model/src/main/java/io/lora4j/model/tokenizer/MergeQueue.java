package io.lora4j.model.tokenizer;

import java.util.Arrays;

/**
 * BPE merging shared by the SentencePiece and byte-level encoders: symbols in a doubly linked list
 * over the text, candidate merges in a binary min-heap of (priority, left, size) held in three
 * primitive arrays, ordered by priority, then by the left symbol's position (leftmost first).
 * {@code left} is the index of the pair's left symbol and {@code size} the length the pair spans;
 * an entry whose symbols have changed since it was pushed is stale and skipped.
 * With a doubly linked list of symbols this makes a whole encoding O(n log n) in the input length
 * n, where rescanning every pair for the best one after each merge is O(n²): 10 MB of one
 * repeated letter is a single pre-token of 10 million symbols.
 */
final class MergeQueue {
    /** The priority of merging the symbols [start, mid) and [mid, end) of {@code s}, lower first; NaN when they do not merge. */
    interface Pair {
        double priority(String s, int start, int mid, int end);
    }

    /**
     * Merges adjacent symbols of {@code s}, best pair first (lowest priority, leftmost on ties), until
     * no pair merges. The symbols start at {@code starts[0..count)} (ascending; each ends where the
     * next starts, the last at the end of {@code s}). Returns the starts of the final symbols.
     */
    static int[] mergeAll(String s, int[] starts, int count, Pair pair) {
        int[] next = new int[count], prev = new int[count];
        for (int i = 0; i < count; i++) {
            prev[i] = i - 1;
            next[i] = i + 1 < count ? i + 1 : -1;
        }
        MergeQueue q = new MergeQueue(count);
        for (int i = 0; i + 1 < count; i++) {
            q.offer(s, starts, next, i, pair);
        }
        while (!q.isEmpty()) {
            int l = q.topLeft(), size = q.topSize();
            q.pop();
            int r = starts[l] < 0 ? -1 : next[l];
            if (r < 0 || end(s, starts, next, r) - starts[l] != size) {
                continue; // stale: one of its symbols has merged since
            }
            next[l] = next[r];
            if (next[r] >= 0) {
                prev[next[r]] = l;
            }
            starts[r] = -1;
            if (prev[l] >= 0) {
                q.offer(s, starts, next, prev[l], pair);
            }
            q.offer(s, starts, next, l, pair);
        }
        int kept = 0;
        for (int i = 0; i >= 0 && i < count; i = next[i]) {
            starts[kept++] = starts[i];
        }
        return Arrays.copyOf(starts, kept);
    }

    private static int end(String s, int[] starts, int[] next, int i) {
        return next[i] >= 0 ? starts[next[i]] : s.length();
    }

    /** Pushes the pair of symbol {@code i} and its right neighbour, if they merge. */
    private void offer(String s, int[] starts, int[] next, int i, Pair pair) {
        int r = next[i];
        if (r < 0) {
            return;
        }
        int end = end(s, starts, next, r);
        double p = pair.priority(s, starts[i], starts[r], end);
        if (!Double.isNaN(p)) {
            push(p, i, end - starts[i]);
        }
    }

    private double[] prio;
    private int[] left, size;
    private int n;

    MergeQueue(int capacity) {
        int c = Math.max(16, capacity);
        prio = new double[c];
        left = new int[c];
        size = new int[c];
    }

    boolean isEmpty() {
        return n == 0;
    }

    void push(double p, int l, int s) {
        if (n == prio.length) {
            int c = n + (n >> 1);
            prio = Arrays.copyOf(prio, c);
            left = Arrays.copyOf(left, c);
            size = Arrays.copyOf(size, c);
        }
        int i = n++;
        while (i > 0) {
            int parent = (i - 1) >>> 1;
            if (!less(p, l, prio[parent], left[parent])) {
                break;
            }
            set(i, prio[parent], left[parent], size[parent]);
            i = parent;
        }
        set(i, p, l, s);
    }

    /** The left position of the best entry; {@link #topSize} gives its span. Call {@link #pop} after reading both. */
    int topLeft() {
        return left[0];
    }

    int topSize() {
        return size[0];
    }

    void pop() {
        n--;
        if (n == 0) {
            return;
        }
        double p = prio[n];
        int l = left[n], s = size[n];
        int i = 0;
        while (true) {
            int c = 2 * i + 1;
            if (c >= n) {
                break;
            }
            if (c + 1 < n && less(prio[c + 1], left[c + 1], prio[c], left[c])) {
                c++;
            }
            if (!less(prio[c], left[c], p, l)) {
                break;
            }
            set(i, prio[c], left[c], size[c]);
            i = c;
        }
        set(i, p, l, s);
    }

    private static boolean less(double p, int l, double q, int m) {
        return p < q || p == q && l < m;
    }

    private void set(int i, double p, int l, int s) {
        prio[i] = p;
        left[i] = l;
        size[i] = s;
    }
}

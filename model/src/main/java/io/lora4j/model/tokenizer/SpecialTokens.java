package io.lora4j.model.tokenizer;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeSet;
import java.util.function.Function;

/**
 * Literal special tokens in a text ({@code <|eot_id|>}, {@code </s>}, …): at each position the
 * longest one that starts there, found with one hash lookup per distinct special-token length, and
 * only at characters that begin one, so that splitting a text costs O(n · lengths), not
 * O(n · vocabulary).
 */
final class SpecialTokens {
    private final Map<String, Integer> ids;
    private final int[] lengths; // distinct lengths, longest first
    private final boolean[] first = new boolean[Character.MAX_VALUE + 1];

    SpecialTokens(Map<String, Integer> specials) {
        this.ids = new HashMap<>();
        TreeSet<Integer> lens = new TreeSet<>();
        for (Map.Entry<String, Integer> e : specials.entrySet()) {
            if (!e.getKey().isEmpty()) {
                ids.putIfAbsent(e.getKey(), e.getValue());
                lens.add(e.getKey().length());
                first[e.getKey().charAt(0)] = true;
            }
        }
        lengths = lens.descendingSet().stream().mapToInt(Integer::intValue).toArray();
    }

    /** The text's tokens: runs of plain text through {@code plain}, special tokens as their ids. */
    int[] encode(String text, Function<String, int[]> plain) {
        IntList out = new IntList(text.length() / 2 + 4);
        int start = 0;
        for (int i = 0; i < text.length(); ) {
            String s = first[text.charAt(i)] ? longestAt(text, i) : null;
            if (s == null) {
                i++;
                continue;
            }
            if (i > start) {
                out.addAll(plain.apply(text.substring(start, i)));
            }
            out.add(ids.get(s));
            i += s.length();
            start = i;
        }
        if (start < text.length()) {
            out.addAll(plain.apply(text.substring(start)));
        }
        return out.toArray();
    }

    private String longestAt(String text, int i) {
        for (int len : lengths) {
            if (i + len <= text.length()) {
                String s = text.substring(i, i + len);
                if (ids.containsKey(s)) {
                    return s;
                }
            }
        }
        return null;
    }

    /** A growable int array. */
    static final class IntList {
        private int[] a;
        private int n;

        IntList(int capacity) {
            a = new int[Math.max(8, capacity)];
        }

        void add(int x) {
            if (n == a.length) {
                a = Arrays.copyOf(a, n + (n >> 1) + 1);
            }
            a[n++] = x;
        }

        void addAll(int[] xs) {
            for (int x : xs) {
                add(x);
            }
        }

        int[] toArray() {
            return Arrays.copyOf(a, n);
        }
    }
}

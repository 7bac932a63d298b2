package io.lora4j.model.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.Set;

/**
 * SentencePiece BPE with byte fallback (Llama 2, stories260K), as llama.cpp's SPM tokenizer:
 * spaces become '▁', a '▁' is prefixed, the text is split into UTF-8 characters and the adjacent
 * pair whose merge is in the vocabulary with the highest score is merged repeatedly (leftmost on
 * ties); what is left outside the vocabulary becomes byte tokens {@code <0xXX>}.
 */
public final class SentencePieceTokenizer implements Tokenizer {
    public static final int NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;

    private final String[] pieces;
    private final float[] scores;
    private final int[] types;
    private final Map<String, Integer> ids = new HashMap<>();
    private final int[] byteIds = new int[256];
    private final byte[][] bytes;
    private final int bos, eos, unk;
    private final boolean addBos, addSpacePrefix;

    public SentencePieceTokenizer(String[] pieces, float[] scores, int[] types, int bos, int eos, int unk,
                                  boolean addBos, boolean addSpacePrefix) {
        this.pieces = pieces;
        this.scores = scores;
        this.types = types;
        this.bos = bos;
        this.eos = eos;
        this.unk = unk;
        this.addBos = addBos;
        this.addSpacePrefix = addSpacePrefix;
        java.util.Arrays.fill(byteIds, -1);
        bytes = new byte[pieces.length][];
        for (int i = 0; i < pieces.length; i++) {
            ids.putIfAbsent(pieces[i], i);
            String p = pieces[i];
            if (types[i] == BYTE && p.length() == 6 && p.startsWith("<0x") && p.endsWith(">")) {
                int b = Integer.parseInt(p.substring(3, 5), 16);
                byteIds[b] = i;
                bytes[i] = new byte[]{(byte) b};
            } else if (types[i] == CONTROL || types[i] == UNKNOWN || types[i] == UNUSED) {
                bytes[i] = new byte[0];
            } else {
                bytes[i] = p.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8);
            }
        }
    }

    @Override
    public int vocabSize() {
        return pieces.length;
    }

    @Override
    public int bos() {
        return bos;
    }

    @Override
    public int eos() {
        return eos;
    }

    @Override
    public boolean addBos() {
        return addBos;
    }

    @Override
    public Set<Integer> stopTokens() {
        return eos >= 0 ? Set.of(eos) : Set.of();
    }

    @Override
    public int[] encode(String text) {
        if (text.isEmpty()) {
            return new int[0];
        }
        String s = (addSpacePrefix ? " " + text : text).replace(' ', '\u2581');
        // symbols: a doubly linked list over code points
        int n = s.codePointCount(0, s.length());
        String[] sym = new String[n];
        int[] prev = new int[n], next = new int[n];
        for (int i = 0, off = 0; i < n; i++) {
            int cp = s.codePointAt(off);
            int len = Character.charCount(cp);
            sym[i] = s.substring(off, off + len);
            off += len;
            prev[i] = i - 1;
            next[i] = i + 1 < n ? i + 1 : -1;
        }
        record Bigram(int left, int right, float score, int size) {
        }
        PriorityQueue<Bigram> queue = new PriorityQueue<>((a, b) -> a.score != b.score
                ? Float.compare(b.score, a.score) : Integer.compare(a.left, b.left));
        java.util.function.BiConsumer<Integer, Integer> tryAdd = (l, r) -> {
            if (l < 0 || r < 0) {
                return;
            }
            String merged = sym[l] + sym[r];
            Integer id = ids.get(merged);
            if (id != null) {
                queue.add(new Bigram(l, r, scores[id], merged.length()));
            }
        };
        for (int i = 0; i + 1 < n; i++) {
            tryAdd.accept(i, i + 1);
        }
        while (!queue.isEmpty()) {
            Bigram b = queue.poll();
            if (sym[b.left] == null || sym[b.right] == null || next[b.left] != b.right
                    || sym[b.left].length() + sym[b.right].length() != b.size) {
                continue; // stale
            }
            sym[b.left] = sym[b.left] + sym[b.right];
            sym[b.right] = null;
            next[b.left] = next[b.right];
            if (next[b.right] >= 0) {
                prev[next[b.right]] = b.left;
            }
            tryAdd.accept(prev[b.left], b.left);
            tryAdd.accept(b.left, next[b.left]);
        }
        int[] out = new int[s.length() * 4 + 4];
        int k = 0;
        for (int i = 0; i >= 0 && i < n; i = next[i]) {
            Integer id = ids.get(sym[i]);
            if (id != null) {
                out[k++] = id;
            } else {
                for (byte b : sym[i].getBytes(StandardCharsets.UTF_8)) {
                    out[k++] = byteIds[b & 0xff] >= 0 ? byteIds[b & 0xff] : unk;
                }
            }
        }
        return java.util.Arrays.copyOf(out, k);
    }

    @Override
    public int[] encodeWithSpecial(String text) {
        // control pieces such as <s> and </s> written literally in the text
        java.util.List<Integer> out = new java.util.ArrayList<>();
        int start = 0;
        StringBuilder plain = new StringBuilder();
        outer:
        while (start < text.length()) {
            for (int i = 0; i < pieces.length; i++) {
                if ((types[i] == CONTROL || types[i] == USER_DEFINED) && !pieces[i].isEmpty() && text.startsWith(pieces[i], start)) {
                    if (!plain.isEmpty()) {
                        for (int id : encode(plain.toString())) {
                            out.add(id);
                        }
                        plain.setLength(0);
                    }
                    out.add(i);
                    start += pieces[i].length();
                    continue outer;
                }
            }
            plain.append(text.charAt(start++));
        }
        if (!plain.isEmpty()) {
            for (int id : encode(plain.toString())) {
                out.add(id);
            }
        }
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    @Override
    public byte[] tokenBytes(int id) {
        return bytes[id];
    }

    @Override
    public String decode(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int id : ids) {
            out.writeBytes(bytes[id]);
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    @Override
    public String tokenText(int id) {
        return pieces[id];
    }

    @Override
    public int tokenId(String piece) {
        return ids.getOrDefault(piece, -1);
    }
}

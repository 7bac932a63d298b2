package io.lora4j.model.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.HashMap;
import java.util.Map;
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
    private final int maxPieceLength;
    private final SpecialTokens specials;

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
        int longest = 0;
        Map<String, Integer> special = new java.util.LinkedHashMap<>();
        for (int i = 0; i < pieces.length; i++) {
            longest = Math.max(longest, pieces[i].length());
            if (types[i] == CONTROL || types[i] == USER_DEFINED) {
                special.putIfAbsent(pieces[i], i);
            }
            ids.putIfAbsent(pieces[i], i);
            String p = pieces[i];
            if (types[i] == BYTE && p.length() == 6 && p.startsWith("<0x") && p.endsWith(">")
                    && Character.digit(p.charAt(3), 16) >= 0 && Character.digit(p.charAt(4), 16) >= 0) {
                int b = Character.digit(p.charAt(3), 16) * 16 + Character.digit(p.charAt(4), 16);
                byteIds[b] = i;
                bytes[i] = new byte[]{(byte) b};
            } else if (types[i] == CONTROL || types[i] == UNKNOWN || types[i] == UNUSED) {
                bytes[i] = new byte[0];
            } else {
                bytes[i] = p.replace('\u2581', ' ').getBytes(StandardCharsets.UTF_8);
            }
        }
        maxPieceLength = longest;
        specials = new SpecialTokens(special);
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
        // one symbol per code point, merged best score first (MergeQueue): O(n log n)
        int[] starts = new int[s.codePointCount(0, s.length())];
        for (int i = 0, off = 0; i < starts.length; i++) {
            starts[i] = off;
            off += Character.charCount(s.codePointAt(off));
        }
        int[] symbols = MergeQueue.mergeAll(s, starts, starts.length, (str, from, mid, to) -> {
            if (to - from > maxPieceLength) {
                return Double.NaN;
            }
            Integer id = ids.get(str.substring(from, to));
            return id == null ? Double.NaN : -scores[id];
        });
        SpecialTokens.IntList out = new SpecialTokens.IntList(symbols.length);
        for (int i = 0; i < symbols.length; i++) {
            String sym = s.substring(symbols[i], i + 1 < symbols.length ? symbols[i + 1] : s.length());
            Integer id = ids.get(sym);
            if (id != null) {
                out.add(id);
            } else {
                for (byte b : sym.getBytes(StandardCharsets.UTF_8)) {
                    out.add(byteIds[b & 0xff] >= 0 ? byteIds[b & 0xff] : unk);
                }
            }
        }
        return out.toArray();
    }

    @Override
    public int[] encodeWithSpecial(String text) {
        return specials.encode(text, this::encode); // control and user-defined pieces such as <s> written literally
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

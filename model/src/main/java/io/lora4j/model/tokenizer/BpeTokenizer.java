package io.lora4j.model.tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Byte-level BPE (Llama 3's tiktoken, GPT-2 style Hugging Face {@code tokenizer.json}, GGUF
 * {@code gpt2} vocabularies). Text is cut into pre-tokens by a regular expression; each pre-token's
 * UTF-8 bytes are merged pairwise, lowest rank first. Tokens are held as Latin-1 strings of their
 * raw bytes (one char per byte), so byte sequences work as map keys.
 * <p>
 * Ranks: tiktoken ranks a pair by the rank of the merged token ({@code mergeRanks == null}); a
 * merges list ranks pairs by their line. With {@code ignoreMerges} (tiktoken, and
 * {@code tokenizer.json}'s {@code ignore_merges}) a pre-token that is itself a token is emitted whole.
 */
public final class BpeTokenizer implements Tokenizer {
    /** Llama 3's pre-tokenizer. */
    public static final String LLAMA3_SPLIT = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"
            + "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    /** GPT-2's pre-tokenizer (Hugging Face ByteLevel with use_regex). */
    public static final String GPT2_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
    private static final char SEP = '\u0100'; // not a Latin-1 char: separates the two halves of a pair key

    private final String[] tokens;          // id → raw bytes as Latin-1
    private final Map<String, Integer> ids;
    private final Map<String, Integer> mergeRanks; // "left SEP right" → rank, or null for tiktoken ranks
    private final boolean ignoreMerges;
    private final Pattern split;
    private final boolean individualDigits;
    private final Map<String, Integer> specials;   // text → id, matched by encodeWithSpecial
    private final SpecialTokens specialTokens;
    private final Set<Integer> specialIds;
    private final int bos, eos;
    private final boolean addBos;
    private final Set<Integer> stops;

    BpeTokenizer(String[] tokens, Map<String, Integer> mergeRanks, boolean ignoreMerges, String splitRegex,
                 boolean individualDigits, Map<String, Integer> specials, int bos, int eos, boolean addBos, Set<Integer> stops) {
        this.tokens = tokens;
        this.ids = new HashMap<>(tokens.length * 2);
        for (int i = 0; i < tokens.length; i++) {
            if (tokens[i] != null) {
                ids.putIfAbsent(tokens[i], i);
            }
        }
        this.mergeRanks = mergeRanks;
        this.ignoreMerges = ignoreMerges;
        this.split = Pattern.compile(splitRegex, Pattern.UNICODE_CHARACTER_CLASS);
        this.individualDigits = individualDigits;
        this.specials = specials;
        this.specialTokens = new SpecialTokens(specials);
        this.specialIds = new java.util.HashSet<>(specials.values());
        this.bos = bos;
        this.eos = eos;
        this.addBos = addBos;
        this.stops = stops;
    }

    // ---- the GPT-2 byte ↔ unicode table of Hugging Face's ByteLevel ----

    private static final char[] BYTE_TO_CHAR = new char[256];
    private static final Map<Character, Integer> CHAR_TO_BYTE = new HashMap<>();

    static {
        int n = 0;
        for (int b = 0; b < 256; b++) {
            boolean printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            BYTE_TO_CHAR[b] = printable ? (char) b : (char) (256 + n++);
            CHAR_TO_BYTE.put(BYTE_TO_CHAR[b], b);
        }
    }

    /** A ByteLevel-mapped token string back to its raw bytes as Latin-1, or null if it is not byte-level text. */
    static String unmapByteLevel(String s) {
        StringBuilder sb = new StringBuilder(s.length());
        for (int i = 0; i < s.length(); i++) {
            Integer b = CHAR_TO_BYTE.get(s.charAt(i));
            if (b == null) {
                return null;
            }
            sb.append((char) (int) b);
        }
        return sb.toString();
    }

    static String latin1(byte[] b) {
        return new String(b, StandardCharsets.ISO_8859_1);
    }

    @Override
    public int vocabSize() {
        return tokens.length;
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
        return stops;
    }

    @Override
    public int[] encode(String text) {
        List<Integer> out = new ArrayList<>();
        encodeInto(text, out);
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    private void encodeInto(String text, List<Integer> out) {
        if (individualDigits) {
            int start = 0;
            for (int i = 0; i < text.length(); i++) {
                if (Character.isDigit(text.charAt(i))) {
                    splitInto(text.substring(start, i), out);
                    splitInto(text.substring(i, i + 1), out);
                    start = i + 1;
                }
            }
            splitInto(text.substring(start), out);
        } else {
            splitInto(text, out);
        }
    }

    private void splitInto(String text, List<Integer> out) {
        Matcher m = split.matcher(text);
        while (m.find()) {
            bpe(latin1(m.group().getBytes(StandardCharsets.UTF_8)), out);
        }
    }

    /** Merges one pre-token's bytes (lowest rank first, leftmost on ties: {@link MergeQueue}) and appends the ids. */
    private void bpe(String piece, List<Integer> out) {
        if (piece.isEmpty()) {
            return;
        }
        if (ignoreMerges) {
            Integer whole = ids.get(piece);
            if (whole != null) {
                out.add(whole);
                return;
            }
        }
        int[] starts = new int[piece.length()];
        for (int i = 0; i < starts.length; i++) {
            starts[i] = i;
        }
        int[] parts = MergeQueue.mergeAll(piece, starts, starts.length, (s, from, mid, to) -> {
            Integer r = mergeRanks == null ? ids.get(s.substring(from, to)) : mergeRanks.get(s.substring(from, mid) + SEP + s.substring(mid, to));
            return r == null ? Double.NaN : r;
        });
        for (int k = 0; k < parts.length; k++) {
            String p = piece.substring(parts[k], k + 1 < parts.length ? parts[k + 1] : piece.length());
            Integer id = ids.get(p);
            if (id != null) {
                out.add(id);
            } else {
                for (int i = 0; i < p.length(); i++) { // every single byte is a token in a byte-level vocabulary
                    Integer b = ids.get(p.substring(i, i + 1));
                    if (b == null) {
                        throw new TokenizerException(String.format("the text has the byte 0x%02x, for which this byte-level "
                                + "vocabulary has no token", (int) p.charAt(i)));
                    }
                    out.add(b);
                }
            }
        }
    }

    static String pairKey(String a, String b) {
        return a + SEP + b;
    }

    @Override
    public int[] encodeWithSpecial(String text) {
        return specialTokens.encode(text, this::encode);
    }

    @Override
    public byte[] tokenBytes(int id) {
        if (specialIds.contains(id) || tokens[id] == null) {
            return new byte[0];
        }
        return tokens[id].getBytes(StandardCharsets.ISO_8859_1);
    }

    @Override
    public String decode(int[] ids) {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        for (int id : ids) {
            out.writeBytes(tokenBytes(id));
        }
        return out.toString(StandardCharsets.UTF_8);
    }

    @Override
    public String tokenText(int id) {
        for (Map.Entry<String, Integer> e : specials.entrySet()) {
            if (e.getValue() == id) {
                return e.getKey();
            }
        }
        return tokens[id] == null ? "" : new String(tokens[id].getBytes(StandardCharsets.ISO_8859_1), StandardCharsets.UTF_8);
    }

    @Override
    public int tokenId(String piece) {
        Integer s = specials.get(piece);
        if (s != null) {
            return s;
        }
        Integer id = ids.get(latin1(piece.getBytes(StandardCharsets.UTF_8)));
        return id == null ? -1 : id;
    }

    /** Llama 3's 256 special tokens from id 128000, named as in Meta's tokenizer (3.1 names). */
    static Map<String, Integer> llama3Specials(int first) {
        Map<String, Integer> m = new java.util.LinkedHashMap<>();
        String[] named = {"<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
                "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
                "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
        for (int i = 0; i < named.length; i++) {
            m.put(named[i], first + i);
        }
        for (int i = named.length; i < 256; i++) {
            m.put("<|reserved_special_token_" + (i - named.length + 3) + "|>", first + i);
        }
        return m;
    }

    static Set<Integer> stops(Integer... ids) {
        Set<Integer> s = new LinkedHashSet<>();
        for (Integer i : ids) {
            if (i != null && i >= 0) {
                s.add(i);
            }
        }
        return s;
    }
}

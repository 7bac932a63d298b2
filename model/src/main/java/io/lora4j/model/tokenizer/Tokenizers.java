package io.lora4j.model.tokenizer;

import io.lora4j.model.format.ModelFormatException;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/** Tokenizer factories. */
public final class Tokenizers {
    private Tokenizers() {
    }

    /** The tokenizer stored in a GGUF's {@code tokenizer.ggml.*} metadata: "llama" (SentencePiece) or "gpt2" (byte-level BPE). */
    public static Tokenizer fromGgufMetadata(Map<String, Object> md, Path file) {
        Object model = md.get("tokenizer.ggml.model");
        if (!(md.get("tokenizer.ggml.tokens") instanceof String[] tokens)) {
            throw new ModelFormatException(file, "missing metadata key tokenizer.ggml.tokens");
        }
        int[] types = md.get("tokenizer.ggml.token_type") instanceof int[] t ? t : new int[tokens.length];
        if (types.length != tokens.length) {
            throw new ModelFormatException(file, "tokenizer arrays disagree: " + tokens.length + " tokens, " + types.length + " types");
        }
        if (tokens.length == 0) {
            throw new ModelFormatException(file, "metadata key tokenizer.ggml.tokens is empty");
        }
        int bos = id(md, "tokenizer.ggml.bos_token_id", 1, tokens.length);
        int eos = id(md, "tokenizer.ggml.eos_token_id", 2, tokens.length);
        if ("llama".equals(model)) {
            float[] scores = md.get("tokenizer.ggml.scores") instanceof float[] f ? f : new float[tokens.length];
            if (scores.length != tokens.length) {
                throw new ModelFormatException(file, "tokenizer arrays disagree: " + tokens.length + " tokens, " + scores.length + " scores");
            }
            int unk = id(md, "tokenizer.ggml.unknown_token_id", 0, tokens.length);
            if (unk < 0) {
                throw new ModelFormatException(file, "metadata key tokenizer.ggml.unknown_token_id is not a token of the "
                        + tokens.length + "-token vocabulary");
            }
            boolean addBos = !(md.get("tokenizer.ggml.add_bos_token") instanceof Boolean b) || b;
            boolean prefix = !(md.get("tokenizer.ggml.add_space_prefix") instanceof Boolean p) || p;
            return new SentencePieceTokenizer(tokens, scores, types, bos, eos, unk, addBos, prefix);
        }
        if ("gpt2".equals(model)) {
            if (!(md.get("tokenizer.ggml.merges") instanceof String[] merges)) {
                throw new ModelFormatException(file, "missing metadata key tokenizer.ggml.merges");
            }
            String[] raw = new String[tokens.length];
            Map<String, Integer> specials = new LinkedHashMap<>();
            for (int i = 0; i < tokens.length; i++) {
                if (types[i] == SentencePieceTokenizer.CONTROL || types[i] == SentencePieceTokenizer.USER_DEFINED) {
                    specials.put(tokens[i], i);
                } else {
                    raw[i] = BpeTokenizer.unmapByteLevel(tokens[i]);
                }
            }
            Map<String, Integer> ranks = mergeRanks(file, List.of(merges));
            String pre = md.get("tokenizer.ggml.pre") instanceof String p ? p : "default";
            boolean llama3 = pre.equals("llama-bpe") || pre.equals("llama3");
            boolean addBos = md.get("tokenizer.ggml.add_bos_token") instanceof Boolean b ? b : llama3;
            Integer eot = specials.get("<|eot_id|>");
            return new BpeTokenizer(raw, ranks, llama3, llama3 ? BpeTokenizer.LLAMA3_SPLIT : BpeTokenizer.GPT2_SPLIT,
                    pre.equals("smollm"), specials, bos, eos, addBos, BpeTokenizer.stops(eos, eot));
        }
        throw new ModelFormatException(file, "tokenizer model '" + model + "' is not supported (llama, gpt2)");
    }

    private static Map<String, Integer> mergeRanks(Path file, List<String> merges) {
        Map<String, Integer> ranks = new HashMap<>(merges.size() * 2);
        for (int i = 0; i < merges.size(); i++) {
            String m = merges.get(i);
            int sp = m.indexOf(' ', 1);
            if (sp < 0) {
                throw new ModelFormatException(file, "merge " + i + " is not 'left right': " + m);
            }
            String a = BpeTokenizer.unmapByteLevel(m.substring(0, sp));
            String b = BpeTokenizer.unmapByteLevel(m.substring(sp + 1));
            if (a == null || b == null) {
                throw new ModelFormatException(file, "merge " + i + " is not byte-level text: " + m);
            }
            ranks.putIfAbsent(BpeTokenizer.pairKey(a, b), i);
        }
        return ranks;
    }

    /** A SentencePiece {@code tokenizer.model} (protobuf). */
    public static Tokenizer fromSentencePieceModel(Path file) {
        return fromSentencePieceModel(file, read(file));
    }

    /** A SentencePiece model from its bytes; {@code file} names it in errors. */
    public static Tokenizer fromSentencePieceModel(Path file, byte[] data) {
        SentencePieceModelFile m = SentencePieceModelFile.parse(file, data);
        int n = m.pieces.size();
        String[] pieces = m.pieces.toArray(new String[0]);
        float[] scores = new float[n];
        int[] types = new int[n];
        for (int i = 0; i < n; i++) {
            scores[i] = m.scores.get(i);
            types[i] = m.types.get(i);
        }
        if (m.unk < 0 || m.unk >= n) {
            throw new ModelFormatException(file, "trainer_spec.unk_id " + m.unk + " is not one of the " + n + " pieces");
        }
        return new SentencePieceTokenizer(pieces, scores, types, m.bos >= 0 && m.bos < n ? m.bos : -1,
                m.eos >= 0 && m.eos < n ? m.eos : -1, m.unk, true, m.addDummyPrefix);
    }

    /**
     * A tiktoken file ({@code <base64 token> <rank>} per line). A 128000-rank file is Llama 3's: its
     * 256 special tokens are added from id 128000 (they are not in the file).
     */
    public static Tokenizer fromTiktoken(Path file) {
        return fromTiktoken(file, read(file));
    }

    /** A tiktoken file from its bytes; {@code file} names it in errors. */
    public static Tokenizer fromTiktoken(Path file, byte[] data) {
        String text = new String(data, StandardCharsets.UTF_8);
        String[] lines = text.split("\\r?\\n");
        List<String> toks = new ArrayList<>();
        for (int ln = 0; ln < lines.length; ln++) {
            String line = lines[ln].strip();
            if (line.isEmpty()) {
                continue;
            }
            int sp = line.indexOf(' ');
            byte[] bytes;
            int rank;
            try {
                bytes = Base64.getDecoder().decode(line.substring(0, sp < 0 ? line.length() : sp));
                rank = Integer.parseInt(line.substring(sp + 1).strip());
            } catch (IllegalArgumentException | StringIndexOutOfBoundsException e) {
                throw new ModelFormatException(file, "line " + (ln + 1) + " is not '<base64> <rank>'");
            }
            if (rank != toks.size()) {
                throw new ModelFormatException(file, "line " + (ln + 1) + ": rank " + rank + " out of order (expected " + toks.size() + ")");
            }
            toks.add(BpeTokenizer.latin1(bytes));
        }
        int n = toks.size();
        Map<String, Integer> specials = BpeTokenizer.llama3Specials(n);
        String[] tokens = new String[n + specials.size()];
        for (int i = 0; i < n; i++) {
            tokens[i] = toks.get(i);
        }
        int bos = specials.get("<|begin_of_text|>");
        int eos = specials.get("<|end_of_text|>");
        return new BpeTokenizer(tokens, null, true, BpeTokenizer.LLAMA3_SPLIT, false, specials, bos, eos, true,
                BpeTokenizer.stops(eos, specials.get("<|eot_id|>"), specials.get("<|eom_id|>")));
    }

    /** A Hugging Face {@code tokenizer.json} with a byte-level BPE model (and tokenizer_config.json beside it, if any). */
    public static Tokenizer fromHfTokenizerJson(Path file) {
        Path cfgFile = file.resolveSibling("tokenizer_config.json");
        return fromHfTokenizerJson(file, read(file), Files.isRegularFile(cfgFile) ? read(cfgFile) : null, cfgFile);
    }

    /** A tokenizer.json from its bytes and those of tokenizer_config.json (null if none); {@code file} names both in errors. */
    public static Tokenizer fromHfTokenizerJson(Path file, byte[] data, byte[] config) {
        return fromHfTokenizerJson(file, data, config, null);
    }

    /** {@code cfgFile}: where the config was read from, for its errors; null when it came with {@code file}. */
    private static Tokenizer fromHfTokenizerJson(Path file, byte[] data, byte[] config, Path cfgFile) {
        JsonNode root;
        try {
            root = new ObjectMapper().readTree(data);
        } catch (IOException e) {
            throw new ModelFormatException(file, "invalid JSON: " + e.getMessage());
        }
        JsonNode model = root.path("model");
        if (!"BPE".equals(model.path("type").asText()) || !model.path("vocab").isObject()) {
            throw new ModelFormatException(file, "only byte-level BPE tokenizer.json files are supported (model.type "
                    + model.path("type").asText("missing") + ")");
        }
        // ids are dense from 0: any id beyond the number of entries would only allocate
        int entries = model.path("vocab").size() + root.path("added_tokens").size();
        int size = 0;
        for (var it = model.path("vocab").fields(); it.hasNext(); ) {
            size = Math.max(size, tokenId(file, it.next().getValue(), entries, "model.vocab") + 1);
        }
        Map<String, Integer> specials = new LinkedHashMap<>();
        for (JsonNode t : root.path("added_tokens")) {
            if (!t.path("content").isTextual()) {
                throw new ModelFormatException(file, "added_tokens: an entry has no content string: " + t);
            }
            int id = tokenId(file, t.path("id"), entries, "added_tokens " + t.path("content").asText());
            specials.put(t.path("content").asText(), id);
            size = Math.max(size, id + 1);
        }
        String[] tokens = new String[size];
        for (var it = model.path("vocab").fields(); it.hasNext(); ) {
            var e = it.next();
            if (!specials.containsKey(e.getKey())) {
                tokens[e.getValue().asInt()] = BpeTokenizer.unmapByteLevel(e.getKey());
            }
        }
        List<String> merges = new ArrayList<>();
        for (JsonNode m : model.path("merges")) {
            if (m.isArray() && m.size() == 2 && m.get(0).isTextual() && m.get(1).isTextual()) {
                merges.add(m.get(0).asText() + " " + m.get(1).asText());
            } else if (m.isTextual()) {
                merges.add(m.asText());
            } else {
                throw new ModelFormatException(file, "model.merges: " + m + " is neither \"left right\" nor [left, right]");
            }
        }
        String regex = BpeTokenizer.GPT2_SPLIT;
        boolean digits = false;
        List<JsonNode> pres = new ArrayList<>();
        JsonNode pre = root.path("pre_tokenizer");
        if ("Sequence".equals(pre.path("type").asText())) {
            pre.path("pretokenizers").forEach(pres::add);
        } else {
            pres.add(pre);
        }
        for (JsonNode p : pres) {
            switch (p.path("type").asText()) {
                case "Digits" -> digits = p.path("individual_digits").asBoolean(false);
                case "Split" -> regex = p.path("pattern").path("Regex").asText(regex);
                case "ByteLevel" -> {
                    if (!p.path("use_regex").asBoolean(true) && pres.stream().noneMatch(q -> "Split".equals(q.path("type").asText()))) {
                        regex = "(?s).+";
                    }
                }
                default -> {
                }
            }
        }
        int bos = -1, eos = -1;
        boolean addBos = false;
        if (config != null) {
            try {
                JsonNode cfg = new ObjectMapper().readTree(config);
                bos = specials.getOrDefault(tokenName(cfg.path("bos_token")), -1);
                eos = specials.getOrDefault(tokenName(cfg.path("eos_token")), -1);
                addBos = cfg.path("add_bos_token").asBoolean(false);
            } catch (IOException e) {
                throw cfgFile != null ? new ModelFormatException(cfgFile, "invalid JSON: " + e.getMessage())
                        : new ModelFormatException(file, "tokenizer_config.json: invalid JSON: " + e.getMessage());
            }
        }
        try {
            io.lora4j.model.format.Regexes.compile("the pre_tokenizer's Split regex", regex, java.util.regex.Pattern.UNICODE_CHARACTER_CLASS);
        } catch (IllegalArgumentException e) {
            throw new ModelFormatException(file, e.getMessage());
        }
        Map<String, Integer> ranks = mergeRanks(file, merges);
        return new BpeTokenizer(tokens, ranks, model.path("ignore_merges").asBoolean(false), regex,
                digits, specials, bos, eos, addBos && bos >= 0,
                BpeTokenizer.stops(eos, specials.get("<|eot_id|>"), specials.get("<|im_end|>"), specials.get("<|endoftext|>")));
    }

    /** A tokenizer.json token id: an integer in [0, entries). */
    private static int tokenId(Path file, JsonNode id, int entries, String where) {
        if (!id.canConvertToInt() || !id.isIntegralNumber() || id.asInt() < 0 || id.asInt() >= entries) {
            throw new ModelFormatException(file, where + ": token id " + id + " is not in [0, " + entries + ")");
        }
        return id.asInt();
    }

    private static String tokenName(JsonNode n) {
        return n.isTextual() ? n.asText() : n.path("content").asText("");
    }

    private static int id(Map<String, Object> md, String key, int dflt, int n) {
        Object v = md.get(key);
        if (v instanceof Long l && l >= 0 && l < n) {
            return (int) (long) l;
        }
        return v == null ? dflt : -1;
    }

    /** A llama2.c tokenizer.bin: int32 max length, then {f32 score, int32 len, bytes} per token. */
    public static Tokenizer fromLlama2cBin(Path file) {
        return fromLlama2cBin(file, read(file));
    }

    /** A llama2.c tokenizer from its bytes; {@code file} names it in errors. */
    public static Tokenizer fromLlama2cBin(Path file, byte[] all) {
        ByteBuffer b = ByteBuffer.wrap(all).order(ByteOrder.LITTLE_ENDIAN);
        if (b.remaining() < 4) {
            throw new ModelFormatException(file, "truncated llama2.c tokenizer");
        }
        b.getInt();
        List<String> pieces = new ArrayList<>();
        List<Float> scores = new ArrayList<>();
        while (b.hasRemaining()) {
            if (b.remaining() < 8) {
                throw new ModelFormatException(file, "truncated llama2.c tokenizer at token " + pieces.size());
            }
            float score = b.getFloat();
            int len = b.getInt();
            if (len < 0 || len > b.remaining()) {
                throw new ModelFormatException(file, "token " + pieces.size() + " has a bad length " + len);
            }
            byte[] s = new byte[len];
            b.get(s);
            pieces.add(new String(s, StandardCharsets.UTF_8));
            scores.add(score);
        }
        int n = pieces.size();
        if (n < 3) {
            throw new ModelFormatException(file, "a llama2.c tokenizer has at least 3 tokens (<unk>, <s>, </s>), this one " + n);
        }
        String[] p = new String[n];
        float[] sc = new float[n];
        int[] types = new int[n];
        for (int i = 0; i < n; i++) {
            String s = pieces.get(i);
            sc[i] = scores.get(i);
            if (i == 0) {
                types[i] = SentencePieceTokenizer.UNKNOWN;
                p[i] = "<unk>";
            } else if (i == 1 || i == 2) {
                types[i] = SentencePieceTokenizer.CONTROL;
                p[i] = i == 1 ? "<s>" : "</s>";
            } else if (s.length() == 6 && s.startsWith("<0x") && s.endsWith(">")) {
                types[i] = SentencePieceTokenizer.BYTE;
                p[i] = s;
            } else {
                types[i] = SentencePieceTokenizer.NORMAL;
                p[i] = s.replace(' ', '\u2581');
            }
        }
        return new SentencePieceTokenizer(p, sc, types, 1, 2, 0, true, true);
    }

    /**
     * Picks the reader by file name and content: {@code *.json} (Hugging Face), {@code *.bin}
     * (llama2.c), {@code *.gguf} (its metadata), a {@code *.model} that is text (tiktoken) or
     * protobuf (SentencePiece).
     */
    public static Tokenizer load(Path file) {
        String name = file.getFileName().toString();
        if (name.endsWith(".json")) {
            return fromHfTokenizerJson(file);
        }
        if (name.endsWith(".gguf")) {
            try (var g = io.lora4j.model.format.GgufFile.open(file)) {
                return fromGgufMetadata(g.metadata(), file);
            }
        }
        return fromBytes(file, name, read(file), null);
    }

    /**
     * A tokenizer file's contents, read as {@link #load} reads a file called {@code name}
     * ({@code config}: the bytes of tokenizer_config.json for a tokenizer.json, or null); for
     * tokenizers carried inside another file, e.g. an Arrow model. {@code origin} names it in errors.
     */
    public static Tokenizer fromBytes(Path origin, String name, byte[] data, byte[] config) {
        if (name.endsWith(".json")) {
            return fromHfTokenizerJson(origin, data, config);
        }
        if (name.endsWith(".bin")) {
            return fromLlama2cBin(origin, data);
        }
        byte[] head = data;
        int n = Math.min(head.length, 64);
        boolean text = n > 0;
        for (int i = 0; i < n; i++) {
            int c = head[i] & 0xff;
            text &= c == '\n' || c == '\r' || (c >= 0x20 && c < 0x7f);
        }
        return text ? fromTiktoken(origin, data) : fromSentencePieceModel(origin, data);
    }

    private static byte[] read(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file, "no such file");
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage());
        }
    }
}

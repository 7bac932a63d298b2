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
import java.util.List;
import java.util.Map;

/** Tokenizer factories. */
public final class Tokenizers {
    private Tokenizers() {
    }

    public static Tokenizer fromGgufMetadata(Map<String, Object> md, Path file) {
        Object model = md.get("tokenizer.ggml.model");
        if (!"llama".equals(model)) {
            throw new ModelFormatException(file, "tokenizer model '" + model + "' is not supported here");
        }
        if (!(md.get("tokenizer.ggml.tokens") instanceof String[] tokens)) {
            throw new ModelFormatException(file, "missing metadata key tokenizer.ggml.tokens");
        }
        float[] scores = md.get("tokenizer.ggml.scores") instanceof float[] f ? f : new float[tokens.length];
        int[] types = md.get("tokenizer.ggml.token_type") instanceof int[] t ? t : new int[tokens.length];
        if (scores.length != tokens.length || types.length != tokens.length) {
            throw new ModelFormatException(file, "tokenizer arrays disagree: " + tokens.length + " tokens, "
                    + scores.length + " scores, " + types.length + " types");
        }
        int bos = id(md, "tokenizer.ggml.bos_token_id", 1, tokens.length);
        int eos = id(md, "tokenizer.ggml.eos_token_id", 2, tokens.length);
        int unk = id(md, "tokenizer.ggml.unknown_token_id", 0, tokens.length);
        boolean addBos = !(md.get("tokenizer.ggml.add_bos_token") instanceof Boolean b) || b;
        boolean prefix = !(md.get("tokenizer.ggml.add_space_prefix") instanceof Boolean p) || p;
        return new SentencePieceTokenizer(tokens, scores, types, bos, eos, unk, addBos, prefix);
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
        byte[] all = read(file);
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

    /** Picks the reader by file name. */
    public static Tokenizer load(Path file) {
        String name = file.getFileName().toString();
        if (name.endsWith(".bin")) {
            return fromLlama2cBin(file);
        }
        throw new ModelFormatException(file, "unsupported tokenizer file (expected tokenizer.bin, tokenizer.model or tokenizer.json)");
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

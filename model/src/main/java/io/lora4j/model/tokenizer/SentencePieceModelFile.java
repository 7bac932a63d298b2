package io.lora4j.model.tokenizer;

import io.lora4j.model.format.ModelFormatException;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * A SentencePiece {@code tokenizer.model}: a protobuf {@code ModelProto} read with a minimal
 * wire-format parser. Used fields: 1 pieces {1 piece, 2 score, 3 type}, 2 trainer_spec
 * {40 unk_id, 41 bos_id, 42 eos_id}, 3 normalizer_spec {3 add_dummy_prefix, 4 remove_extra_whitespaces}.
 */
final class SentencePieceModelFile {
    final List<String> pieces = new ArrayList<>();
    final List<Float> scores = new ArrayList<>();
    final List<Integer> types = new ArrayList<>();
    int unk = 0, bos = 1, eos = 2;
    boolean addDummyPrefix = true;
    boolean removeExtraWhitespaces = true;

    private final Path file;
    private final byte[] b;

    private SentencePieceModelFile(Path file, byte[] bytes) {
        this.file = file;
        this.b = bytes;
    }

    static SentencePieceModelFile parse(Path file, byte[] bytes) {
        SentencePieceModelFile m = new SentencePieceModelFile(file, bytes);
        m.model(0, bytes.length);
        if (m.pieces.isEmpty()) {
            throw new ModelFormatException(file, "no pieces: not a SentencePiece model");
        }
        return m;
    }

    private ModelFormatException corrupt(int at) {
        return new ModelFormatException(file, "corrupt or truncated SentencePiece protobuf at byte " + at);
    }

    /** A varint at pos[0], advancing it. */
    private long varint(int[] pos, int end) {
        long v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            if (pos[0] >= end) {
                throw corrupt(pos[0]);
            }
            int x = b[pos[0]++] & 0xff;
            v |= (long) (x & 0x7f) << shift;
            if (x < 0x80) {
                return v;
            }
        }
        throw corrupt(pos[0]);
    }

    /** Calls back for every field of the message in [from, to): (field, wire type, value or offset, length). */
    private interface Field {
        void on(int field, int wire, long value, int off, int len);
    }

    private void fields(int from, int to, Field f) {
        int[] pos = {from};
        while (pos[0] < to) {
            int start = pos[0];
            long key = varint(pos, to);
            int field = (int) (key >>> 3);
            int wire = (int) (key & 7);
            switch (wire) {
                case 0 -> f.on(field, 0, varint(pos, to), 0, 0);
                case 1 -> {
                    if (pos[0] + 8 > to) {
                        throw corrupt(start);
                    }
                    pos[0] += 8;
                }
                case 2 -> {
                    long len = varint(pos, to);
                    if (len < 0 || len > to - pos[0]) {
                        throw corrupt(start);
                    }
                    f.on(field, 2, 0, pos[0], (int) len);
                    pos[0] += (int) len;
                }
                case 5 -> {
                    if (pos[0] + 4 > to) {
                        throw corrupt(start);
                    }
                    int p = pos[0];
                    int bits = (b[p] & 0xff) | (b[p + 1] & 0xff) << 8 | (b[p + 2] & 0xff) << 16 | (b[p + 3] & 0xff) << 24;
                    f.on(field, 5, bits & 0xffffffffL, 0, 0);
                    pos[0] += 4;
                }
                default -> throw corrupt(start);
            }
        }
    }

    private void model(int from, int to) {
        fields(from, to, (field, wire, value, off, len) -> {
            if (field == 1 && wire == 2) {
                piece(off, off + len);
            } else if (field == 2 && wire == 2) {
                fields(off, off + len, (f2, w2, v2, o2, l2) -> {
                    if (w2 == 0 && f2 == 40) {
                        unk = (int) v2;
                    } else if (w2 == 0 && f2 == 41) {
                        bos = (int) v2;
                    } else if (w2 == 0 && f2 == 42) {
                        eos = (int) v2;
                    }
                });
            } else if (field == 3 && wire == 2) {
                fields(off, off + len, (f3, w3, v3, o3, l3) -> {
                    if (w3 == 0 && f3 == 3) {
                        addDummyPrefix = v3 != 0;
                    } else if (w3 == 0 && f3 == 4) {
                        removeExtraWhitespaces = v3 != 0;
                    }
                });
            }
        });
    }

    private void piece(int from, int to) {
        String[] text = {null};
        float[] score = {0f};
        int[] type = {1};
        fields(from, to, (field, wire, value, off, len) -> {
            if (field == 1 && wire == 2) {
                text[0] = new String(b, off, len, StandardCharsets.UTF_8);
            } else if (field == 2 && wire == 5) {
                score[0] = Float.intBitsToFloat((int) value);
            } else if (field == 3 && wire == 0) {
                type[0] = (int) value;
            }
        });
        if (text[0] == null) {
            throw new ModelFormatException(file, "piece " + pieces.size() + " has no text");
        }
        pieces.add(text[0]);
        scores.add(score[0]);
        types.add(type[0]);
    }
}

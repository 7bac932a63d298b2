package io.lora4j.model.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.tokenizer.ChatTemplate;
import io.lora4j.model.tokenizer.Tokenizer;

import java.io.IOException;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.SplittableRandom;
import java.util.function.Supplier;

/**
 * Training data from files, as sequences of at most {@code seqLen} positions:
 * <ul>
 *   <li>plain text: documents separated by blank lines, each {@code BOS doc EOS}, concatenated and
 *       packed into windows (every position has a target);</li>
 *   <li>JSONL {@code {"text": …}}: documents, packed the same way;</li>
 *   <li>JSONL {@code {"prompt": …, "completion": …}}: one sequence each, loss on the completion only;</li>
 *   <li>JSONL {@code {"messages": [{"role","content"}…]}}: the chat template, loss on assistant turns only;</li>
 *   <li>Arrow IPC files or streams (e.g. Hugging Face {@code datasets} cache files) with the same
 *       fields as columns ({@code messages}: list&lt;struct&lt;role, content&gt;&gt;), see {@link ArrowTables}.</li>
 * </ul>
 * Records longer than a window are truncated (counted in {@link Loaded#truncated}).
 */
public final class Datasets {
    private Datasets() {
    }

    /** Examples and how many records had to be cut to fit. */
    public record Loaded(List<Example> examples, int truncated, int records) {
    }

    /** Train and held-out examples. */
    public record Split(List<Example> train, List<Example> eval) {
    }

    public static Loaded load(Path file, Tokenizer tok, int seqLen) {
        if (ArrowTables.isArrow(file)) {
            Records r = new Records(tok, seqLen);
            ArrowTables.read(file, r::add);
            return r.finish(file);
        }
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (java.nio.file.NoSuchFileException e) {
            throw new ModelFormatException(file, "no such file");
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage());
        }
        return load(file, bytes, tok, seqLen);
    }

    /** The data in {@code bytes}, read as {@link #load(Path, Tokenizer, int)} reads a file called {@code file} with these contents. */
    static Loaded load(Path file, byte[] bytes, Tokenizer tok, int seqLen) {
        if (ArrowTables.isArrow(file, bytes, bytes.length)) {
            Records r = new Records(tok, seqLen);
            try {
                ArrowTables.read(file, new org.apache.arrow.vector.util.ByteArrayReadableSeekableByteChannel(bytes), r::add);
            } catch (IOException e) {
                throw new ModelFormatException(file, "cannot read: " + e.getMessage());
            }
            return r.finish(file);
        }
        String text;
        try {
            text = StandardCharsets.UTF_8.newDecoder().decode(java.nio.ByteBuffer.wrap(bytes)).toString();
        } catch (CharacterCodingException e) {
            throw new ModelFormatException(file, "not UTF-8 text");
        }
        String name = file.getFileName().toString().toLowerCase();
        if (name.endsWith(".jsonl") || name.endsWith(".json")) {
            return jsonl(file, text, tok, seqLen);
        }
        List<Tokens> docs = textDocuments(text, tok);
        if (docs.isEmpty()) {
            throw new ModelFormatException(file, "no text");
        }
        return examples(file, docs, seqLen);
    }

    /**
     * One record of a JSONL or Arrow file: {@code text}, or {@code prompt} and {@code completion},
     * or {@code messages}; the fields it lacks are null. The messages are read (and checked) only when
     * the record has neither of the others, as a field that is not used is not looked at.
     */
    record Row(String text, String prompt, String completion, Supplier<List<ChatTemplate.Message>> messages) {
    }

    private static Loaded jsonl(Path file, String text, Tokenizer tok, int seqLen) {
        ObjectMapper json = new ObjectMapper();
        Records out = new Records(tok, seqLen);
        String[] lines = text.split("\\r?\\n");
        for (int ln = 0; ln < lines.length; ln++) {
            String line = lines[ln].strip();
            if (line.isEmpty()) {
                continue;
            }
            JsonNode n;
            try {
                n = json.readTree(line);
            } catch (com.fasterxml.jackson.core.JsonProcessingException e) {
                throw new ModelFormatException(file, "line " + (ln + 1) + ": invalid JSON (" + e.getOriginalMessage() + ")");
            }
            String where = "line " + (ln + 1);
            out.add(file, where, new Row(string(n, "text"), string(n, "prompt"), string(n, "completion"), () -> messages(file, where, n)));
        }
        return out.finish(file);
    }

    /** The {@code messages} array of a JSONL record, or null when it has none. */
    private static List<ChatTemplate.Message> messages(Path file, String where, JsonNode n) {
        if (!n.has("messages") || !n.get("messages").isArray()) {
            return null;
        }
        List<ChatTemplate.Message> msgs = new ArrayList<>();
        for (JsonNode m : n.get("messages")) {
            if (!m.hasNonNull("role") || !m.hasNonNull("content")) {
                throw new ModelFormatException(file, where + ": every message needs role and content");
            }
            msgs.add(new ChatTemplate.Message(m.get("role").asText(), m.get("content").asText()));
        }
        return msgs;
    }

    private static String string(JsonNode n, String field) {
        return n.hasNonNull(field) ? n.get(field).asText() : null;
    }

    /** Turns rows into examples: documents packed together, prompt/completion and chats one sequence each. */
    private static final class Records {
        final Tokenizer tok;
        final int seqLen;
        final List<int[]> docs = new ArrayList<>();
        final List<Example> single = new ArrayList<>();
        int truncated;
        int records;

        Records(Tokenizer tok, int seqLen) {
            this.tok = tok;
            this.seqLen = seqLen;
        }

        void add(Path file, String where, Row r) {
            try {
                addRow(file, where, r);
            } catch (io.lora4j.model.tokenizer.TokenizerException e) {
                throw new ModelFormatException(file, where + ": " + e.getMessage());
            }
        }

        private void addRow(Path file, String where, Row r) {
            records++;
            if (r.text() != null) {
                docs.add(document(tok, r.text()));
            } else if (r.prompt() != null && r.completion() != null) {
                Tokens t = promptCompletion(tok, r.prompt(), r.completion());
                truncated += addMasked(single, t.ids(), t.loss(), seqLen) ? 1 : 0;
            } else if (r.messages().get() instanceof List<ChatTemplate.Message> msgs) {
                ChatTemplate.Encoded e;
                try {
                    e = ChatTemplate.forTokenizer(tok).encode(msgs, false);
                } catch (ChatTemplate.InvalidConversationException x) {
                    throw new ModelFormatException(file, where + ": " + x.getMessage());
                }
                truncated += addMasked(single, e.ids(), e.assistantMask(), seqLen) ? 1 : 0;
            } else {
                throw new ModelFormatException(file, where + ": expected a \"text\", \"prompt\"+\"completion\" or \"messages\" field");
            }
        }

        Loaded finish(Path file) {
            if (records == 0) {
                throw new ModelFormatException(file, "no records");
            }
            List<Example> all = new ArrayList<>(pack(docs, seqLen));
            all.addAll(single);
            if (all.isEmpty()) {
                throw new ModelFormatException(file, "no record has anything to learn (every target is masked)");
            }
            return new Loaded(all, truncated, records);
        }
    }

    private static int[] document(Tokenizer tok, String text) {
        int[] body = tok.encode(text);
        int bos = tok.bos() >= 0 && tok.addBos() ? 1 : 0;
        int eos = tok.eos() >= 0 ? 1 : 0;
        int[] ids = new int[bos + body.length + eos];
        if (bos == 1) {
            ids[0] = tok.bos();
        }
        System.arraycopy(body, 0, ids, bos, body.length);
        if (eos == 1) {
            ids[ids.length - 1] = tok.eos();
        }
        return ids;
    }

    /** Concatenates documents and cuts windows of seqLen+1 tokens (stride seqLen): inputs and next-token targets. */
    static List<Example> pack(List<int[]> docs, int seqLen) {
        int total = 0;
        for (int[] d : docs) {
            total += d.length;
        }
        int[] stream = new int[total];
        int k = 0;
        for (int[] d : docs) {
            System.arraycopy(d, 0, stream, k, d.length);
            k += d.length;
        }
        List<Example> out = new ArrayList<>();
        for (int start = 0; start + 1 < total; start += seqLen) {
            int T = Math.min(seqLen, total - 1 - start);
            int[] in = new int[T];
            int[] tg = new int[T];
            System.arraycopy(stream, start, in, 0, T);
            System.arraycopy(stream, start + 1, tg, 0, T);
            out.add(new Example(in, tg));
        }
        return out;
    }

    /**
     * Adds ids as one example whose target at position t is ids[t+1] where loss[t+1] holds, else −1.
     * Returns whether it had to be truncated.
     */
    private static boolean addMasked(List<Example> out, int[] ids, boolean[] loss, int seqLen) {
        int T = Math.min(ids.length - 1, seqLen);
        if (T < 1) {
            return false;
        }
        int[] in = new int[T];
        int[] tg = new int[T];
        boolean any = false;
        for (int t = 0; t < T; t++) {
            in[t] = ids[t];
            tg[t] = loss[t + 1] ? ids[t + 1] : -1;
            any |= loss[t + 1];
        }
        if (any) {
            out.add(new Example(in, tg));
        }
        return ids.length - 1 > seqLen;
    }

    /**
     * One record's tokens, as {@link #load} makes them: a document ({@code loss} null: packed with the
     * others, every position a target) or a masked sequence (a prompt and completion, or a chat; a
     * target where {@code loss} holds). Lets records be tokenised elsewhere (on Spark executors) and
     * turned into exactly the examples {@link #load} gives, by {@link #examples}.
     */
    public record Tokens(int[] ids, boolean[] loss) implements java.io.Serializable {
    }

    /** The documents of a plain-text file's content (separated by blank lines), tokenised as {@link #load} does. */
    public static List<Tokens> textDocuments(String text, Tokenizer tok) {
        List<Tokens> out = new ArrayList<>();
        for (String doc : text.split("\\r?\\n\\s*\\r?\\n")) {
            if (!doc.isBlank()) {
                out.add(new Tokens(document(tok, doc.strip()), null));
            }
        }
        return out;
    }

    /**
     * One JSONL/table record tokenised as {@link #load} does: {@code text}, else {@code prompt} and
     * {@code completion}, else {@code messages} (the fields it lacks are null). {@code where} names the
     * record in errors.
     */
    public static Tokens record(Path file, String where, String text, String prompt, String completion,
                                List<ChatTemplate.Message> messages, Tokenizer tok) {
        if (text != null) {
            return new Tokens(document(tok, text), null);
        }
        if (prompt != null && completion != null) {
            return promptCompletion(tok, prompt, completion);
        }
        if (messages != null) {
            ChatTemplate.Encoded e = ChatTemplate.forTokenizer(tok).encode(messages, false);
            return new Tokens(e.ids(), e.assistantMask());
        }
        throw new ModelFormatException(file, where + ": expected a \"text\", \"prompt\"+\"completion\" or \"messages\" field");
    }

    /** The examples of tokenised records in record order, exactly as {@link #load} makes them from the same records. */
    public static Loaded examples(Path file, List<Tokens> records, int seqLen) {
        if (records.isEmpty()) {
            throw new ModelFormatException(file, "no records");
        }
        List<int[]> docs = new ArrayList<>();
        List<Example> single = new ArrayList<>();
        int truncated = 0;
        for (Tokens t : records) {
            if (t.loss() == null) {
                docs.add(t.ids());
            } else {
                truncated += addMasked(single, t.ids(), t.loss(), seqLen) ? 1 : 0;
            }
        }
        List<Example> all = new ArrayList<>(pack(docs, seqLen));
        all.addAll(single);
        if (all.isEmpty()) {
            throw new ModelFormatException(file, "no record has anything to learn (every target is masked)");
        }
        return new Loaded(all, truncated, records.size());
    }

    private static Tokens promptCompletion(Tokenizer tok, String prompt, String completion) {
        int[] p = tok.encode(prompt);
        int[] c = tok.encode(completion);
        int bos = tok.bos() >= 0 && tok.addBos() ? 1 : 0;
        int eos = tok.eos() >= 0 ? 1 : 0;
        int[] ids = new int[bos + p.length + c.length + eos];
        boolean[] loss = new boolean[ids.length];
        int k = 0;
        if (bos == 1) {
            ids[k++] = tok.bos();
        }
        for (int id : p) {
            ids[k++] = id;
        }
        for (int id : c) {
            loss[k] = true;
            ids[k++] = id;
        }
        if (eos == 1) {
            loss[k] = true;
            ids[k++] = tok.eos();
        }
        return new Tokens(ids, loss);
    }

    /** A seeded held-out split: {@code fraction} of the examples (at least one when there are two or more). */
    public static Split split(List<Example> all, double fraction, long seed) {
        if (fraction <= 0 || all.size() < 2) {
            return new Split(all, List.of());
        }
        if (fraction >= 1) {
            throw new IllegalArgumentException("eval fraction must be < 1");
        }
        List<Example> shuffled = new ArrayList<>(all);
        SplittableRandom r = new SplittableRandom(seed ^ 0x5DEECE66DL);
        for (int i = shuffled.size() - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            Example t = shuffled.get(i);
            shuffled.set(i, shuffled.get(j));
            shuffled.set(j, t);
        }
        int nEval = Math.max(1, (int) Math.round(all.size() * fraction));
        return new Split(List.copyOf(shuffled.subList(nEval, shuffled.size())), List.copyOf(shuffled.subList(0, nEval)));
    }
}

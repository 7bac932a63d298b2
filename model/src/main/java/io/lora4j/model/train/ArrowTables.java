package io.lora4j.model.train;

import io.lora4j.model.format.ArrowModel;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.tokenizer.ChatTemplate;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.memory.ArrowBuf;
import org.apache.arrow.vector.BaseLargeVariableWidthVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.ValueVector;
import org.apache.arrow.vector.complex.LargeListVector;
import org.apache.arrow.vector.complex.ListVector;
import org.apache.arrow.vector.complex.StructVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.ArrowReader;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;

import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * Training rows from an Arrow IPC file ("ARROW1" random-access format) or stream (what Hugging
 * Face {@code datasets} keeps in its cache as {@code data-00000-of-00001.arrow}), read with Arrow
 * Java's readers, every record batch in order. Columns used: {@code text}, or {@code prompt} and
 * {@code completion} (utf8 or large_utf8), or {@code messages} (list or large_list of
 * struct&lt;role, content&gt;); other columns are ignored. A null value counts as absent, as a
 * missing JSON field does, and a row's messages are read only when it has no text or prompt+completion.
 */
final class ArrowTables {
    private static final String[] STRING_COLUMNS = {"text", "prompt", "completion"};

    private ArrowTables() {
    }

    interface RowSink {
        void add(Path file, String where, Datasets.Row row);
    }

    /** An Arrow file by its magic, an Arrow stream by its continuation marker 0xFFFFFFFF, or a {@code .arrow}/{@code .arrows} name. */
    static boolean isArrow(Path file) {
        byte[] head = new byte[8];
        int n;
        try (InputStream in = Files.newInputStream(file)) {
            n = in.readNBytes(head, 0, head.length);
        } catch (NoSuchFileException e) {
            throw new ModelFormatException(file, "no such file");
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage());
        }
        return isArrow(file, head, n);
    }

    /** As {@link #isArrow(Path)}, for the first {@code n} bytes {@code head} of a file called {@code file}. */
    static boolean isArrow(Path file, byte[] head, int n) {
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean continuation = n >= 4 && head[0] == -1 && head[1] == -1 && head[2] == -1 && head[3] == -1;
        return ArrowModel.hasMagic(head, n) || continuation || name.endsWith(".arrow") || name.endsWith(".arrows");
    }

    static void read(Path file, RowSink sink) {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            read(file, ch, sink);
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage());
        }
    }

    /**
     * Reads every row of the Arrow file or stream in {@code ch} (the contents of {@code file}, which
     * errors name). Its framing is checked first ({@link ArrowFraming}): every length the file
     * declares must fit in it, so Arrow Java never allocates for a length the file cannot hold, and
     * the buffers it does allocate are bounded by the file's size.
     */
    static void read(Path file, SeekableByteChannel ch, RowSink sink) throws IOException {
        boolean isFile = ArrowFraming.check(file, ch);
        ch.position(0);
        String kind = isFile ? "Arrow IPC file" : "Arrow IPC stream";
        try (BufferAllocator alloc = new RootAllocator(Math.max(1 << 20, 2 * ch.size()));
             ArrowReader reader = isFile ? new ArrowFileReader(ch, alloc) : new ArrowStreamReader(ch, alloc)) {
            VectorSchemaRoot root = reader.getVectorSchemaRoot();
            Columns cols = Columns.of(file, root);
            int batch = 0;
            while (reader.loadNextBatch()) {
                for (int i = 0; i < root.getRowCount(); i++) {
                    String where = "record batch " + batch + ", row " + i;
                    int row = i;
                    sink.add(file, where, new Datasets.Row(cols.string(file, where, 0, i), cols.string(file, where, 1, i),
                            cols.string(file, where, 2, i), () -> cols.messages(file, where, row)));
                }
                batch++;
            }
        } catch (ModelFormatException e) {
            throw e;
        } catch (IOException | RuntimeException | AssertionError e) { // Arrow Java checks some of its input with assert
            throw new ModelFormatException(file, "not a readable " + kind + " (" + e.getClass().getSimpleName() + ": " + e.getMessage() + ")", e);
        }
    }

    /** The columns of interest, type-checked once from the schema (vectors are re-read per batch from the root). */
    private record Columns(VectorSchemaRoot root, String[] strings, String messages) {
        static Columns of(Path file, VectorSchemaRoot root) {
            String[] strings = new String[STRING_COLUMNS.length];
            for (int k = 0; k < STRING_COLUMNS.length; k++) {
                Field f = field(root.getSchema().getFields(), STRING_COLUMNS[k]);
                if (f != null) {
                    checkString(file, f, STRING_COLUMNS[k]);
                    strings[k] = f.getName();
                }
            }
            Field m = field(root.getSchema().getFields(), "messages");
            if (m != null) {
                ArrowType t = m.getType();
                Field item = m.getChildren().size() == 1 ? m.getChildren().get(0) : null;
                boolean ok = (t instanceof ArrowType.List || t instanceof ArrowType.LargeList) && item != null
                        && item.getType() instanceof ArrowType.Struct && m.getDictionary() == null;
                if (!ok) {
                    throw new ModelFormatException(file, "column messages has type " + describe(m) + ", expected list<struct<role, content>>");
                }
                for (String child : new String[]{"role", "content"}) {
                    Field c = field(item.getChildren(), child);
                    if (c == null) {
                        throw new ModelFormatException(file, "column messages has type " + describe(m) + ": its structs have no " + child + " field");
                    }
                    checkString(file, c, "messages." + child);
                }
            }
            boolean any = strings[0] != null || strings[1] != null && strings[2] != null || m != null;
            if (!any) {
                throw new ModelFormatException(file, "no text, prompt+completion or messages column; the columns are "
                        + root.getSchema().getFields().stream().map(ArrowTables::describe).toList());
            }
            return new Columns(root, strings, m == null ? null : m.getName());
        }

        String string(Path file, String where, int k, int row) {
            return strings[k] == null ? null : text(file, where, root.getVector(strings[k]), row);
        }

        List<ChatTemplate.Message> messages(Path file, String where, int row) {
            if (messages == null) {
                return null;
            }
            FieldVector v = root.getVector(messages);
            if (row >= v.getValueCount() || v.isNull(row)) {
                return null;
            }
            long start, end;
            ValueVector items;
            if (v instanceof ListVector l) {
                start = l.getOffsetBuffer().getInt(4L * row);
                end = l.getOffsetBuffer().getInt(4L * row + 4);
                items = l.getDataVector();
            } else {
                LargeListVector l = (LargeListVector) v;
                start = l.getOffsetBuffer().getLong(8L * row);
                end = l.getOffsetBuffer().getLong(8L * row + 8);
                items = l.getDataVector();
            }
            if (start < 0 || end < start || end > items.getValueCount() || !(items instanceof StructVector structs)) {
                throw new ModelFormatException(file, where + ": messages offsets [" + start + ", " + end + ") outside the "
                        + items.getValueCount() + " messages of the batch (corrupt)");
            }
            List<ChatTemplate.Message> out = new ArrayList<>((int) (end - start));
            for (int i = (int) start; i < end; i++) {
                String role = structs.isNull(i) ? null : text(file, where, structs.getChild("role"), i);
                String content = structs.isNull(i) ? null : text(file, where, structs.getChild("content"), i);
                if (role == null || content == null) {
                    throw new ModelFormatException(file, where + ": every message needs role and content");
                }
                out.add(new ChatTemplate.Message(role, content));
            }
            return out;
        }
    }

    /**
     * Value {@code row} of a utf8 or large_utf8 vector, or null. Its offsets are checked against the
     * data buffer first: Arrow Java's getObject trusts them and allocates what they span.
     */
    private static String text(Path file, String where, ValueVector v, int row) {
        if (v == null || row >= v.getValueCount() || v.isNull(row)) {
            return null;
        }
        boolean large = v instanceof BaseLargeVariableWidthVector;
        ArrowBuf offsets = v.getOffsetBuffer(), data = v.getDataBuffer();
        long start = large ? offsets.getLong(8L * row) : offsets.getInt(4L * row);
        long end = large ? offsets.getLong(8L * row + 8) : offsets.getInt(4L * row + 4);
        if (start < 0 || end < start || end > data.capacity() || end - start > Integer.MAX_VALUE - 8) {
            throw new ModelFormatException(file, where + ": column " + v.getName() + " has offsets [" + start + ", " + end
                    + ") outside its " + data.capacity() + "-byte data buffer (corrupt)");
        }
        byte[] b = new byte[(int) (end - start)];
        data.getBytes(start, b, 0, b.length);
        return new String(b, java.nio.charset.StandardCharsets.UTF_8);
    }

    private static Field field(List<Field> fields, String name) {
        for (Field f : fields) {
            if (f.getName().equals(name)) {
                return f;
            }
        }
        return null;
    }

    private static void checkString(Path file, Field f, String what) {
        boolean ok = (f.getType() instanceof ArrowType.Utf8 || f.getType() instanceof ArrowType.LargeUtf8) && f.getDictionary() == null;
        if (!ok) {
            throw new ModelFormatException(file, "column " + what + " has type " + describe(f) + ", expected a string (utf8 or large_utf8)");
        }
    }

    private static String describe(Field f) {
        return f.getName() + ": " + f.getType() + (f.getDictionary() != null ? " (dictionary-encoded)" : "")
                + (f.getChildren().isEmpty() ? "" : f.getChildren().stream().map(ArrowTables::describe).toList());
    }
}

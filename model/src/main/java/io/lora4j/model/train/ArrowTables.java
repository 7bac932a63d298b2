package io.lora4j.model.train;

import io.lora4j.model.format.ArrowModel;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.tokenizer.ChatTemplate;
import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowFileReader;
import org.apache.arrow.vector.ipc.ArrowReader;
import org.apache.arrow.vector.ipc.ArrowStreamReader;
import org.apache.arrow.vector.types.pojo.ArrowType;
import org.apache.arrow.vector.types.pojo.Field;

import java.io.IOException;
import java.io.InputStream;
import java.nio.channels.FileChannel;
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
        String name = file.getFileName().toString().toLowerCase(Locale.ROOT);
        boolean continuation = n >= 4 && head[0] == -1 && head[1] == -1 && head[2] == -1 && head[3] == -1;
        return ArrowModel.hasMagic(head, n) || continuation || name.endsWith(".arrow") || name.endsWith(".arrows");
    }

    static void read(Path file, RowSink sink) {
        boolean isFile;
        try (InputStream in = Files.newInputStream(file)) {
            byte[] head = in.readNBytes(6);
            isFile = ArrowModel.hasMagic(head, head.length);
        } catch (IOException e) {
            throw new ModelFormatException(file, "cannot read: " + e.getMessage());
        }
        String kind = isFile ? "Arrow IPC file" : "Arrow IPC stream";
        try (BufferAllocator alloc = new RootAllocator();
             FileChannel ch = FileChannel.open(file, StandardOpenOption.READ);
             ArrowReader reader = isFile ? new ArrowFileReader(ch, alloc) : new ArrowStreamReader(ch, alloc)) {
            VectorSchemaRoot root = reader.getVectorSchemaRoot();
            Columns cols = Columns.of(file, root);
            int batch = 0;
            while (reader.loadNextBatch()) {
                for (int i = 0; i < root.getRowCount(); i++) {
                    String where = "record batch " + batch + ", row " + i;
                    int row = i;
                    sink.add(file, where, new Datasets.Row(cols.string(0, i), cols.string(1, i), cols.string(2, i),
                            () -> cols.messages(file, where, row)));
                }
                batch++;
            }
        } catch (ModelFormatException e) {
            throw e;
        } catch (IOException | RuntimeException e) {
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

        String string(int k, int row) {
            if (strings[k] == null) {
                return null;
            }
            Object v = root.getVector(strings[k]).getObject(row);
            return v == null ? null : v.toString();
        }

        List<ChatTemplate.Message> messages(Path file, String where, int row) {
            if (messages == null) {
                return null;
            }
            FieldVector v = root.getVector(messages);
            if (!(v.getObject(row) instanceof List<?> list)) {
                return null;
            }
            List<ChatTemplate.Message> out = new ArrayList<>(list.size());
            for (Object o : list) {
                Object role = o instanceof Map<?, ?> m ? m.get("role") : null;
                Object content = o instanceof Map<?, ?> m ? m.get("content") : null;
                if (role == null || content == null) {
                    throw new ModelFormatException(file, where + ": every message needs role and content");
                }
                out.add(new ChatTemplate.Message(role.toString(), content.toString()));
            }
            return out;
        }
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

package io.lora4j.model.train;

import io.lora4j.model.format.ArrowModel;
import io.lora4j.model.format.ModelFormatException;
import org.apache.arrow.flatbuf.Block;
import org.apache.arrow.flatbuf.DictionaryBatch;
import org.apache.arrow.flatbuf.Endianness;
import org.apache.arrow.flatbuf.Field;
import org.apache.arrow.flatbuf.FieldNode;
import org.apache.arrow.flatbuf.Footer;
import org.apache.arrow.flatbuf.Message;
import org.apache.arrow.flatbuf.MessageHeader;
import org.apache.arrow.flatbuf.RecordBatch;
import org.apache.arrow.flatbuf.Schema;
import org.apache.arrow.flatbuf.Type;
import org.apache.arrow.flatbuf.Union;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SeekableByteChannel;
import java.nio.file.Path;

/**
 * The framing of an Arrow IPC file or stream, checked before Arrow Java reads it (arrow/format
 * Message.fbs, File.fbs). Arrow Java allocates what a length field declares and only then finds
 * that the file is shorter: a 100-byte stream declaring a 2 GB message makes it allocate 2 GB. So
 * every message of a stream is walked (continuation marker, metadata length, the Message's body
 * length: each must fit in what is left of the file), and every block of a file's footer must lie
 * inside the file; the schema must be little-endian, as Arrow Java reads it (it does not check).
 * Nothing here allocates more than one message's metadata, which is itself bounded by the file.
 */
final class ArrowFraming {
    private static final byte[] FILE_MAGIC = {'A', 'R', 'R', 'O', 'W', '1'};

    private final Path file;
    private final SeekableByteChannel ch;
    private final String kind;

    private ArrowFraming(Path file, SeekableByteChannel ch, String kind) {
        this.file = file;
        this.ch = ch;
        this.kind = kind;
    }

    /** Checks {@code ch} (the contents of {@code file}); returns whether it is the file format (else a stream). */
    static boolean check(Path file, SeekableByteChannel ch) throws IOException {
        long size = ch.size();
        byte[] head = new ArrowFraming(file, ch, "").read(0, (int) Math.min(8, size));
        boolean isFile = ArrowModel.hasMagic(head, head.length);
        ArrowFraming f = new ArrowFraming(file, ch, isFile ? "file" : "stream");
        try {
            if (isFile) {
                f.checkFile(size);
            } else {
                f.checkStream(0, size);
            }
        } catch (IndexOutOfBoundsException | IllegalArgumentException | IllegalStateException | NullPointerException e) {
            throw f.fail("corrupt metadata (" + e.getClass().getSimpleName() + ": " + e.getMessage() + ")");
        }
        return isFile;
    }

    private ModelFormatException fail(String problem) {
        return new ModelFormatException(file, "not a readable Arrow IPC " + kind + ": " + problem);
    }

    /** A message at {@code pos}: its Message table and where its body starts; null at the end-of-stream marker or end of data. */
    private record Framed(Message message, long bodyStart) {
    }

    private Framed message(long pos, long end) throws IOException {
        if (end - pos < 4) {
            return null;
        }
        ByteBuffer p = ByteBuffer.wrap(read(pos, (int) Math.min(8, end - pos))).order(ByteOrder.LITTLE_ENDIAN);
        int len = p.getInt(0);
        long meta = pos + 4;
        if (len == -1) { // continuation marker, then the length
            if (p.capacity() < 8) {
                return null;
            }
            len = p.getInt(4);
            meta = pos + 8;
        }
        if (len == 0) {
            return null;
        }
        if (len < 0 || len > end - meta) {
            throw fail("the message at byte " + pos + " declares " + Integer.toUnsignedString(len)
                    + " bytes of metadata, but only " + (end - meta) + " follow (truncated or corrupt)");
        }
        Message m = Message.getRootAsMessage(ByteBuffer.wrap(read(meta, len)).order(ByteOrder.LITTLE_ENDIAN));
        return new Framed(m, meta + len);
    }

    private void checkStream(long pos, long size) throws IOException {
        boolean first = true;
        for (Framed f; (f = message(pos, size)) != null; first = false) {
            if (first) {
                checkSchema(f.message());
            }
            checkCounts(f.message());
            long body = f.message().bodyLength();
            if (body < 0 || body > size - f.bodyStart()) {
                throw fail("the " + MessageHeader.name(f.message().headerType()) + " message at byte "
                        + pos + " declares a body of " + body + " bytes, but only " + (size - f.bodyStart()) + " follow (truncated or corrupt)");
            }
            pos = f.bodyStart() + body;
        }
        if (first) {
            throw fail("no schema message (empty or truncated)");
        }
    }

    /** A record or dictionary batch's row count and field-node lengths: Arrow Java asserts (or misbehaves) on negative ones. */
    private void checkCounts(Message m) {
        RecordBatch rb = m.headerType() == MessageHeader.RecordBatch ? (RecordBatch) m.header(new RecordBatch())
                : m.headerType() == MessageHeader.DictionaryBatch ? ((DictionaryBatch) m.header(new DictionaryBatch())).data() : null;
        if (m.headerType() != MessageHeader.RecordBatch && m.headerType() != MessageHeader.DictionaryBatch) {
            return;
        }
        if (rb == null) {
            throw fail("a " + MessageHeader.name(m.headerType()) + " message without its batch table (corrupt metadata)");
        }
        if (rb.length() < 0 || rb.length() > Integer.MAX_VALUE) {
            throw fail("a record batch declares " + rb.length() + " rows");
        }
        FieldNode node = new FieldNode();
        for (int i = 0; i < rb.nodesLength(); i++) {
            rb.nodes(node, i);
            if (node.length() < 0 || node.length() > Integer.MAX_VALUE || node.nullCount() < 0 || node.nullCount() > node.length()) {
                throw fail("a record batch's field node " + i + " declares " + node.length() + " values, " + node.nullCount() + " of them null");
            }
        }
    }

    private void checkSchema(Message m) {
        if (m.headerType() != MessageHeader.Schema) {
            throw fail("it starts with a " + MessageHeader.name(m.headerType())
                    + " message; a Schema must come first");
        }
        Schema s = (Schema) m.header(new Schema());
        checkEndianness(s);
    }

    /** Deepest nesting of fields accepted (list&lt;struct&lt;…&gt;&gt; is 2); Arrow Java converts fields recursively. */
    static final int MAX_FIELD_DEPTH = 32;
    /** Most fields (children included) a schema may have. */
    static final int MAX_FIELDS = 10_000;

    private void checkEndianness(Schema s) {
        if (s == null) {
            throw fail("the schema message has no schema table");
        }
        int limit = s.getByteBuffer().capacity(); // a flatbuffer vector cannot hold more elements than its buffer has bytes
        if (s.fieldsLength() > limit || s.customMetadataLength() > limit || s.featuresLength() > limit) {
            throw fail("the schema declares more fields or metadata than its message holds (corrupt metadata)");
        }
        int[] count = {0};
        for (int i = 0; i < s.fieldsLength(); i++) {
            checkField(s.fields(i), 1, count, limit);
        }
        if (s.endianness() != Endianness.Little) {
            throw fail("the schema says its buffers are big-endian; only little-endian Arrow "
                    + "data can be read (what pyarrow and Hugging Face datasets write on x86 and ARM)");
        }
    }

    /** A field's subtree: bounded depth and size (a flatbuffer can make a field its own child, and Arrow Java would recurse forever). */
    private void checkField(Field f, int depth, int[] count, int limit) {
        if (f == null) {
            throw fail("a schema field is missing (corrupt metadata)");
        }
        if (depth > MAX_FIELD_DEPTH || ++count[0] > MAX_FIELDS) {
            throw fail("the schema nests fields deeper than " + MAX_FIELD_DEPTH + " or has more than " + MAX_FIELDS
                    + " of them (corrupt metadata)");
        }
        // Arrow Java allocates arrays of these lengths before it reads the elements
        boolean union = f.typeType() == Type.Union && f.type(new Union()) instanceof Union u && u.typeIdsLength() > limit / 4;
        if (f.childrenLength() > limit || f.customMetadataLength() > limit || union) {
            throw fail("field " + f.name() + " declares more children, metadata or union type ids than its message holds (corrupt metadata)");
        }
        for (int i = 0; i < f.childrenLength(); i++) {
            checkField(f.children(i), depth + 1, count, limit);
        }
    }

    private void checkFile(long size) throws IOException {
        int tail = FILE_MAGIC.length + 4;
        if (size < 8 + tail) {
            throw fail("truncated: " + size + " bytes");
        }
        ByteBuffer end = ByteBuffer.wrap(read(size - tail, tail)).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < FILE_MAGIC.length; i++) {
            if (end.get(4 + i) != FILE_MAGIC[i]) {
                throw fail("truncated: it does not end with the footer and \"ARROW1\"");
            }
        }
        int footerLen = end.getInt(0);
        long footerStart = size - tail - (long) footerLen;
        if (footerLen <= 0 || footerStart < 8) {
            throw fail("corrupt footer length " + footerLen + " for a file of " + size + " bytes");
        }
        Footer footer = Footer.getRootAsFooter(ByteBuffer.wrap(read(footerStart, footerLen)).order(ByteOrder.LITTLE_ENDIAN));
        checkEndianness(footer.schema());
        Block b = new Block();
        for (int i = 0; i < footer.recordBatchesLength() + footer.dictionariesLength(); i++) {
            boolean batch = i < footer.recordBatchesLength();
            if (batch) {
                footer.recordBatches(b, i);
            } else {
                footer.dictionaries(b, i - footer.recordBatchesLength());
            }
            String what = (batch ? "record batch " + i : "dictionary batch " + (i - footer.recordBatchesLength()));
            long off = b.offset(), meta = b.metaDataLength(), body = b.bodyLength();
            if (off < 8 || meta <= 0 || body < 0 || off > footerStart || meta > footerStart - off || body > footerStart - off - meta) {
                throw fail("the footer puts " + what + " at byte " + off + " with " + meta + " bytes of metadata and "
                        + body + " of body, outside the file's " + footerStart + " bytes before the footer (truncated or corrupt)");
            }
            Framed f = message(off, off + meta);
            if (f == null || f.message().bodyLength() != body) {
                throw fail(what + ": its message does not match the footer's block (corrupt)");
            }
            checkCounts(f.message());
        }
    }

    private byte[] read(long pos, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n);
        ch.position(pos);
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw fail("unexpected end of data at byte " + ch.position());
            }
        }
        return b.array();
    }
}

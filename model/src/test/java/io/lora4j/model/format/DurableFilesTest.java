package io.lora4j.model.format;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The write protocol itself: its steps in order, leftovers of a killed writer, a writer that fails. */
class DurableFilesTest {
    @TempDir
    Path dir;

    @Test
    void writesTheTemporaryForcesItRenamesItAndForcesTheDirectory() throws IOException {
        Path target = dir.resolve("a.bin");
        List<String> events = new ArrayList<>();
        DurableFiles.trace(events::add);
        try {
            DurableFiles.writeString(target, "new");
        } finally {
            DurableFiles.trace(null);
        }
        Path tmp = dir.resolve("a.bin.tmp");
        assertEquals(List.of("force " + tmp, "rename " + tmp + " " + target, "force " + dir.toAbsolutePath().normalize()), events);
        assertEquals("new", Files.readString(target));
        assertFalse(Files.exists(tmp));
    }

    @Test
    void aLeftoverTemporaryFileOrDirectoryDoesNotStopTheNextWrite() throws IOException {
        Path target = dir.resolve("m.gguf");
        Files.writeString(target, "old");
        Files.createDirectories(dir.resolve("m.gguf.tmp/sub"));
        Files.writeString(dir.resolve("m.gguf.tmp/sub/x"), "half a file");
        DurableFiles.writeString(target, "new");
        assertEquals("new", Files.readString(target));
        Files.writeString(dir.resolve("m.gguf.tmp"), "a killed writer's partial bytes");
        dir.resolve("m.gguf.tmp").toFile().setReadOnly();
        DurableFiles.writeString(target, "newer");
        assertEquals("newer", Files.readString(target));
        assertFalse(Files.exists(dir.resolve("m.gguf.tmp")));
    }

    @Test
    void aWriterThatFailsLeavesTheOldFileAndNoTemporary() throws IOException {
        Path target = dir.resolve("c.json");
        Files.writeString(target, "old");
        IOException e = assertThrows(IOException.class, () -> DurableFiles.write(target, ch -> {
            ch.write(java.nio.ByteBuffer.wrap("partial".getBytes(StandardCharsets.UTF_8)));
            throw new IOException("disk full");
        }));
        assertEquals("disk full", e.getMessage());
        assertEquals("old", Files.readString(target));
        assertFalse(Files.exists(dir.resolve("c.json.tmp")));
    }

    @Test
    void aDirectoryIsPublishedWholeAndAnOldOneRemovedAside() throws IOException {
        Path ck = dir.resolve("checkpoint-4");
        Files.createDirectories(ck);
        Files.writeString(ck.resolve("old.txt"), "old");
        Path tmp = DurableFiles.tempDirectory(ck);
        Files.writeString(tmp.resolve("state.json"), "{}");
        DurableFiles.publishDirectory(tmp, ck);
        assertTrue(Files.exists(ck.resolve("state.json")) && !Files.exists(ck.resolve("old.txt")));
        assertFalse(Files.exists(tmp) || Files.exists(dir.resolve("checkpoint-4.deleted.tmp")));
        Files.createDirectories(dir.resolve("checkpoint-2.deleted.tmp/x"));
        Files.writeString(dir.resolve("notes.tmp"), "someone else's");
        assertEquals(1, DurableFiles.removeLeftovers(dir, n -> n.startsWith("checkpoint-")));
        assertTrue(Files.exists(dir.resolve("notes.tmp")));
    }
}

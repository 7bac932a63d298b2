package io.lora4j.model.format;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.LinkOption;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.List;
import java.util.function.Consumer;
import java.util.stream.Stream;

/**
 * Every file lora4j writes goes through here, so that a crash or a power loss leaves the old
 * file or the new one, never an empty or partial one under the real name:
 * <ol>
 *   <li>the bytes go to {@code <target>.tmp} (a leftover of that name from a killed writer, file or
 *       directory, is removed first);</li>
 *   <li>the temporary file is forced to the device ({@code fsync});</li>
 *   <li>it is renamed over the target in one step ({@code rename(2)});</li>
 *   <li>the directory is forced, so that the rename itself is durable.</li>
 * </ol>
 * A directory (a training checkpoint) is built under a temporary name the same way, every file in
 * it forced, then renamed as a whole. Without the forces, a power loss shortly after a rename can
 * leave the new name pointing at an empty file: the rename reaches the disk before the data.
 */
public final class DurableFiles {
    /** The suffix of temporary files and directories. */
    public static final String TMP = ".tmp";

    private static volatile Consumer<String> trace;

    private DurableFiles() {
    }

    /** Writes a file's contents into an open channel (positioned at 0; it may also map the channel). */
    @FunctionalInterface
    public interface Body {
        void write(FileChannel ch) throws IOException;
    }

    /**
     * Test hook: receives {@code "force <path>"} and {@code "rename <from> <to>"} for every step, in
     * order; null (the default) turns it off.
     */
    public static void trace(Consumer<String> sink) {
        trace = sink;
    }

    private static void event(String e) {
        Consumer<String> t = trace;
        if (t != null) {
            t.accept(e);
        }
    }

    /** The temporary name of {@code target}: {@code <target>.tmp} beside it. */
    public static Path tempFor(Path target) {
        return target.resolveSibling(target.getFileName() + TMP);
    }

    /** Writes {@code target} through {@code body}: temp file, force, atomic rename, force the directory. */
    public static void write(Path target, Body body) throws IOException {
        Path tmp = tempFor(target);
        deleteTree(tmp);
        boolean ok = false;
        try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.CREATE_NEW, StandardOpenOption.READ, StandardOpenOption.WRITE)) {
            body.write(ch);
            ch.force(true);
            event("force " + tmp);
            ok = true;
        } finally {
            if (!ok) {
                Files.deleteIfExists(tmp);
            }
        }
        rename(tmp, target);
    }

    /** Writes {@code bytes} to {@code target} durably. */
    public static void write(Path target, byte[] bytes) throws IOException {
        write(target, ch -> {
            ByteBuffer b = ByteBuffer.wrap(bytes);
            while (b.hasRemaining()) {
                ch.write(b);
            }
        });
    }

    /** Writes {@code text} as UTF-8 to {@code target} durably. */
    public static void writeString(Path target, String text) throws IOException {
        write(target, text.getBytes(StandardCharsets.UTF_8));
    }

    /**
     * A fresh, empty temporary directory for building {@code dir} (a leftover of the same name is
     * removed); publish it with {@link #publishDirectory}.
     */
    public static Path tempDirectory(Path dir) throws IOException {
        Path tmp = tempFor(dir);
        deleteTree(tmp);
        Files.createDirectories(tmp);
        return tmp;
    }

    /**
     * Makes the directory built at {@code tmp} appear as {@code dir} in one step: every file in it
     * and the directory itself are forced, an existing {@code dir} is moved aside and removed, then
     * {@code tmp} is renamed and the parent forced.
     */
    public static void publishDirectory(Path tmp, Path dir) throws IOException {
        List<Path> files;
        try (Stream<Path> s = Files.walk(tmp)) {
            files = s.filter(p -> Files.isRegularFile(p, LinkOption.NOFOLLOW_LINKS)).toList();
        }
        for (Path f : files) {
            try (FileChannel ch = FileChannel.open(f, StandardOpenOption.WRITE)) {
                ch.force(true);
            }
            event("force " + f);
        }
        forceDirectory(tmp);
        if (Files.exists(dir, LinkOption.NOFOLLOW_LINKS)) {
            remove(dir);
        }
        rename(tmp, dir);
    }

    /**
     * Removes {@code p} (a file or a whole directory) so that a crash part-way leaves nothing under
     * its name: it is first renamed to {@code <p>.deleted.tmp}, which {@link #removeLeftovers}
     * clears away if the deletion itself is cut short.
     */
    public static void remove(Path p) throws IOException {
        Path aside = p.resolveSibling(p.getFileName() + ".deleted" + TMP);
        deleteTree(aside);
        rename(p, aside);
        deleteTree(aside);
    }

    /** Removes every {@code *.tmp} file or directory directly in {@code dir} that {@code filter} accepts; returns how many. */
    public static int removeLeftovers(Path dir, java.util.function.Predicate<String> filter) throws IOException {
        if (!Files.isDirectory(dir)) {
            return 0;
        }
        List<Path> tmps;
        try (Stream<Path> s = Files.list(dir)) {
            tmps = s.filter(p -> p.getFileName().toString().endsWith(TMP) && filter.test(p.getFileName().toString())).toList();
        }
        for (Path p : tmps) {
            deleteTree(p);
        }
        return tmps.size();
    }

    private static void rename(Path from, Path to) throws IOException {
        Files.move(from, to, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
        event("rename " + from + " " + to);
        forceDirectory(to.toAbsolutePath().getParent());
    }

    /** Forces a directory's entries (names, renames) to the device. */
    public static void forceDirectory(Path dir) throws IOException {
        try (FileChannel ch = FileChannel.open(dir, StandardOpenOption.READ)) {
            ch.force(true);
        }
        event("force " + dir.toAbsolutePath().normalize());
    }

    /** Deletes {@code p} and, for a directory, everything in it; nothing when it does not exist. Links are not followed. */
    public static void deleteTree(Path p) throws IOException {
        if (!Files.exists(p, LinkOption.NOFOLLOW_LINKS)) {
            return;
        }
        if (!Files.isDirectory(p, LinkOption.NOFOLLOW_LINKS)) {
            Files.delete(p);
            return;
        }
        try (Stream<Path> s = Files.walk(p)) {
            for (Path x : s.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(x);
            }
        }
    }
}

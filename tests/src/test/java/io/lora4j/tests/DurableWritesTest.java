package io.lora4j.tests;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import io.lora4j.model.format.DurableFiles;
import io.lora4j.model.train.Checkpoints;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.FileOutputStream;
import java.io.FileWriter;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.stream.Stream;

import static com.tngtech.archunit.base.DescribedPredicate.describe;
import static com.tngtech.archunit.core.domain.JavaCall.Predicates.target;
import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Every writer goes through {@link DurableFiles}: temporary file, forced, renamed, directory forced,
 * in that order, for the adapter, checkpoints, metrics, GGUF, Arrow and safetensors exports; a
 * leftover temporary file or directory from a killed run does not stop the next one; and
 * {@code --save-total-limit} keeps the newest checkpoints.
 */
class DurableWritesTest {
    /** {@code train} of 6 steps (unless {@code more} says otherwise) into {@code out}. */
    static String[] train(Path out, String... more) {
        List<String> a = new ArrayList<>(List.of("train", "--model", Shared.stories().toString(), "-o", out.toString(),
                "--seq-len", "32", "--target-modules", "q_proj,v_proj"));
        if (!List.of(more).contains("--steps")) {
            a.addAll(List.of("--steps", "6"));
        }
        a.addAll(List.of(more));
        return a.toArray(String[]::new);
    }

    /** The CLI run with every durable-write step recorded. */
    static List<String> traced(String... args) {
        List<String> events = Collections.synchronizedList(new ArrayList<>());
        DurableFiles.trace(events::add);
        try {
            Shared.Run r = Shared.cli(args);
            assertEquals(0, r.code(), r.err());
        } finally {
            DurableFiles.trace(null);
        }
        return new ArrayList<>(events);
    }

    /** {@code target} was written as: its temporary forced, renamed over it, its directory forced afterwards. */
    static void assertDurable(List<String> events, Path target) {
        Path tmp = DurableFiles.tempFor(target);
        int force = events.lastIndexOf("force " + tmp);
        int rename = events.lastIndexOf("rename " + tmp + " " + target);
        int dir = events.subList(Math.max(rename, 0), events.size()).indexOf("force " + target.toAbsolutePath().getParent().normalize());
        assertTrue(force >= 0, "forced before the rename: " + tmp + " in " + events);
        assertTrue(rename > force, "renamed after it was forced: " + target + " in " + events);
        assertTrue(dir > 0, "its directory forced after the rename: " + target + " in " + events);
    }

    @Test
    void everyFileOfTrainingMergeAndConvertIsWrittenDurably(@TempDir Path dir) {
        Path out = dir.resolve("run");
        List<String> ev = traced(train(out, "--save-every", "3"));
        for (String f : new String[]{"adapter_config.json", "adapter_model.safetensors", "metrics.csv", "metrics.jsonl", "loss.png"}) {
            assertDurable(ev, out.resolve(f));
        }
        for (String c : new String[]{"checkpoint-3", "checkpoint-6"}) {
            Path ck = out.resolve(c), tmp = DurableFiles.tempFor(ck);
            int rename = ev.indexOf("rename " + tmp + " " + ck);
            assertTrue(rename > 0, c + " published by a rename: " + ev);
            for (String f : new String[]{"adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors",
                    "trainer_state.json", "metrics.csv", "metrics.jsonl"}) {
                int force = ev.lastIndexOf("force " + tmp.resolve(f));
                assertTrue(force >= 0 && force < rename, c + "/" + f + " forced before the checkpoint is renamed: " + ev);
            }
            assertTrue(ev.subList(0, rename).contains("force " + tmp.toAbsolutePath().normalize()), c + " directory forced");
            assertTrue(ev.subList(rename, ev.size()).contains("force " + out.toAbsolutePath().normalize()), c + ": output directory forced");
        }
        Path gguf = dir.resolve("merged.gguf"), hf = dir.resolve("merged-hf"), arrow = dir.resolve("m.arrow");
        ev = traced("merge", "--model", Shared.stories().toString(), "--adapter", out.toString(), "-o", gguf.toString());
        assertDurable(ev, gguf);
        ev = traced("merge", "--model", Shared.stories().toString(), "--adapter", out.toString(), "-o", hf.toString());
        assertDurable(ev, hf.resolve("model.safetensors"));
        assertDurable(ev, hf.resolve("config.json"));
        ev = traced("convert", "--model", Shared.stories().toString(), "-o", arrow.toString());
        assertDurable(ev, arrow);
    }

    @Test
    void leftoverTemporariesOfAKilledRunDoNotStopTheNextOne(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("run");
        // what a run killed at various moments leaves behind: half-written files, a checkpoint under
        // construction, one being deleted, and temporaries of the wrong kind (a directory, a read-only file)
        Files.createDirectories(out.resolve("adapter_model.safetensors.tmp/junk"));
        Files.writeString(out.resolve("adapter_config.json.tmp"), "{\"r\": 8, \"targ");
        out.resolve("adapter_config.json.tmp").toFile().setReadOnly();
        Files.write(out.resolve("metrics.csv.tmp"), new byte[0]);
        Files.createDirectories(out.resolve("checkpoint-3.tmp"));
        Files.writeString(out.resolve("checkpoint-3.tmp/adapter_config.json"), "{");
        Files.createDirectories(out.resolve("checkpoint-9.tmp"));
        Files.write(out.resolve("checkpoint-9.tmp/optimizer.safetensors"), new byte[100]);
        Files.createDirectories(out.resolve("checkpoint-1.deleted.tmp"));
        Files.writeString(out.resolve("keep.tmp"), "a user's file: not ours, left alone");
        Shared.Run r = Shared.cli(train(out, "--save-every", "3"));
        assertEquals(0, r.code(), r.err());
        assertTrue(r.err().contains("removed 6 temporary file(s) left in " + out + " by an interrupted run"), r.err());
        assertEquals(List.of("keep.tmp"), tmps(out), "every temporary of ours is gone");
        assertEquals(List.of(out.resolve("checkpoint-6"), out.resolve("checkpoint-3")), Checkpoints.list(out));
        for (Path c : Checkpoints.list(out)) {
            Checkpoints.verify(c);
        }
        // a checkpoint directory left half-built by a kill while writing it: the resumed run skips it
        Files.createDirectories(out.resolve("checkpoint-6.tmp"));
        Files.write(out.resolve("checkpoint-6.tmp/adapter_model.safetensors"), new byte[10]);
        Shared.Run res = Shared.cli("train", "--model", Shared.stories().toString(), "--resume", out.toString(), "-o", out.toString());
        assertEquals(0, res.code(), res.err());
        assertEquals(List.of("keep.tmp"), tmps(out));
    }

    @Test
    void saveTotalLimitKeepsTheNewestCheckpoints(@TempDir Path dir) throws IOException {
        Path out = dir.resolve("run");
        Shared.Run r = Shared.cli(train(out, "--steps", "12", "--save-every", "2", "--save-total-limit", "2"));
        assertEquals(0, r.code(), r.err());
        assertEquals(List.of(out.resolve("checkpoint-12"), out.resolve("checkpoint-10")), Checkpoints.list(out));
        assertEquals(List.of(), tmps(out));
        // a resumed run keeps rotating, and never counts (or removes) another run's later checkpoints
        Path other = out.resolve("checkpoint-40");
        Files.createDirectories(other);
        Shared.Run res = Shared.cli("train", "--model", Shared.stories().toString(), "--resume", out.resolve("checkpoint-10").toString(),
                "-o", out.toString(), "--save-every", "1", "--save-total-limit", "1");
        assertEquals(0, res.code(), res.err());
        assertEquals(List.of(other, out.resolve("checkpoint-12")), Checkpoints.list(out));
        CliErrorsTest.assertCleanError(Shared.cli(train(out, "--save-total-limit", "0")), 1, "--save-total-limit must be >= 1");
    }

    @Test
    void productionCodeWritesFilesOnlyThroughDurableFiles() {
        JavaClasses classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.lora4j");
        assertTrue(classes.contain("io.lora4j.cli.TrainCommand") && classes.contain("io.lora4j.model.format.GgufWriter"));
        noClasses().that().doNotHaveFullyQualifiedName(DurableFiles.class.getName())
                .should().callCodeUnitWhere(target(describe("a method of java.nio.file.Files that writes, or a java.io file writer",
                        t -> t.getOwner().isEquivalentTo(Files.class)
                                && t.getName().matches("write|writeString|move|copy|newOutputStream|newBufferedWriter|newByteChannel")
                                || t.getOwner().isEquivalentTo(FileOutputStream.class) || t.getOwner().isEquivalentTo(FileWriter.class)
                                || t.getOwner().isEquivalentTo(RandomAccessFile.class))))
                .because("every file lora4j writes goes temp file, force, atomic rename, directory force")
                .check(classes);
        // FileChannel.open can write too: only DurableFiles and the two readers that map or stream a file open one
        noClasses().that().doNotHaveFullyQualifiedName(DurableFiles.class.getName())
                .and().doNotHaveFullyQualifiedName("io.lora4j.model.format.Mapped")
                .and().doNotHaveFullyQualifiedName("io.lora4j.model.train.ArrowTables")
                .should().callMethod(FileChannel.class, "open", Path.class, java.nio.file.OpenOption[].class)
                .check(classes);
    }

    private static List<String> tmps(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith(".tmp")).sorted().toList();
        }
    }
}

package io.lora4j.cli;

import io.lora4j.model.format.ModelFormatException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;

/** The {@code lora4j} command. Errors in input are printed as one line, never as a stack trace. */
@Command(name = "lora4j", mixinStandardHelpOptions = true, version = "lora4j 0.1.0",
        description = "Pure-Java Llama inference and LoRA fine-tuning.",
        subcommands = {GenerateCommand.class, ChatCommand.class, TrainCommand.class, DemoCommand.class, MergeCommand.class, AdaptersCommand.class, TokenizeCommand.class, InspectCommand.class, BenchCommand.class, ServeCommand.class, BenchServeCommand.class,
                CreateModelCommand.class, ConvertCommand.class, DevicesCommand.class, CommandLine.HelpCommand.class})
public final class Main {

    public static void main(String[] args) {
        if (System.getProperty("slf4j.internal.verbosity") == null) {
            System.setProperty("slf4j.internal.verbosity", "ERROR"); // Arrow Java logs through slf4j; no provider is bundled
        }
        System.exit(run(args));
    }

    /** Runs the command line and returns the exit code (0 ok, 1 failed, 2 usage error). */
    public static int run(String... args) {
        CommandLine cli = new CommandLine(new Main());
        cli.setExecutionExceptionHandler((e, cmd, parsed) -> {
            if (e instanceof ModelFormatException || e instanceof IllegalArgumentException
                    || e instanceof IOException || e instanceof UncheckedIOException
                    || e instanceof IllegalStateException) {
                String msg = e instanceof UncheckedIOException u ? unchecked(u) : e instanceof IOException io ? message(io) : e.getMessage();
                cmd.getErr().println("error: " + msg);
                cmd.getErr().flush();
                return 1;
            }
            throw e;
        });
        return cli.execute(args);
    }

    /** The library's own message ("cannot write adapter to …: …"), or its cause's when it has none. */
    private static String unchecked(UncheckedIOException u) {
        IOException c = u.getCause();
        return u.getMessage() == null || u.getMessage().equals(c.toString()) ? message(c) : u.getMessage();
    }

    /** What happened to which file: NoSuchFileException and its kind carry only the path as their message. */
    static String message(IOException e) {
        if (!(e instanceof FileSystemException f) || f.getReason() != null) {
            return e.getMessage() != null ? e.getMessage() : e.toString();
        }
        String what = switch (f) {
            case NoSuchFileException x -> "no such file or directory";
            case AccessDeniedException x -> "permission denied";
            case FileAlreadyExistsException x -> "already exists";
            case NotDirectoryException x -> "not a directory";
            case DirectoryNotEmptyException x -> "directory not empty";
            default -> "file system error";
        };
        return f.getMessage() + ": " + what;
    }
}

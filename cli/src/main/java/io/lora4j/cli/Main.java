package io.lora4j.cli;

import io.lora4j.model.format.ModelFormatException;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.io.UncheckedIOException;

/** The {@code lora4j} command. Errors in input are printed as one line, never as a stack trace. */
@Command(name = "lora4j", mixinStandardHelpOptions = true, version = "lora4j 0.1.0",
        description = "Pure-Java Llama inference and LoRA fine-tuning.",
        subcommands = {GenerateCommand.class, ChatCommand.class, TrainCommand.class, DemoCommand.class, MergeCommand.class, AdaptersCommand.class, TokenizeCommand.class, InspectCommand.class, BenchCommand.class,
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
                String msg = e instanceof UncheckedIOException u ? u.getCause().toString() : e.getMessage();
                cmd.getErr().println("error: " + msg);
                cmd.getErr().flush();
                return 1;
            }
            throw e;
        });
        return cli.execute(args);
    }
}

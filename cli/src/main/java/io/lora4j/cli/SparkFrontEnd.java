package io.lora4j.cli;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;

/**
 * {@code lora4j train --spark-master URL}: runs the training as the Spark job of the {@code spark} module
 * ({@code io.lora4j.spark.SparkTrain}) in a child JVM, with Spark's jars from {@code $SPARK_HOME/jars}
 * or, in a source checkout, from the build ({@code spark/target/spark-classpath.txt}). The main jar
 * carries no Spark.
 */
final class SparkFrontEnd {
    private SparkFrontEnd() {
    }

    /** Options of train the Spark job does not take (it trains a fresh LoRA adapter from --data on the JVM). */
    private static final Set<String> UNSUPPORTED = Set.of("--eval-data", "--adapter", "--method", "--quantize", "--double-quant",
            "--backend", "--device", "--tokenizer");

    static int run(List<String> trainArgs, String master, int tasks) throws IOException, InterruptedException {
        List<String> args = new ArrayList<>();
        String output = null;
        String resume = null;
        for (int i = 0; i < trainArgs.size(); i++) {
            String a = trainArgs.get(i);
            String name = a.contains("=") ? a.substring(0, a.indexOf('=')) : a;
            if (name.equals("--spark-master") || name.equals("--spark-tasks")) {
                i += a.contains("=") ? 0 : 1;
                continue;
            }
            if (UNSUPPORTED.contains(name)) {
                throw new IllegalArgumentException(name + " is not supported with --spark-master (the Spark job trains a fresh "
                        + "LoRA adapter from --data on the JVM)");
            }
            if (name.equals("--resume")) {
                resume = a.contains("=") ? a.substring(a.indexOf('=') + 1) : trainArgs.get(++i);
                continue;
            }
            if (name.equals("-o") || name.equals("--output")) {
                output = a.contains("=") ? a.substring(a.indexOf('=') + 1) : trainArgs.get(++i);
                continue;
            }
            args.add(a);
        }
        if (!args.contains("--data") && args.stream().noneMatch(x -> x.startsWith("--data="))) {
            throw new IllegalArgumentException("--spark-master needs --data (files or directories every executor can read)");
        }
        if (resume != null) {
            if (output != null && !output.equals(resume)) {
                throw new IllegalArgumentException("with --spark-master, --resume DIR continues the run whose --output is DIR");
            }
            output = resume;
            args.add("--resume");
        }
        args.addAll(List.of("-o", output != null ? output : "lora-out", "--spark-master", master, "--tasks", Integer.toString(tasks)));

        Path home = Path.of(System.getProperty("lora4j.home", ".")).toAbsolutePath();
        Path job = home.resolve("spark/target/lora4j-spark.jar");
        if (!Files.isRegularFile(job)) {
            throw new IllegalArgumentException("the Spark job jar " + job + " is missing: build it with "
                    + "`mvn -B -DskipTests -pl spark -am package` (JDK 25)");
        }
        String sparkJars;
        String sparkHome = System.getenv("SPARK_HOME");
        if (sparkHome != null && Files.isDirectory(Path.of(sparkHome, "jars"))) {
            sparkJars = Path.of(sparkHome, "jars").toString() + "/*";
        } else if (Files.isRegularFile(home.resolve("spark/target/spark-classpath.txt"))) {
            sparkJars = Files.readString(home.resolve("spark/target/spark-classpath.txt")).strip();
        } else {
            throw new IllegalArgumentException("no Spark found: set SPARK_HOME, or build the spark module (its classpath file)");
        }
        List<String> cmd = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "--enable-native-access=ALL-UNNAMED", "--sun-misc-unsafe-memory-access=allow"));
        for (String pkg : List.of("java.lang", "java.lang.invoke", "java.io", "java.net", "java.nio", "java.util", "java.util.concurrent",
                "java.util.concurrent.atomic", "sun.nio.ch", "sun.nio.cs", "sun.util.calendar")) {
            cmd.add("--add-opens=java.base/" + pkg + "=ALL-UNNAMED");
        }
        cmd.addAll(List.of("-Djdk.reflect.useDirectMethodHandle=false", "-Dio.netty.tryReflectionSetAccessible=true",
                "-Dlora4j.home=" + home, "-cp", job + java.io.File.pathSeparator + sparkJars, "io.lora4j.spark.SparkTrain"));
        cmd.addAll(args);
        return new ProcessBuilder(cmd).inheritIO().start().waitFor();
    }
}

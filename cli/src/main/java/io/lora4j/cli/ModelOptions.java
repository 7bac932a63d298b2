package io.lora4j.cli;

import io.lora4j.model.Backend;
import io.lora4j.model.LoadedModel;
import picocli.CommandLine.Option;

import java.nio.file.Files;
import java.nio.file.Path;

/** Options shared by every command that loads a model. */
public final class ModelOptions {

    @Option(names = {"-m", "--model"}, paramLabel = "PATH",
            description = "GGUF file, HF model directory (config.json + safetensors), llama2.c .bin or Arrow file from `convert` "
                    + "(default: the embedded stories260K from ../shared/models).")
    Path model;

    @Option(names = "--tokenizer", paramLabel = "PATH",
            description = "tokenizer.model (SentencePiece or tiktoken), tokenizer.json or llama2.c tokenizer.bin; "
                    + "default: the model's own.")
    Path tokenizer;

    @Option(names = "--backend", defaultValue = "jvm", paramLabel = "NAME",
            description = "Where the kernels run: jvm (default; Vector API on the CPU), tornado (TornadoVM task graphs "
                    + "on a GPU or other OpenCL/PTX device; needs tornado-env.sh) or auto (a TornadoVM GPU when present, else jvm).")
    String backend;

    @Option(names = "--device", paramLabel = "N",
            description = "TornadoVM device number (see lora4j devices); default: TornadoVM's default device.")
    Integer device;

    @Option(names = {"-t", "--threads"}, paramLabel = "N",
            description = "Worker threads (default: all cores).")
    Integer threads;

    /** The default model, relative to the checkout. */
    static final String DEFAULT_MODEL = "../shared/models/stories260K/stories260K.gguf";

    /** The --tokenizer override, or null. */
    public Path tokenizerPath() {
        return tokenizer;
    }

    /** The model path, or the default model when none was given. */
    public Path modelPath() {
        if (model != null) {
            return model;
        }
        String home = System.getProperty("lora4j.home", ".");
        Path p = Path.of(home).resolve(DEFAULT_MODEL).normalize();
        if (!Files.exists(p)) {
            throw new IllegalArgumentException("no --model given and the default model " + p + " does not exist");
        }
        return p;
    }

    /** The model as the user named it: the --model path as typed, or the default model's documented name. */
    String modelName() {
        return model != null ? model.toString() : DEFAULT_MODEL;
    }

    /** Applies --threads (must run before the first kernel call) and opens the model. */
    public LoadedModel open() {
        applyThreads();
        return LoadedModel.open(modelPath(), modelName(), tokenizer, io.lora4j.model.Quantization.NONE);
    }

    /** As {@link #open()}, the block projections quantized on load as {@code q} says. */
    LoadedModel open(QuantizeOptions q) {
        io.lora4j.model.Quantization quant = q.quantization(); // usage errors before the file is read
        applyThreads();
        return LoadedModel.open(modelPath(), modelName(), tokenizer, quant);
    }

    void applyThreads() {
        if (threads != null) {
            if (threads < 1) {
                throw new IllegalArgumentException("--threads must be >= 1");
            }
            System.setProperty("lora4j.threads", Integer.toString(threads));
        }
    }

    Backend backend() {
        return Backend.named(backend, device, msg -> System.err.println(msg));
    }
}

package io.lora4j.model.format;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;

/** Opens any supported weight file by looking at it: a HF directory, a GGUF, an Arrow model, a llama2.c {@code .bin}. */
public final class ModelFiles {
    private ModelFiles() {
    }

    public static WeightSource open(Path p) {
        if (!Files.exists(p)) {
            throw new ModelFormatException(p, "no such file");
        }
        if (Files.isDirectory(p)) {
            return HfModel.open(p);
        }
        byte[] magic = new byte[6];
        int n;
        try (InputStream in = Files.newInputStream(p)) {
            n = in.readNBytes(magic, 0, magic.length);
        } catch (IOException e) {
            throw new ModelFormatException(p, "cannot read: " + e.getMessage(), e);
        }
        if (n >= 4 && magic[0] == 'G' && magic[1] == 'G' && magic[2] == 'U' && magic[3] == 'F') {
            return GgufFile.open(p);
        }
        if (ArrowModel.hasMagic(magic, n)) {
            return ArrowModel.open(p);
        }
        String name = p.getFileName().toString().toLowerCase(java.util.Locale.ROOT);
        if (name.endsWith(".bin")) {
            return Llama2cFile.open(p);
        }
        if (name.endsWith(".safetensors") || name.endsWith(".safetensors.index.json")) {
            Path dir = p.toAbsolutePath().getParent();
            if (!Files.exists(dir.resolve("config.json"))) {
                throw new ModelFormatException(p, "a safetensors file needs config.json beside it (a HuggingFace model directory)");
            }
            return HfModel.open(dir);
        }
        if (name.endsWith(".gguf")) {
            return GgufFile.open(p); // reports the bad magic
        }
        if (name.endsWith(".arrow")) {
            return ArrowModel.open(p); // reports the bad magic
        }
        throw new ModelFormatException(p, "unrecognized model file; accepted: a GGUF file (magic \"GGUF\"), an Arrow model (magic \"ARROW1\"), a llama2.c checkpoint (.bin), "
                + "or a HuggingFace directory with config.json and model.safetensors (or its index)");
    }
}

package io.lora4j.model.format;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;

class ModelFilesTest {
    @TempDir
    Path tmp;

    @Test
    void dispatchesByContent() throws IOException {
        try (WeightSource s = ModelFiles.open(TestFiles.stories260kGguf())) {
            assertInstanceOf(GgufFile.class, s);
        }
        try (WeightSource s = ModelFiles.open(TestFiles.stories260kBin())) {
            assertInstanceOf(Llama2cFile.class, s);
            assertEquals(512, s.config().vocabSize());
        }
        // a GGUF under another name is still a GGUF
        Path renamed = Files.copy(TestFiles.tinyRandomGguf(), tmp.resolve("weights.model"));
        try (WeightSource s = ModelFiles.open(renamed)) {
            assertEquals("gguf", s.format());
        }
    }

    @Test
    void errors() throws IOException {
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> ModelFiles.open(tmp.resolve("missing.gguf")));
        assertTrue(e.getMessage().contains("missing.gguf") && e.getMessage().contains("no such file"), e.getMessage());
        Path txt = Files.writeString(tmp.resolve("notes.txt"), "hello");
        e = assertThrows(ModelFormatException.class, () -> ModelFiles.open(txt));
        assertTrue(e.getMessage().contains("notes.txt") && e.getMessage().contains("accepted"), e.getMessage());
        Path st = Files.copy(TestFiles.adapter(), tmp.resolve("lonely.safetensors"));
        e = assertThrows(ModelFormatException.class, () -> ModelFiles.open(st));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
        Path emptyDir = Files.createDirectory(tmp.resolve("empty"));
        e = assertThrows(ModelFormatException.class, () -> ModelFiles.open(emptyDir));
        assertTrue(e.getMessage().contains("config.json"), e.getMessage());
    }
}

package io.lora4j.model.train;

import io.lora4j.model.Llama;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.PeftAdapters;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Stop after step k, resume from the checkpoint: the same adapter as the uninterrupted run, bit for bit. */
class CheckpointResumeTest {

    static TrainConfig cfg() {
        return new TrainConfig("adamw", 1e-2f, 0.01f, 0.9f, 0.999f, 1e-8f, "cosine", 2, 10, 2, 2, 1f, 16, 5, true, false, 0, 0f);
    }

    @Test
    void interruptedAndResumedEqualsUninterrupted(@TempDir Path dir) {
        List<Example> data = TrainerTest.data(5, 8, 3); // 5 sequences, 4 per step: epochs wrap mid-run
        Llama m = TrainerTest.model();
        Trainer full = new Trainer(m, TrainerTest.adapter(m, 0.1f), cfg(), data, List.of());
        List<Double> fullLosses = new ArrayList<>();
        for (int i = 0; i < 10; i++) {
            fullLosses.add(full.trainStep().loss());
        }

        Llama m2 = TrainerTest.model();
        Trainer first = new Trainer(m2, TrainerTest.adapter(m2, 0.1f), cfg(), data, List.of());
        List<Double> losses = new ArrayList<>();
        for (int i = 0; i < 4; i++) {
            losses.add(first.trainStep().loss());
        }
        Checkpoints.save(first, dir);
        for (int i = 0; i < 2; i++) {
            first.trainStep(); // work after the checkpoint that is lost in the "crash"
        }
        Path latest = Checkpoints.latestValid(dir, w -> { });
        assertEquals("checkpoint-4", latest.getFileName().toString());
        Trainer resumed = Checkpoints.resume(latest, TrainerTest.model(), data, List.of());
        assertEquals(4, resumed.step());
        while (resumed.step() < 10) {
            losses.add(resumed.trainStep().loss());
        }
        assertEquals(fullLosses, losses, "loss curve");
        assertAdaptersEqual(full.adapter(), resumed.adapter());
    }

    @Test
    void aCheckpointResumesOnlyOnTheQuantizationItWasTrainedOn(@TempDir Path dir) {
        List<Example> data = TrainerTest.data(5, 8, 3);
        Llama nf4 = new Llama(TrainerTest.model().source(), io.lora4j.model.Quantization.parse("nf4", true));
        Trainer t = new Trainer(nf4, TrainerTest.adapter(nf4, 0f), cfg(), data, List.of());
        t.trainStep();
        Path c = Checkpoints.save(t, dir);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Checkpoints.resume(c, TrainerTest.model(), data, List.of()));
        assertTrue(e.getMessage().contains("trained on the base loaded with --quantize nf4+dq, this run loads it with --quantize none"),
                e.getMessage());
        Llama again = new Llama(TrainerTest.model().source(), io.lora4j.model.Quantization.parse("nf4", true));
        assertEquals(1, Checkpoints.resume(c, again, data, List.of()).step());
    }

    @Test
    void aCorruptedCheckpointIsReportedAndThePreviousOneUsed(@TempDir Path dir) throws Exception {
        List<Example> data = TrainerTest.data(5, 8, 3);
        Llama m = TrainerTest.model();
        Trainer t = new Trainer(m, TrainerTest.adapter(m, 0f), cfg(), data, List.of());
        t.trainStep();
        Checkpoints.save(t, dir);
        t.trainStep();
        Path second = Checkpoints.save(t, dir);
        byte[] opt = Files.readAllBytes(second.resolve(Checkpoints.OPTIMIZER));
        opt[opt.length - 3] ^= 1;
        Files.write(second.resolve(Checkpoints.OPTIMIZER), opt);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoints.verify(second));
        assertTrue(e.getMessage().contains("optimizer.safetensors") && e.getMessage().contains("hash"), e.getMessage());
        List<String> warnings = new ArrayList<>();
        Path used = Checkpoints.latestValid(dir, warnings::add);
        assertEquals("checkpoint-1", used.getFileName().toString());
        assertEquals(1, warnings.size());
        // an unfinished write (the .tmp directory) is never taken for a checkpoint
        Files.createDirectories(dir.resolve("checkpoint-9.tmp"));
        assertEquals("checkpoint-1", Checkpoints.latestValid(dir, w -> { }).getFileName().toString());
    }

    @Test
    void aResumedAdaLoraRunEqualsTheUninterruptedOneByteForByte(@TempDir Path dir) throws Exception {
        // total 10, tinit 1, tfinal 2: the checkpoint at step 4 falls in the budgeting phase (scores and masks in flight)
        List<Example> data = TrainerTest.data(5, 8, 3);
        Llama m = TrainerTest.model();
        Trainer full = new Trainer(m, TrainerTest.adaLora(m, 10), cfg(), data, List.of());
        List<Double> fullLosses = stepsUntil(full, 10, new ArrayList<>());
        Llama m2 = TrainerTest.model();
        Trainer first = new Trainer(m2, TrainerTest.adaLora(m2, 10), cfg(), data, List.of());
        List<Double> losses = stepsUntil(first, 4, new ArrayList<>());
        assertTrue(first.adapter().rankPattern() != null, "masking has started");
        Path ck = Checkpoints.save(first, dir.resolve("run"));
        assertTrue(Files.exists(ck.resolve(Checkpoints.ALLOCATOR)));
        Trainer resumed = Checkpoints.resume(ck, TrainerTest.model(), data, List.of());
        stepsUntil(resumed, 10, losses);
        assertEquals(fullLosses, losses, "loss curve");
        assertAdaptersEqual(full.adapter(), resumed.adapter());
        Llama m3 = TrainerTest.model();
        PeftAdapters.save(full.adapter(), m3, dir.resolve("a"));
        PeftAdapters.save(resumed.adapter(), m3, dir.resolve("b"));
        for (String f : new String[]{PeftAdapters.CONFIG, PeftAdapters.WEIGHTS}) {
            assertArrayEquals(Files.readAllBytes(dir.resolve("a").resolve(f)), Files.readAllBytes(dir.resolve("b").resolve(f)), f);
        }
        // the allocator state is covered by the checkpoint's hashes
        byte[] st = Files.readAllBytes(ck.resolve(Checkpoints.ALLOCATOR));
        st[st.length - 1] ^= 1;
        Files.write(ck.resolve(Checkpoints.ALLOCATOR), st);
        ModelFormatException e = assertThrows(ModelFormatException.class, () -> Checkpoints.verify(ck));
        assertTrue(e.getMessage().contains(Checkpoints.ALLOCATOR), e.getMessage());
    }

    /**
     * LoRA+ (ratio 16, lora_B biases in their no-decay group) and PiSSA with fast SVD: the checkpoint
     * keeps the ratio (the resumed trainer takes it from there) and the initial adapter, from which the
     * resumed run rebuilds the same residual base; the resumed run ends with the same adapter files, byte
     * for byte.
     */
    @Test
    void loraPlusAndPissaRunsResumeByteForByte(@TempDir Path dir) throws Exception {
        List<Example> data = TrainerTest.data(5, 8, 3);
        TrainConfig cfg = cfg().withLoraplusLrRatio(16f);
        for (String init : new String[]{"true", "pissa_niter_1"}) {
            io.lora4j.model.lora.LoraConfig lc = new io.lora4j.model.lora.LoraConfig(4, 8f, 0f,
                    io.lora4j.model.lora.LoraConfig.ALL_LINEAR, null, init.equals("true") ? "lora_only" : "none", false, init,
                    List.of(), java.util.Map.of(), java.util.Map.of(), List.of());
            Llama m = TrainerTest.model();
            Trainer full = new Trainer(m, new LoraAdapter("default", lc, m, 3), cfg, data, List.of());
            List<Double> fullLosses = stepsUntil(full, 10, new ArrayList<>());
            Llama m2 = TrainerTest.model();
            Trainer first = new Trainer(m2, new LoraAdapter("default", lc, m2, 3), cfg, data, List.of());
            List<Double> losses = stepsUntil(first, 4, new ArrayList<>());
            Path ck = Checkpoints.save(first, dir.resolve(init));
            assertEquals(16f, Checkpoints.config(ck).loraplusLrRatio());
            assertEquals(!init.equals("true"), Files.isDirectory(ck.resolve(PeftAdapters.INITIAL)), init);
            Trainer resumed = Checkpoints.resume(ck, TrainerTest.model(), data, List.of());
            assertEquals(16f, resumed.config().loraplusLrRatio());
            stepsUntil(resumed, 10, losses);
            assertEquals(fullLosses, losses, init + ": loss curve");
            assertAdaptersEqual(full.adapter(), resumed.adapter());
            Path a = dir.resolve(init + "-a"), b = dir.resolve(init + "-b");
            PeftAdapters.save(full.adapter(), m, a);
            PeftAdapters.save(resumed.adapter(), m, b);
            for (String f : new String[]{PeftAdapters.CONFIG, PeftAdapters.WEIGHTS}) {
                assertArrayEquals(Files.readAllBytes(a.resolve(f)), Files.readAllBytes(b.resolve(f)), init + " " + f);
            }
        }
    }

    /** Trains until step {@code until}, adding each step's loss to {@code losses}. */
    static List<Double> stepsUntil(Trainer t, int until, List<Double> losses) {
        while (t.step() < until) {
            losses.add(t.trainStep().loss());
        }
        return losses;
    }

    static void assertAdaptersEqual(LoraAdapter a, LoraAdapter b) {
        assertEquals(a.layers().size(), b.layers().size());
        for (int i = 0; i < a.layers().size(); i++) {
            LoraLayer x = a.layers().get(i), y = b.layers().get(i);
            assertArrayEquals(x.a.toArray(), y.a.toArray(), x.path() + " A");
            assertArrayEquals(x.b.toArray(), y.b.toArray(), x.path() + " B");
            assertEquals(x.e == null, y.e == null, x.path() + " E");
            if (x.e != null) {
                assertArrayEquals(x.e.toArray(), y.e.toArray(), x.path() + " E");
            }
        }
        assertEquals(a.rankPattern() == null, b.rankPattern() == null);
        if (a.rankPattern() != null) {
            for (var e : a.rankPattern().entrySet()) {
                assertArrayEquals(e.getValue(), b.rankPattern().get(e.getKey()), e.getKey());
            }
        }
    }
}

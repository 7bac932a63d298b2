package io.lora4j.model.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Weight;
import io.lora4j.model.Llama;
import io.lora4j.model.format.DurableFiles;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.SafetensorsWriter;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.ParamStore;
import io.lora4j.model.lora.BottleneckAdapters;
import io.lora4j.model.lora.PeftAdapters;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Training checkpoints: {@code <out>/checkpoint-<step>/} holds the adapter (PEFT files), the
 * optimizer moments ({@code optimizer.safetensors}) and {@code trainer_state.json} (step, data
 * cursor and order, the trainer settings, and a SHA-256 of every other file). A checkpoint is
 * built in a temporary directory, forced to the device and renamed ({@link DurableFiles}), so a
 * crash or power loss leaves either the old one or the new one;
 * on resume a checkpoint whose files do not match their hashes is reported and the previous one used.
 * Dropout masks and data order derive from (seed, step, epoch), so resuming reproduces the
 * uninterrupted run bit for bit.
 * <p>
 * An AdaLoRA run keeps every init_r triplet in the checkpoint's adapter (written without
 * rank_pattern, pruned triplets at E = 0, so PEFT still loads it), the rank allocator's EMAs in
 * {@code rank_allocator.safetensors} and its rank pattern in {@code trainer_state.json}.
 * <p>
 * A PiSSA/OLoRA run keeps its adapter unconverted and the initial values in {@code initial/}; resuming
 * rebuilds the same residual base from them.
 */
public final class Checkpoints {
    public static final String STATE = "trainer_state.json";
    public static final String OPTIMIZER = "optimizer.safetensors";
    public static final String ALLOCATOR = "rank_allocator.safetensors";
    private static final String PREFIX = "checkpoint-";

    private Checkpoints() {
    }

    /** Writes the trainer's state to {@code out/checkpoint-<step>}; returns that directory. */
    public static Path save(Trainer t, Path out) {
        return save(t, out, Map.of());
    }

    /**
     * Writes the trainer's state to {@code out/checkpoint-<step>}, with {@code extra} files (name →
     * bytes, e.g. the metrics logged so far) hashed like the others; returns that directory. The
     * directory is built as {@code checkpoint-<step>.tmp} (leftovers of killed runs are removed
     * first), every file forced to the device, then renamed in one step ({@link DurableFiles}).
     */
    public static Path save(Trainer t, Path out, Map<String, byte[]> extra) {
        t.sync();
        Path dir = out.resolve(PREFIX + t.step());
        try {
            Files.createDirectories(out);
            DurableFiles.removeLeftovers(out, n -> n.startsWith(PREFIX));
            Path tmp = DurableFiles.tempDirectory(dir);
            PeftAdapters.saveCheckpoint(t.adapter(), t.model(), tmp);
            SafetensorsWriter w = new SafetensorsWriter();
            for (ParamStore.View p : t.params()) {
                if (t.firstMoments() != null) {
                    w.add(p.name() + ".m", new long[]{p.len()}, Arrays.copyOfRange(t.firstMoments(), p.off(), p.off() + p.len()));
                }
                if (t.secondMoments() != null) {
                    w.add(p.name() + ".v", new long[]{p.len()}, Arrays.copyOfRange(t.secondMoments(), p.off(), p.off() + p.len()));
                }
            }
            w.write(tmp.resolve(OPTIMIZER));
            if (t.allocator() != null) {
                SafetensorsWriter aw = new SafetensorsWriter();
                t.allocator().state().forEach((k, v) -> aw.add(k, new long[]{v.length}, v));
                aw.write(tmp.resolve(ALLOCATOR));
            }
            for (Map.Entry<String, byte[]> e : extra.entrySet()) {
                if (e.getKey().equals(STATE) || files(true, true, false).contains(e.getKey())
                        || e.getKey().equals(BottleneckAdapters.WEIGHTS) || e.getKey().contains("/")) {
                    throw new IllegalArgumentException("a checkpoint's extra file cannot be called " + e.getKey());
                }
                DurableFiles.write(tmp.resolve(e.getKey()), e.getValue());
            }
            Trainer.Cursor c = t.cursor();
            ObjectMapper json = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
            ObjectNode st = json.createObjectNode();
            st.put("step", c.step());
            st.put("epoch", c.epoch());
            st.put("cursor", c.cursor());
            ArrayNode order = st.putArray("order");
            for (int i : c.order()) {
                order.add(i);
            }
            st.set("config", json.valueToTree(t.config()));
            if (t.allocator() != null) {
                Map<String, boolean[]> pattern = t.adapter().rankPattern();
                ObjectNode ada = st.putObject("adalora");
                if (pattern == null) {
                    ada.putNull("rank_pattern");
                } else {
                    ObjectNode rp = ada.putObject("rank_pattern");
                    pattern.forEach((k, v) -> {
                        ArrayNode flags = rp.putArray(k);
                        for (boolean f : v) {
                            flags.add(f);
                        }
                    });
                }
            }
            st.put("quantize", t.model().quantization().label());
            ObjectNode hashes = st.putObject("sha256");
            for (String f : files(t.allocator() != null, t.adapter().initialValues() != null, t.adapter().bottleneckConfig() != null)) {
                hashes.put(f, sha256(tmp.resolve(f)));
            }
            for (String f : extra.keySet()) {
                hashes.put(f, sha256(tmp.resolve(f)));
            }
            DurableFiles.write(tmp.resolve(STATE), json.writeValueAsBytes(st));
            DurableFiles.publishDirectory(tmp, dir);
            return dir;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write checkpoint " + dir + ": " + e.getMessage(), e);
        }
    }

    /**
     * Hugging Face Trainer's {@code save_total_limit}: keeps the newest {@code limit} checkpoints
     * under {@code out} among those of steps up to {@code step} (the one just saved and older) and
     * removes the rest, each renamed aside before it is deleted so that a crash part-way never
     * leaves a half-deleted checkpoint under its name. Checkpoints of later steps (another run's)
     * are left alone. Returns the removed directories.
     */
    public static List<Path> rotate(Path out, int limit, int step) {
        if (limit < 1) {
            throw new IllegalArgumentException("save_total_limit must be >= 1, got " + limit);
        }
        List<Path> older = list(out).stream().filter(p -> stepOf(p) <= step).toList();
        List<Path> removed = older.subList(Math.min(limit, older.size()), older.size());
        try {
            for (Path p : removed) {
                DurableFiles.remove(p);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("cannot remove old checkpoint: " + e.getMessage(), e);
        }
        return removed;
    }

    /** Checkpoint directories under {@code out}, newest step first. */
    public static List<Path> list(Path out) {
        if (!Files.isDirectory(out)) {
            return List.of();
        }
        try (Stream<Path> s = Files.list(out)) {
            return s.filter(p -> p.getFileName().toString().matches(PREFIX + "\\d+") && Files.isDirectory(p))
                    .sorted((a, b) -> Integer.compare(stepOf(b), stepOf(a))).toList();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static int stepOf(Path p) {
        return Integer.parseInt(p.getFileName().toString().substring(PREFIX.length()));
    }

    /** The trainer settings a checkpoint was made with. */
    public static TrainConfig config(Path checkpoint) {
        try {
            return new ObjectMapper().treeToValue(read(checkpoint).get("config"), TrainConfig.class);
        } catch (IOException e) {
            throw new ModelFormatException(checkpoint.resolve(STATE), "unreadable trainer settings: " + e.getMessage());
        }
    }

    private static JsonNode read(Path checkpoint) {
        Path f = checkpoint.resolve(STATE);
        try {
            return new ObjectMapper().readTree(Files.readAllBytes(f));
        } catch (IOException e) {
            throw new ModelFormatException(f, "missing or unreadable: " + e.getMessage());
        }
    }

    /** The files a checkpoint's hashes cover (a PiSSA/OLoRA adapter's initial values too; a bottleneck adapter's AdapterHub weights). */
    private static List<String> files(boolean adaLora, boolean initial, boolean bottleneck) {
        List<String> f = new ArrayList<>(List.of(PeftAdapters.CONFIG, bottleneck ? BottleneckAdapters.WEIGHTS : PeftAdapters.WEIGHTS,
                OPTIMIZER));
        if (adaLora) {
            f.add(ALLOCATOR);
        }
        if (initial) {
            f.add(PeftAdapters.INITIAL + "/" + PeftAdapters.CONFIG);
            f.add(PeftAdapters.INITIAL + "/" + PeftAdapters.WEIGHTS);
        }
        return f;
    }

    /** Checks a checkpoint's files against the hashes in its state; a ModelFormatException names the bad file. */
    public static void verify(Path checkpoint) {
        JsonNode st = read(checkpoint);
        java.util.Set<String> hashed = new java.util.LinkedHashSet<>(files(st.has("adalora"),
                st.path("sha256").has(PeftAdapters.INITIAL + "/" + PeftAdapters.CONFIG), st.path("sha256").has(BottleneckAdapters.WEIGHTS)));
        st.path("sha256").fieldNames().forEachRemaining(hashed::add);
        for (String f : hashed) {
            if (Path.of(f).isAbsolute() || Path.of(f).normalize().startsWith("..") || f.contains("\\")) {
                throw new ModelFormatException(checkpoint.resolve(STATE), "hashes a file outside the checkpoint: " + f);
            }
            String want = st.path("sha256").path(f).asText("");
            String got;
            try {
                got = sha256(checkpoint.resolve(f));
            } catch (IOException e) {
                throw new ModelFormatException(checkpoint.resolve(f), "missing from the checkpoint");
            }
            if (!want.equals(got)) {
                throw new ModelFormatException(checkpoint.resolve(f), "does not match the checkpoint's hash (partial or corrupted write)");
            }
        }
    }

    /**
     * The newest checkpoint under {@code out} whose files verify; broken newer ones are reported
     * through {@code warn} and skipped.
     */
    public static Path latestValid(Path out, java.util.function.Consumer<String> warn) {
        List<String> problems = new ArrayList<>();
        for (Path c : list(out)) {
            try {
                verify(c);
                return c;
            } catch (ModelFormatException e) {
                warn.accept("skipping " + c.getFileName() + ": " + e.getMessage());
                problems.add(e.getMessage());
            }
        }
        throw new IllegalArgumentException("no usable checkpoint in " + out + (problems.isEmpty() ? "" : ": " + problems));
    }

    /**
     * A trainer continuing from {@code checkpoint}: its adapter, moments, step and data cursor,
     * with the same data (the caller passes the examples the original run used).
     */
    public static Trainer resume(Path checkpoint, Llama model, List<Example> train, List<Example> eval) {
        return resume(checkpoint, model, train, eval, null);
    }

    /** {@link #resume(Path, Llama, List, List)} with the steps on {@code backend} (null: the JVM). */
    public static Trainer resume(Path checkpoint, Llama model, List<Example> train, List<Example> eval,
                                 io.lora4j.model.Backend backend) {
        verify(checkpoint);
        JsonNode st = read(checkpoint);
        String quant = st.path("quantize").asText("none");
        if (!quant.equals(model.quantization().label())) {
            throw new IllegalArgumentException("checkpoint " + checkpoint + " was trained on the base loaded with --quantize " + quant
                    + ", this run loads it with --quantize " + model.quantization().label() + "; resume with the same quantization");
        }
        TrainConfig cfg = config(checkpoint);
        Path initial = checkpoint.resolve(PeftAdapters.INITIAL);
        LoraAdapter adapter = PeftAdapters.load(checkpoint, model, "default", Files.isDirectory(initial) ? initial : null);
        Trainer t = new Trainer(model, adapter, cfg, train, eval, backend);
        try (SafetensorsFile opt = SafetensorsFile.open(checkpoint.resolve(OPTIMIZER))) {
            for (ParamStore.View p : t.params()) {
                restore(opt, p.name() + ".m", t.firstMoments(), p.off(), p.len(), checkpoint.resolve(OPTIMIZER));
                restore(opt, p.name() + ".v", t.secondMoments(), p.off(), p.len(), checkpoint.resolve(OPTIMIZER));
            }
        }
        if (t.allocator() != null) {
            if (!st.has("adalora")) {
                throw new ModelFormatException(checkpoint.resolve(STATE), "an AdaLoRA adapter but no rank allocator state");
            }
            try (SafetensorsFile al = SafetensorsFile.open(checkpoint.resolve(ALLOCATOR))) {
                for (var e : t.allocator().state().entrySet()) {
                    restore(al, e.getKey(), e.getValue(), checkpoint.resolve(ALLOCATOR));
                }
            }
            JsonNode rp = st.path("adalora").path("rank_pattern");
            if (rp.isObject()) {
                Map<String, boolean[]> pattern = new LinkedHashMap<>();
                rp.fields().forEachRemaining(e -> {
                    boolean[] flags = new boolean[e.getValue().size()];
                    for (int i = 0; i < flags.length; i++) {
                        flags[i] = e.getValue().get(i).asBoolean();
                    }
                    pattern.put(e.getKey(), flags);
                });
                adapter.setRankPattern(pattern);
            }
        }
        int[] order = new int[st.path("order").size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = st.path("order").get(i).asInt();
        }
        t.restore(new Trainer.Cursor(st.path("step").asInt(), st.path("epoch").asInt(), st.path("cursor").asInt(), order));
        return t;
    }

    private static void restore(SafetensorsFile f, String key, float[] dst, Path file) {
        if (dst != null) {
            restore(f, key, dst, 0, dst.length, file);
        }
    }

    /** State {@code key} into {@code dst[off..off+len)} (nothing when dst is null: the optimizer keeps no such state). */
    private static void restore(SafetensorsFile f, String key, float[] dst, int off, int len, Path file) {
        if (dst == null) {
            return;
        }
        TensorInfo t = f.tensors().get(key);
        if (t == null || t.elementCount() != len) {
            throw new ModelFormatException(file, "missing or mis-sized state " + key);
        }
        Dequant.row(new Weight(key, t.type(), t.data(), 1, len), 0, dst, off);
    }

    private static String sha256(Path f) throws IOException {
        try {
            MessageDigest md = MessageDigest.getInstance("SHA-256");
            return HexFormat.of().formatHex(md.digest(Files.readAllBytes(f)));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}

package io.lora4j.model;

import io.lora4j.kernels.Weight;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;

import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;
import java.util.function.ToLongFunction;

/**
 * Bytes per parameter of what a model holds: the base's block projections (the seven linear
 * layers, the ones {@code --quantize} quantizes) apart from the rest of the base (embedding, output
 * layer, norms), and, when training, the adapter (values and gradients), the optimizer state and
 * the activations.
 *
 * @param linearParams elements of the block projections
 * @param linearBytes  their bytes (quantization statistics included)
 * @param linearTypes  their element types, e.g. "NF4_DQ"
 * @param restParams   elements of every other tensor (a tied output counted once)
 * @param restBytes    their bytes as held
 * @param restTypes    their element types
 * @param training     the trainer's part, or null
 */
public record MemoryReport(long linearParams, long linearBytes, String linearTypes, long restParams, long restBytes,
                           String restTypes, Training training) {

    /**
     * @param trainable      trainable parameters (the adapter)
     * @param adapterBytes   their values and gradients
     * @param optimizerBytes optimizer moments
     * @param activations    saved activations for the longest sequence
     * @param scratch        backward scratch
     * @param tokens         the longest sequence
     * @param checkpointing  whether only layer inputs are saved
     */
    public record Training(long trainable, long adapterBytes, long optimizerBytes, long activations, long scratch, int tokens,
                           boolean checkpointing) {
    }

    /** The base as {@code m} holds it now (after quantization on load, {@link Llama#prepareForKbitTraining}, merges). */
    public static MemoryReport of(Llama m) {
        return of(m.source().tensors().values(), t -> {
            Weight w = m.weight(t.name());
            return w == null ? t.data().byteSize() : w.type().tensorBytes(w.rows(), w.cols());
        }, t -> {
            Weight w = m.weight(t.name());
            return (w == null ? t.type() : w.type()).name();
        });
    }

    /** What {@code src} takes as stored, or with its projections quantized by {@code q}, without quantizing anything. */
    public static MemoryReport of(WeightSource src, Quantization q) {
        return of(src.tensors().values(), t -> {
            if (q.none() || Llama.projection(t.name()) == null) {
                return t.data().byteSize();
            }
            q.check(t.name(), t.type(), src.path());
            Weight w = t.asWeight();
            return q.type().tensorBytes(w.rows(), w.cols());
        }, t -> q.none() || Llama.projection(t.name()) == null ? t.type().name() : q.type().name());
    }

    private static MemoryReport of(Collection<TensorInfo> tensors, ToLongFunction<TensorInfo> bytes,
                                   java.util.function.Function<TensorInfo, String> type) {
        long lp = 0, lb = 0, rp = 0, rb = 0;
        TreeSet<String> lt = new TreeSet<>(), rt = new TreeSet<>();
        for (TensorInfo t : tensors) {
            long b = bytes.applyAsLong(t);
            if (Llama.projection(t.name()) != null) {
                lp += t.elementCount();
                lb += b;
                lt.add(type.apply(t));
            } else {
                rp += t.elementCount();
                rb += b;
                rt.add(type.apply(t));
            }
        }
        return new MemoryReport(lp, lb, String.join("+", lt), rp, rb, String.join("+", rt), null);
    }

    public MemoryReport withTraining(Training t) {
        return new MemoryReport(linearParams, linearBytes, linearTypes, restParams, restBytes, restTypes, t);
    }

    public long baseParams() {
        return linearParams + restParams;
    }

    public long baseBytes() {
        return linearBytes + restBytes;
    }

    /** Bytes per parameter of the block projections. */
    public double linearBytesPerParam() {
        return per(linearBytes, linearParams);
    }

    private static double per(long bytes, long n) {
        return n == 0 ? 0 : (double) bytes / n;
    }

    /** The report, one item per line, as a table: part, type, MiB, bytes per parameter, parameters. */
    public List<String> lines() {
        List<String> out = new ArrayList<>();
        out.add(row("base block projections", linearTypes, linearBytes, linearParams, "param"));
        out.add(row("base rest (embedding, output, norms)", restTypes, restBytes, restParams, "param"));
        out.add(row("base total", "", baseBytes(), baseParams(), "param"));
        if (training != null) {
            Training t = training;
            out.add(row("adapter (values + gradients)", "F32", t.adapterBytes(), t.trainable(), "trainable param"));
            out.add(row("optimizer state", "F32", t.optimizerBytes(), t.trainable(), "trainable param"));
            out.add(row("activations (" + t.tokens() + " tokens" + (t.checkpointing() ? ", checkpointed" : "") + ")", "F32",
                    t.activations(), baseParams(), "base param") + String.format(Locale.ROOT, ", %,.0f bytes/token",
                    per(t.activations(), t.tokens())));
            out.add(row("backward scratch", "F32", t.scratch(), baseParams(), "base param"));
            out.add(row("total", "", baseBytes() + t.adapterBytes() + t.optimizerBytes() + t.activations() + t.scratch(),
                    baseParams(), "base param"));
        }
        return out;
    }

    private static String row(String part, String type, long bytes, long params, String per) {
        return String.format(Locale.ROOT, "%-40s %-12s %10.2f MiB %8.4f bytes/%s (%,d)", part, type, bytes / 1048576.0,
                per(bytes, params), per, params);
    }
}

package io.lora4j.model.lora;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Dora;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Weight;

import java.lang.foreign.MemorySegment;

/**
 * Merging one adapter branch into its base projection: {@code W + s·B·A} (AdaLoRA:
 * {@code W + s·B·(A ⊙ E)}; DoRA: {@code (m / ‖W₀ + s·B·A‖) ⊙ (W + s·B·A)}, the norm on the unmerged base
 * W₀ as PEFT takes it) as a new matrix, an F32 one or, with {@link Mode#REQUANTIZE}, one of the
 * base's quantized type (PEFT's {@code merge} with {@code safe_merge}: a non-finite result is refused).
 */
public final class Merge {
    private Merge() {
    }

    /** What merging does to a quantized projection. */
    public enum Mode {
        /** Float bases only: a quantized projection is refused with a message naming the two choices. */
        FLOAT_ONLY,
        /** Dequantize and keep the merged matrix in F32: exact, but no longer the quantized size. */
        DEQUANTIZE,
        /** Dequantize, merge, requantize to the projection's own type: the served size, with a rounding error. */
        REQUANTIZE
    }

    /**
     * Refuses, before anything is merged, a branch that cannot be merged into {@code base}: a lora_B
     * bias (Llama projections have no bias to take it), and with {@link Mode#FLOAT_ONLY} a quantized base.
     */
    public static void check(String adapter, LoraLayer ll, Weight base, Mode mode) {
        if (ll.bias != null) {
            throw new IllegalArgumentException("adapter " + adapter + ": " + ll.path()
                    + " has a lora_B bias, which cannot be merged into a Llama projection (no bias)");
        }
        if (base.type().isQuantized() && mode == Mode.FLOAT_ONLY) {
            throw new IllegalArgumentException("merging adapter " + adapter + " into " + ll.path() + ": the base weight "
                    + base.name() + " is " + base.type() + " (quantized); choose --dequantize (merged matrices in F32: exact, "
                    + "larger) or --requantize (dequantize, merge, requantize to " + base.type() + ": the served size, with "
                    + "the error reported); nothing was merged");
        }
        if (mode == Mode.REQUANTIZE && base.type().isQuantized()) {
            Requantize.check(base);
        }
    }

    /**
     * {@code base} with branch {@code ll} of {@code adapter} merged in, after {@link #check}; {@code unmerged}
     * is the projection without any merged adapter (DoRA's norm is taken on it; base itself when nothing is merged).
     */
    public static Weight merged(String adapter, LoraLayer ll, Weight base, Weight unmerged, Mode mode) {
        float[] m = Dequant.matrix(base);
        Lora.mergeNaive(m, ll.values(), ll.a.off(), ll.eOff(), ll.b.off(), ll.scaling, ll.in, ll.out, ll.r);
        if (ll.dora()) {
            Dora.mergeNaive(m, ll.values(), ll.magnitude.off(), ll.weightNorm(unmerged, ll.scaling), ll.in, ll.out);
        }
        for (int i = 0; i < m.length; i++) {
            if (!Float.isFinite(m[i])) {
                throw new IllegalArgumentException("merging adapter " + adapter + " into " + ll.path()
                        + " gives a non-finite weight at " + i + "; nothing was merged");
            }
        }
        String name = base.name() + "+" + adapter;
        return mode == Mode.REQUANTIZE && base.type().isQuantized()
                ? Requantize.like(base, name, m)
                : new Weight(name, GgmlType.F32, MemorySegment.ofArray(m), base.rows(), base.cols());
    }
}

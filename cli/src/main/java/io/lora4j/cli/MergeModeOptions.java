package io.lora4j.cli;

import io.lora4j.model.lora.Merge;
import io.lora4j.model.Llama;
import picocli.CommandLine.Option;

/** The consent that merging into a quantized base needs: keep float, or requantize. */
public final class MergeModeOptions {
    @Option(names = "--dequantize", description = "Merging into a quantized base: keep the merged matrices in F32 "
            + "(exact; the size of a float model).")
    boolean dequantize;

    @Option(names = "--requantize", description = "Merging into a quantized base: dequantize, merge and requantize to the "
            + "base's own type (int8, nf4, fp4, Q8_0, Q4_0); the error this introduces is measured and reported.")
    boolean requantize;

    Merge.Mode mode() {
        if (dequantize && requantize) {
            throw new IllegalArgumentException("--dequantize and --requantize exclude each other");
        }
        return requantize ? Merge.Mode.REQUANTIZE : dequantize ? Merge.Mode.DEQUANTIZE : Merge.Mode.FLOAT_ONLY;
    }
}

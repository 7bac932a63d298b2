package io.lora4j.cli;

import io.lora4j.model.Quantization;
import picocli.CommandLine.Option;

/** Quantization of the frozen base on load (bitsandbytes' formats), shared by the commands that load a model. */
public final class QuantizeOptions {
    @Option(names = "--quantize", defaultValue = "none", paramLabel = "TYPE",
            description = "Quantize the seven linear projections of every block on load: none (default), int8 (LLM.int8 "
                    + "row absmax), int8-zp (zero point per block of 64), nf4 or fp4 (QLoRA 4-bit, blocks of 64). "
                    + "Embeddings, output layer and norms stay as stored. Takes F32/F16/BF16 weights only.")
    String quantize;

    @Option(names = "--double-quant", description = "With --quantize nf4|fp4: quantize the absmax constants too "
            + "(8-bit dynamic map, blocks of 256), QLoRA's double quantization.")
    boolean doubleQuant;

    Quantization quantization() {
        return Quantization.parse(quantize, doubleQuant);
    }
}

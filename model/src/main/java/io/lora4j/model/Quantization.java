package io.lora4j.model;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Kbit;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.ModelFormatException;

import java.nio.file.Path;
import java.util.Locale;

/**
 * How the frozen base is quantized on load, as bitsandbytes' {@code Linear8bitLt} / {@code Linear4bit}
 * replace a model's linear layers: the seven projections of every block (q, k, v, o, gate, up,
 * down) become {@link Kbit} matrices; the token embedding, the output layer and the norms stay as
 * they are (transformers' bitsandbytes integration keeps {@code lm_head} unconverted, and
 * embeddings and norms are not linear layers). Only F32, F16 and BF16 weights are quantized.
 *
 * @param type the k-bit type, or null for none
 */
public record Quantization(GgmlType type) {
    public static final Quantization NONE = new Quantization(null);

    public Quantization {
        if (type != null && type.ggml) {
            throw new IllegalArgumentException(type + " is not a load-time quantization (int8, int8-zp, nf4, fp4)");
        }
    }

    /** {@code none | int8 | int8-zp | nf4 | fp4}; {@code doubleQuant} compresses the 4-bit types' absmax constants. */
    public static Quantization parse(String name, boolean doubleQuant) {
        GgmlType t = switch (name.toLowerCase(Locale.ROOT)) {
            case "none" -> null;
            case "int8" -> GgmlType.INT8;
            case "int8-zp" -> GgmlType.INT8_ZP;
            case "nf4" -> doubleQuant ? GgmlType.NF4_DQ : GgmlType.NF4;
            case "fp4" -> doubleQuant ? GgmlType.FP4_DQ : GgmlType.FP4;
            default -> throw new IllegalArgumentException("--quantize must be none, int8, int8-zp, nf4 or fp4, got '" + name + "'");
        };
        if (doubleQuant && (t == null || t == GgmlType.INT8 || t == GgmlType.INT8_ZP)) {
            throw new IllegalArgumentException("--double-quant compresses the absmax constants of --quantize nf4 or fp4; "
                    + "it does not apply to --quantize " + name);
        }
        return new Quantization(t);
    }

    public boolean none() {
        return type == null;
    }

    /** The option spelling: {@code nf4+dq}, {@code int8-zp}, {@code none}. */
    public String label() {
        if (type == null) {
            return "none";
        }
        return switch (type) {
            case INT8 -> "int8";
            case INT8_ZP -> "int8-zp";
            case NF4 -> "nf4";
            case NF4_DQ -> "nf4+dq";
            case FP4 -> "fp4";
            case FP4_DQ -> "fp4+dq";
            default -> throw new IllegalStateException(type.name());
        };
    }

    /** Refuses a tensor that is already quantized: quantizing it again would stack two errors silently. */
    public void check(String name, GgmlType source, Path file) {
        if (type != null && source != GgmlType.F32 && source != GgmlType.F16 && source != GgmlType.BF16) {
            throw new ModelFormatException(file, "tensor " + name + " is " + source + ", already quantized; --quantize "
                    + label() + " quantizes F32, F16 or BF16 weights only (to train LoRA on this " + source
                    + " base as it is, drop --quantize)");
        }
    }

    /** {@code w} quantized to this type (decoded to float first), or {@code w} itself for none. */
    public Weight apply(Weight w, Path file) {
        if (type == null) {
            return w;
        }
        check(w.name(), w.type(), file);
        return Kbit.quantize(type, w.name(), Dequant.matrix(w), w.rows(), w.cols());
    }
}

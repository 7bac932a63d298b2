package io.lora4j.cli;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.MemoryReport;
import io.lora4j.model.Quantization;
import io.lora4j.model.format.ModelFiles;
import io.lora4j.model.format.TensorInfo;
import io.lora4j.model.format.WeightSource;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.lang.reflect.Array;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.Map;
import java.util.concurrent.Callable;

/** {@code lora4j inspect}: format, metadata, hyper-parameters, tensors, parameter count and bytes of a model file. */
@Command(name = "inspect", mixinStandardHelpOptions = true,
        description = "Show a model file's format, metadata, hyper-parameters, tensors, parameter count and size.")
final class InspectCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;
    @Mixin
    QuantizeOptions quantize;

    @Option(names = "--no-tensors", description = "Omit the per-tensor listing.")
    boolean noTensors;

    @Option(names = "--array-items", defaultValue = "8", description = "Array elements shown per metadata key (default ${DEFAULT-VALUE}).")
    int arrayItems;

    @Override
    public Integer call() {
        Quantization q = quantize.quantization();
        try (WeightSource src = ModelFiles.open(modelOptions.modelPath())) {
            System.out.println("file:    " + src.path());
            System.out.println("format:  " + src.format());
            System.out.println("metadata (" + src.metadata().size() + " keys):");
            for (Map.Entry<String, Object> e : src.metadata().entrySet()) {
                System.out.println("  " + e.getKey() + " = " + show(e.getValue()));
            }
            LlamaConfig c = src.config();
            System.out.println("config:  " + c);
            long params = 0;
            long bytes = 0;
            Map<GgmlType, Long> byType = new EnumMap<>(GgmlType.class);
            if (!noTensors) {
                System.out.println("tensors (" + src.tensors().size() + "):");
            }
            for (TensorInfo t : src.tensors().values()) {
                params += t.elementCount();
                bytes += t.data().byteSize();
                byType.merge(t.type(), t.elementCount(), Long::sum);
                if (!noTensors) {
                    System.out.printf(java.util.Locale.ROOT, "  %-32s %-5s %-18s %,14d bytes%n", t.name(), t.type(),
                            Arrays.toString(t.shape()), t.data().byteSize());
                }
            }
            System.out.printf(java.util.Locale.ROOT, "parameters: %,d (%.2f M)%n", params, params / 1e6);
            System.out.printf(java.util.Locale.ROOT, "tensor bytes: %,d (%.2f MiB, %.3f bytes/parameter)%n", bytes, bytes / 1048576.0,
                    params == 0 ? 0.0 : (double) bytes / params);
            System.out.println("parameters by type: " + byType);
            System.out.println("memory" + (q.none() ? "" : " with --quantize " + q.label() + " (computed, nothing quantized)") + ":");
            for (String line : MemoryReport.of(src, q).lines()) {
                System.out.println("  " + line);
            }
        }
        return 0;
    }

    private String show(Object v) {
        if (v == null || !v.getClass().isArray()) {
            return v instanceof String s ? '"' + s + '"' : String.valueOf(v);
        }
        int n = Array.getLength(v);
        StringBuilder sb = new StringBuilder(v.getClass().getComponentType().getSimpleName()).append('[').append(n).append("] [");
        for (int i = 0; i < Math.min(n, arrayItems); i++) {
            sb.append(i == 0 ? "" : ", ").append(show(Array.get(v, i)));
        }
        return sb.append(n > arrayItems ? ", …]" : "]").toString();
    }
}

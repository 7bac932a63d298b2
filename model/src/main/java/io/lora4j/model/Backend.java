package io.lora4j.model;

import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;
import java.util.function.Consumer;

/**
 * Where the forward pass runs. A backend takes the T token embeddings in {@link State#x} at
 * positions {@code pos..pos+T-1}, runs every transformer block (updating its KV cache) and, when
 * asked, the final normalisation and output projection of the last token into
 * {@link State#logits}. Both run the one text of a block, {@link io.lora4j.model.block.LlamaBlock}:
 * the JVM backend ({@link JvmBackend}) is the reference; the TornadoVM backend (module
 * {@code tornado}, found through {@link Provider}) records it as task graphs on a device.
 */
public interface Backend extends AutoCloseable {

    /** Short name for messages ("jvm", "tornado"). */
    String name();

    /** Where it runs, for messages (e.g. "JVM, 2 threads", or a device name). */
    String device();

    /**
     * Runs T tokens (embeddings in {@code s.x}, (T, C)) through every block at positions
     * {@code pos..pos+T-1} and leaves the logits of the last {@code logitRows} tokens (0: none) in
     * {@code s.logits} as (logitRows, V), which must fit. {@code s.x} is clobbered.
     */
    void forward(Llama model, State s, int T, int pos, int logitRows);

    @Override
    default void close() {
    }

    /** A backend implementation other than the JVM one, registered as a {@link ServiceLoader} service. */
    interface Provider {
        /** The name users select it by, e.g. "tornado". */
        String name();

        /** Why it cannot run here, or null when it can. */
        String unavailable();

        /** Whether it can run on a GPU here (for {@code --backend auto}). */
        boolean hasGpu();

        /** Opens it on device {@code device} (null: its default device). */
        Backend open(Integer device);
    }

    /**
     * The backend called {@code name}: "jvm", a provider's name (e.g. "tornado"), or "auto" (a
     * provider with a GPU when one is present, else the JVM; {@code say} is told which and why).
     * An unknown name, or a backend that cannot run here, is a usage error naming the reason.
     */
    static Backend named(String name, Integer device, Consumer<String> say) {
        List<Provider> providers = new ArrayList<>();
        ServiceLoader.load(Provider.class).forEach(providers::add);
        if (name.equals("auto")) {
            for (Provider p : providers) {
                if (p.unavailable() == null && p.hasGpu()) {
                    say.accept("backend auto: " + p.name() + " (a GPU is present)");
                    return p.open(device);
                }
            }
            StringBuilder why = new StringBuilder();
            for (Provider p : providers) {
                String u = p.unavailable();
                why.append("; ").append(p.name()).append(": ").append(u != null ? u : "no GPU device");
            }
            say.accept("backend auto: jvm" + (why.isEmpty() ? "" : " (" + why.substring(2) + ")"));
            return jvm(device);
        }
        if (name.equals("jvm")) {
            return jvm(device);
        }
        List<String> names = new ArrayList<>(List.of("jvm", "auto"));
        for (Provider p : providers) {
            if (p.name().equals(name)) {
                String u = p.unavailable();
                if (u != null) {
                    throw new IllegalArgumentException("backend '" + name + "' is not available: " + u);
                }
                return p.open(device);
            }
            names.add(p.name());
        }
        throw new IllegalArgumentException("unknown backend '" + name + "' (available: " + String.join(", ", names) + ")");
    }

    /** {@link #named(String, Integer, Consumer)} on the default device, telling nothing. */
    static Backend named(String name) {
        return named(name, null, msg -> {
        });
    }

    private static Backend jvm(Integer device) {
        if (device != null) {
            throw new IllegalArgumentException("--device selects a TornadoVM device; the jvm backend has none");
        }
        return new JvmBackend();
    }
}

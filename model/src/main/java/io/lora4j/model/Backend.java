package io.lora4j.model;

/**
 * Where the per-layer plans run. A backend executes one transformer block over the T tokens held
 * in {@link State#x} (in place: the residual stream goes in and comes out), and the final
 * normalisation plus output projection. The JVM backend is the reference; a TornadoVM backend
 * implements the same two plans as task graphs with the same named buffers.
 */
public interface Backend extends AutoCloseable {

    /** Short name for messages ("jvm", "tornado"). */
    String name();

    /** One transformer block over tokens at positions {@code pos..pos+T-1}; updates the KV cache of layer {@code l}. */
    void layer(Llama model, State s, int l, int T, int pos);

    /**
     * Final RMSNorm and logits of rows {@code first..first+n-1} of {@link State#x}, written to
     * {@link State#logits} as (n, V).
     */
    void logits(Llama model, State s, int first, int n);

    @Override
    default void close() {
    }

    /** The backend called {@code name}: "jvm" (only one for now); any other name is a usage error. */
    static Backend named(String name) {
        return switch (name) {
            case "jvm" -> new JvmBackend();
            default -> throw new IllegalArgumentException("unknown backend '" + name + "' (available: jvm)");
        };
    }
}

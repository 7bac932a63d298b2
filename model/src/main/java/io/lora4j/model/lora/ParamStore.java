package io.lora4j.model.lora;

import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * An adapter's trainable tensors in flat buffers, llm.c style: every tensor is a named {@link View}
 * (an offset and a length) of one {@link #values} array, its gradient at the same offset of
 * {@link #grads}, and the optimizer's moments at the same offset of {@link #firstMoments} and
 * {@link #secondMoments}. Zeroing the gradients is one fill, the gradient norm one loop, the optimizer
 * one call, and a device uploads the four arrays as they are. The JVM trainer, the device trainer and
 * checkpoints all work on these arrays; the views give each tensor its PEFT name.
 */
public final class ParamStore {

    /** One tensor of the store: {@code len} elements from {@code off} of each flat buffer. */
    public record View(String name, ParamStore store, int off, int len) {
        public float get(int i) {
            return store.values[off + i];
        }

        public void set(int i, float v) {
            store.values[off + i] = v;
        }

        public float grad(int i) {
            return store.grads[off + i];
        }

        /** The flat value buffer this view is part of (index it from {@link #off}). */
        public float[] values() {
            return store.values;
        }

        /** The flat gradient buffer (index it from {@link #off}). */
        public float[] grads() {
            return store.grads;
        }

        /** A copy of the values. */
        public float[] toArray() {
            float[] a = new float[len];
            System.arraycopy(store.values, off, a, 0, len);
            return a;
        }

        /** Sets the values from {@code src} (length {@link #len}). */
        public void load(float[] src) {
            if (src.length != len) {
                throw new IllegalArgumentException(name + ": " + src.length + " values, expected " + len);
            }
            System.arraycopy(src, 0, store.values, off, len);
        }

        /** The values as a memory segment, without copying (e.g. a trained lm_head as a weight). */
        public MemorySegment segment() {
            return MemorySegment.ofArray(store.values).asSlice(4L * off, 4L * len);
        }
    }

    /** A tensor to allocate: its name and element count. */
    public record Spec(String name, int len) {
    }

    public final float[] values;
    public final float[] grads;
    private final List<View> views;
    private float[] firstMoments, secondMoments;

    /** Allocates the tensors, in order, zero-filled. */
    public ParamStore(List<Spec> specs) {
        List<View> vs = new ArrayList<>();
        int n = 0;
        for (Spec s : specs) {
            vs.add(new View(s.name(), this, n, s.len()));
            n = Math.addExact(n, s.len());
        }
        values = new float[n];
        grads = new float[n];
        views = Collections.unmodifiableList(vs);
    }

    /** The tensors in storage order. */
    public List<View> views() {
        return views;
    }

    /** The view named {@code name}. */
    public View view(String name) {
        for (View v : views) {
            if (v.name().equals(name)) {
                return v;
            }
        }
        throw new IllegalArgumentException("no tensor named " + name);
    }

    /** Elements in the store. */
    public int size() {
        return values.length;
    }

    /** AdamW's first moment or SGD's momentum buffer (allocated on first use). */
    public float[] firstMoments() {
        if (firstMoments == null) {
            firstMoments = new float[values.length];
        }
        return firstMoments;
    }

    /** AdamW's second moment (allocated on first use). */
    public float[] secondMoments() {
        if (secondMoments == null) {
            secondMoments = new float[values.length];
        }
        return secondMoments;
    }

    /** Whether the moments have been allocated: bytes of optimizer state. */
    public long momentBytes() {
        return 4L * ((firstMoments == null ? 0 : firstMoments.length) + (secondMoments == null ? 0 : secondMoments.length));
    }
}

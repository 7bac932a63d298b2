package io.lora4j.model.train;

/**
 * LoRA and AdaLoRA training steps on a device (a {@link io.lora4j.model.Backend} other than the JVM's): the
 * forward and backward of sequences with the gradients accumulating on the device, their norm, and
 * the optimizer update there too, over the adapter's {@link io.lora4j.model.lora.ParamStore}: its flat
 * values, gradients and moments are uploaded as they are at the first step (a resumed run's restored
 * moments included) and stay on the device until {@link #syncToHost}.
 */
public interface DeviceTraining {

    /** As {@link TrainGraph#forwardBackward}: the summed loss over counted positions; gradients accumulate. */
    double forwardBackward(int[] tokens, int[] targets, int T, float lossScale, long seed);

    /** As {@link TrainGraph#loss}: forward only, no dropout. */
    double loss(int[] tokens, int[] targets, int T);

    /** Σ g² over the gradients accumulated since the last update. */
    double gradNormSquared();

    /** Copies the accumulated gradients into the store's gradients. */
    void gradientsToHost();

    /** One optimizer step with the gradients scaled by {@code gradScale} (clipping; 1 = unscaled), then zero gradients. */
    void update(float lr, float beta1, float beta2, float eps, float weightDecay, int step, float gradScale);

    /** The adapter's values and the optimizer moments back into the store. */
    void syncToHost();

    /**
     * Adds {@code g} (one value per parameter of the store) to the gradients accumulated on the device, before
     * their norm: AdaLoRA's orthogonal regulariser, whose gradient the host computes from the synced values.
     */
    void addToGradients(float[] g);

    /**
     * Multiplies the device's parameter values by {@code keep} (one per parameter) before the next forward:
     * AdaLoRA's rank allocator, which runs on the host, zeroes singular values there after a step.
     */
    void maskValues(float[] keep);

    /** Bytes the training state occupies on the device. */
    long deviceBytes();

    /** Where it runs, for messages. */
    String device();
}

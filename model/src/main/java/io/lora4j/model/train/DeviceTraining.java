package io.lora4j.model.train;

import java.util.List;

/**
 * LoRA training steps on a device (a {@link io.lora4j.model.Backend} other than the JVM's): the
 * forward and backward of sequences with the gradients accumulating on the device, their norm, and
 * the optimizer update there too. The adapter and the optimizer moments stay on the device until
 * {@link #syncToHost}. Tensors are in the {@link Trainer}'s parameter order.
 */
public interface DeviceTraining {

    /** As {@link TrainGraph#forwardBackward}: the summed loss over counted positions; gradients accumulate. */
    double forwardBackward(int[] tokens, int[] targets, int T, float lossScale, long seed);

    /** As {@link TrainGraph#loss}: forward only, no dropout. */
    double loss(int[] tokens, int[] targets, int T);

    /** Σ g² over the gradients accumulated since the last update. */
    double gradNormSquared();

    /** Copies the accumulated gradients into the adapter's host gradient arrays. */
    void gradientsToHost();

    /** One optimizer step with the gradients scaled by {@code gradScale} (clipping; 1 = unscaled), then zero gradients. */
    void update(float lr, float beta1, float beta2, float eps, float weightDecay, int step, float gradScale);

    /** The moments the first update starts from (a resumed run): one array per tensor, null = zero. */
    void loadMoments(List<float[]> firstMoments, List<float[]> secondMoments);

    /** The adapter's weights into its host arrays and the moments into these arrays (null entries skipped). */
    void syncToHost(List<float[]> firstMoments, List<float[]> secondMoments);

    /** Bytes the training state occupies on the device. */
    long deviceBytes();

    /** Where it runs, for messages. */
    String device();
}

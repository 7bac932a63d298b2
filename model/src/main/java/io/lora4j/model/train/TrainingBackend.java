package io.lora4j.model.train;

import io.lora4j.model.Llama;
import io.lora4j.model.lora.LoraAdapter;

/**
 * A {@link io.lora4j.model.Backend} that also trains on its device (the TornadoVM backend). Without
 * it, training runs on the JVM ({@link TrainGraph}).
 */
public interface TrainingBackend {
    /**
     * Training steps for {@code adapter} on this backend's device, for sequences of up to {@code maxT}
     * tokens. The backend owns what it returns and frees it when closed. Throws IllegalArgumentException
     * for a combination the device cannot train.
     */
    DeviceTraining training(Llama model, LoraAdapter adapter, int maxT, TrainConfig cfg);
}

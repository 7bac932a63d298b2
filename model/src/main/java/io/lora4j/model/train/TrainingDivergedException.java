package io.lora4j.model.train;

/** A NaN or infinite loss or gradient: training stops at that step instead of training through it. */
public final class TrainingDivergedException extends IllegalStateException {
    public TrainingDivergedException(String message) {
        super(message);
    }
}

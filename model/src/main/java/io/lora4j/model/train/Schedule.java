package io.lora4j.model.train;

/**
 * Learning-rate schedules as in transformers' {@code get_*_schedule_with_warmup}: linear warm-up
 * from 0 over {@code warmup} steps, then constant, linear decay to 0, or cosine decay to 0 at
 * {@code total} steps. Steps are 0-based: the rate used by optimizer step s is {@code lr(s)}.
 */
public record Schedule(String kind, float baseLr, int warmup, int total) {
    public Schedule {
        if (!kind.equals("constant") && !kind.equals("linear") && !kind.equals("cosine")) {
            throw new IllegalArgumentException("unknown schedule '" + kind + "' (constant, linear, cosine)");
        }
        if (!(baseLr > 0) || warmup < 0 || total < 1) {
            throw new IllegalArgumentException("schedule needs lr > 0, warmup >= 0, steps >= 1");
        }
    }

    public float lr(int step) {
        if (step < warmup) {
            return baseLr * step / Math.max(1, warmup);
        }
        double progress = (double) (step - warmup) / Math.max(1, total - warmup);
        return switch (kind) {
            case "constant" -> baseLr;
            case "linear" -> (float) (baseLr * Math.max(0.0, 1.0 - progress));
            default -> (float) (baseLr * Math.max(0.0, 0.5 * (1.0 + Math.cos(Math.PI * progress))));
        };
    }
}

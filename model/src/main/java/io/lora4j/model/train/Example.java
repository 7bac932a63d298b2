package io.lora4j.model.train;

/**
 * One training sequence: input tokens and, per position, the next token to predict or −1 where no
 * loss is taken (prompt, non-assistant turns).
 */
public record Example(int[] tokens, int[] targets) implements java.io.Serializable {
    public Example {
        if (tokens.length != targets.length || tokens.length == 0) {
            throw new IllegalArgumentException("an example needs as many targets as tokens (and at least one)");
        }
    }

    public int countedTargets() {
        int n = 0;
        for (int t : targets) {
            n += t >= 0 ? 1 : 0;
        }
        return n;
    }
}

package io.lora4j.model;

import java.util.Arrays;
import java.util.Set;

/**
 * The generation loop: batched prefill of the prompt, then one token at a time through the KV
 * cache until {@code maxNew} tokens or a stop token.
 */
public final class Generator {

    /** Receives each generated token as soon as it is sampled. */
    public interface TokenSink {
        void accept(int token);
    }

    /** Generated tokens (without the prompt), and time spent in prefill and decode. */
    public record Result(int[] tokens, int promptTokens, long prefillNanos, long decodeNanos) {
        public double decodeTokensPerSecond() {
            return tokens.length <= 1 ? 0 : (tokens.length - 1) * 1e9 / decodeNanos;
        }

        public double prefillTokensPerSecond() {
            return promptTokens * 1e9 / prefillNanos;
        }
    }

    private Generator() {
    }

    /**
     * @param prompt   prompt ids (with BOS where the model wants one); at least one token
     * @param pos      position of the first prompt token (0 for a fresh state; later for a continued chat)
     * @param stop     tokens that end generation (not emitted)
     */
    public static Result generate(Llama m, Backend b, State s, int[] prompt, int pos, int maxNew, Sampler sampler,
                                  Set<Integer> stop, TokenSink sink) {
        if (prompt.length == 0) {
            throw new IllegalArgumentException("empty prompt: at least one token (e.g. BOS) is needed");
        }
        int V = m.config().vocabSize();
        int budget = Math.min(maxNew, s.contextLength - pos - prompt.length);
        if (budget < 0) {
            throw new IllegalArgumentException("prompt of " + prompt.length + " tokens does not fit the context of "
                    + s.contextLength);
        }
        int[] history = Arrays.copyOf(prompt, prompt.length + Math.max(budget, 0));
        int n = prompt.length;
        long t0 = System.nanoTime();
        float[] logits = m.forward(b, s, prompt, 0, prompt.length, pos);
        long t1 = System.nanoTime();
        int produced = 0;
        while (produced < budget) {
            int next = sampler.sample(logits, V, history, n);
            if (stop.contains(next)) {
                break;
            }
            history[n++] = next;
            produced++;
            sink.accept(next);
            if (produced == budget) {
                break;
            }
            logits = m.forward(b, s, history, n - 1, 1, pos + n - 1);
        }
        long t2 = System.nanoTime();
        return new Result(Arrays.copyOfRange(history, prompt.length, n), prompt.length, t1 - t0, t2 - t1);
    }
}

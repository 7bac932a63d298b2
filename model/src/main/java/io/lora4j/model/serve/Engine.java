package io.lora4j.model.serve;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Threads;
import io.lora4j.model.Llama;
import io.lora4j.model.Sampler;
import io.lora4j.model.State;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.lora.AdapterSet;

import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.List;
import java.util.Set;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Continuous batching on one base model: requests wait in a bounded queue, join the running batch
 * as soon as a sequence slot is free, and decode together — one {@link BatchDecode} step per token for
 * every running sequence, each with its own KV cache, position, sampler and adapters — until they
 * stop, run out of tokens or are cancelled, which frees their slot for the next request at once. A
 * joining prompt is prefilled inside those steps: its tokens are rows of the step beside the decoding
 * sequences' rows (at most {@code prefillChunk} prompt rows per step, so a long prompt takes several
 * steps and holds no one up), and the step that reaches its last token gives its first new one. One
 * thread runs the model; listeners are called on it and must not block.
 */
public final class Engine implements AutoCloseable {

    /**
     * @param maxSequences   sequences decoding at once (slots, each with its own KV cache)
     * @param contextLength  positions per sequence (prompt and completion)
     * @param queueCapacity  requests that may wait for a slot; beyond it {@link #submit} refuses
     * @param prefillChunk   prompt tokens per step (beside one row per decoding sequence)
     */
    public record Options(int maxSequences, int contextLength, int queueCapacity, int prefillChunk) {
        public Options {
            if (maxSequences < 1 || contextLength < 2 || queueCapacity < 0 || prefillChunk < 1) {
                throw new IllegalArgumentException("max sequences and prefill chunk ≥ 1, context ≥ 2, queue ≥ 0");
            }
        }
    }

    /** Why a sequence ended. */
    public enum Finish { STOP, LENGTH, CANCELLED, ERROR }

    /** Receives a sequence's tokens on the engine thread. */
    public interface Listener {
        /** A new token; return false to stop the sequence here (a stop string, a client gone). */
        boolean token(int id);

        /** The sequence ended; {@code error} is set with {@link Finish#ERROR}. */
        void done(Finish why, int promptTokens, int completionTokens, RuntimeException error);
    }

    /**
     * One generation: the prompt's ids, at most {@code maxTokens} new ones (fewer when the context
     * fills), the sampling, the adapters with their weights (empty: the base model), the token ids
     * that end it (not emitted).
     */
    public record Request(int[] prompt, int maxTokens, Sampler.Params sampling, List<AdapterSet.Active> adapters,
                          Set<Integer> stopTokens, Listener listener) {
    }

    /** The queue is full: the caller should retry later. */
    public static final class Busy extends RuntimeException {
        public Busy(String message) {
            super(message);
        }
    }

    /** A submitted request: {@link #cancel} stops it at the next step (or before it starts). */
    public static final class Handle {
        private volatile boolean cancelled;

        public void cancel() {
            cancelled = true;
        }
    }

    private static final class Sequence {
        final Request req;
        final Handle handle;
        final Sampler sampler;
        final int[] history;
        int n;         // tokens in history (prompt + generated)
        int cached;    // positions in the KV cache: a step runs history[cached..n) (a prompt: in chunks)
        int generated;
        State state;

        Sequence(Request req, Handle handle, int vocab, int contextLength) {
            this.req = req;
            this.handle = handle;
            this.sampler = new Sampler(req.sampling(), vocab);
            this.history = Arrays.copyOf(req.prompt(), contextLength);
            this.n = req.prompt().length;
        }
    }

    private final Llama model;
    private final Options opt;
    private final BatchDecode batch;
    private final Deque<Sequence> queue = new ArrayDeque<>();
    private final List<Sequence> running = new ArrayList<>();
    private final Deque<State> freeStates = new ArrayDeque<>();
    private final float[][] rowLogits;
    private final int[] drawn;
    private final int[] wanted;
    private final Thread thread;
    private volatile boolean closed;
    // counters for metrics
    private final AtomicLong promptTokens = new AtomicLong(), completionTokens = new AtomicLong(), finished = new AtomicLong();
    private volatile int runningCount, queuedCount;

    /** An engine over {@code model}; adapters of rank up to {@code maxRank} run without extra allocation. */
    public Engine(Llama model, Options opt, int maxRank) {
        this.model = model;
        this.opt = opt;
        int rows = opt.maxSequences() + opt.prefillChunk();
        this.batch = new BatchDecode(model, rows, opt.maxSequences(), maxRank);
        this.rowLogits = new float[opt.maxSequences()][];
        this.drawn = new int[opt.maxSequences()];
        this.wanted = new int[opt.maxSequences()];
        this.thread = Thread.ofPlatform().name("lora4j-engine").daemon(true).start(this::loop);
    }

    /**
     * Queues a request; it starts as soon as a slot is free. Throws {@link Busy} when the queue is
     * full, IllegalArgumentException for a request that cannot run (empty prompt, prompt longer than
     * the context, an adapter with trained lm_head/embed_tokens copies).
     */
    public Handle submit(Request r) {
        LlamaConfig c = model.config();
        if (r.prompt().length == 0) {
            throw new IllegalArgumentException("the prompt is empty");
        }
        if (r.prompt().length >= opt.contextLength()) {
            throw new IllegalArgumentException("the prompt has " + r.prompt().length + " tokens; the context holds "
                    + opt.contextLength() + " (prompt and completion)");
        }
        for (int t : r.prompt()) {
            if (t < 0 || t >= c.vocabSize()) {
                throw new IllegalArgumentException("token id " + t + " outside the vocabulary [0, " + c.vocabSize() + ")");
            }
        }
        for (AdapterSet.Active a : r.adapters()) {
            if (a.adapter().lmHead != null || a.adapter().embedTokens != null) {
                throw new IllegalArgumentException("adapter " + a.adapter().name() + " has trained lm_head/embed_tokens copies "
                        + "(modules_to_save), which the server cannot mix in a batch; merge it (lora4j merge) and serve the result");
            }
        }
        Handle h = new Handle();
        synchronized (this) {
            if (closed) {
                throw new IllegalStateException("the engine is closed");
            }
            if (runningCount + queue.size() >= opt.maxSequences() + opt.queueCapacity()) {
                throw new Busy(queue.size() + " requests are waiting (queue capacity " + opt.queueCapacity() + ")");
            }
            queue.add(new Sequence(r, h, c.vocabSize(), opt.contextLength()));
            queuedCount = queue.size();
            notifyAll();
        }
        return h;
    }

    public Options options() {
        return opt;
    }

    /** Sequences decoding now. */
    public int running() {
        return runningCount;
    }

    /** Requests waiting for a slot. */
    public int queued() {
        return queuedCount;
    }

    public long promptTokens() {
        return promptTokens.get();
    }

    public long completionTokens() {
        return completionTokens.get();
    }

    /** Requests that have ended (any reason). */
    public long finished() {
        return finished.get();
    }

    private void loop() {
        while (true) {
            List<Sequence> joining = new ArrayList<>();
            synchronized (this) {
                while (!closed && queue.isEmpty() && running.isEmpty()) {
                    try {
                        wait();
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                if (closed) {
                    break;
                }
                while (running.size() + joining.size() < opt.maxSequences() && !queue.isEmpty()) {
                    joining.add(queue.poll());
                }
                queuedCount = queue.size();
                runningCount = running.size() + joining.size(); // taken: they count against the slots from now
            }
            try {
                for (Sequence s : joining) {
                    start(s);
                }
                if (!running.isEmpty()) {
                    step();
                }
            } catch (RuntimeException e) {
                failAll(e);
            }
            runningCount = running.size();
        }
        List<Sequence> left = new ArrayList<>(running);
        synchronized (this) {
            left.addAll(queue);
            queue.clear();
        }
        for (Sequence s : left) {
            end(s, Finish.CANCELLED, null);
        }
        running.clear();
    }

    /** A joining sequence takes a KV cache and runs from the next step on (its prompt first). */
    private void start(Sequence s) {
        if (s.handle.cancelled) {
            end(s, Finish.CANCELLED, null);
            return;
        }
        s.state = freeStates.isEmpty() ? new State(model.config(), 1, opt.contextLength(), 1) : freeStates.pop();
        running.add(s);
    }

    /**
     * One batched step: a row for each decoding sequence's last token, and up to {@code prefillChunk}
     * rows of joining prompts; every sequence whose rows reach its last token gets its next token.
     */
    private void step() {
        for (Sequence s : new ArrayList<>(running)) {
            if (s.handle.cancelled) {
                finish(s, Finish.CANCELLED);
            }
        }
        int C = model.config().dim();
        int budget = opt.prefillChunk();
        int R = 0, nl = 0;
        List<State> states = new ArrayList<>();
        List<List<AdapterSet.Active>> adapters = new ArrayList<>();
        List<Sequence> sampled = new ArrayList<>();
        for (Sequence s : running) {
            int rows = s.n - s.cached;
            if (rows > 1) { // a prompt
                rows = Math.min(rows, budget);
                budget -= rows;
            }
            for (int i = 0; i < rows; i++) {
                int p = s.cached + i;
                Dequant.row(model.tokenEmbedding(), s.history[p], batch.x(), R * C);
                batch.pos[R] = p;
                states.add(s.state);
                adapters.add(s.req.adapters());
                R++;
            }
            s.cached += rows;
            if (rows > 0 && s.cached == s.n) {
                wanted[nl++] = R - 1;
                sampled.add(s);
            }
        }
        if (R == 0) {
            return;
        }
        batch.step(states, adapters, R, wanted, nl);
        // the rows' samplers are independent (each its own seed, history and logits): drawn in parallel,
        // delivered in order on this thread
        int V = model.config().vocabSize();
        Threads.parallelFor(nl, 64L * V, (from, to) -> {
            for (int j = from; j < to; j++) {
                Sequence s = sampled.get(j);
                if (!s.handle.cancelled) {
                    drawn[j] = sample(s, rowLogits(j), batch.logits, j * V);
                }
            }
        });
        for (int j = 0; j < nl; j++) {
            Sequence s = sampled.get(j);
            if (s.generated == 0) {
                promptTokens.addAndGet(s.req.prompt().length);
            }
            deliver(s, drawn[j]);
        }
    }

    /** Row t's scratch for its sampler's logits (the repetition penalty writes to it). */
    private float[] rowLogits(int t) {
        if (rowLogits[t] == null) {
            rowLogits[t] = new float[model.config().vocabSize()];
        }
        return rowLogits[t];
    }

    private int sample(Sequence s, float[] scratch, float[] logits, int off) {
        int V = model.config().vocabSize();
        System.arraycopy(logits, off, scratch, 0, V);
        return s.sampler.sample(scratch, V, s.history, s.n);
    }

    /** Passes s's next token on and ends s when it is done (or cancelled meanwhile). */
    private void deliver(Sequence s, int next) {
        if (s.handle.cancelled) {
            finish(s, Finish.CANCELLED);
            return;
        }
        if (s.req.stopTokens().contains(next)) {
            finish(s, Finish.STOP);
            return;
        }
        s.history[s.n++] = next;
        s.generated++;
        completionTokens.incrementAndGet();
        boolean more = s.req.listener().token(next);
        if (!more) {
            finish(s, Finish.STOP);
        } else if (s.generated >= s.req.maxTokens() || s.n >= opt.contextLength()) {
            finish(s, Finish.LENGTH);
        }
    }

    private void finish(Sequence s, Finish why) {
        running.remove(s);
        end(s, why, null);
    }

    private void end(Sequence s, Finish why, RuntimeException error) {
        if (s.state != null) {
            freeStates.push(s.state);
            s.state = null;
        }
        finished.incrementAndGet();
        try {
            s.req.listener().done(why, s.req.prompt().length, s.generated, error);
        } catch (RuntimeException ignored) {
            // a listener's failure must not stop the engine
        }
    }

    private void failAll(RuntimeException e) {
        for (Sequence s : new ArrayList<>(running)) {
            running.remove(s);
            end(s, Finish.ERROR, e);
        }
    }

    /** Stops the engine: running and queued requests end as cancelled. */
    @Override
    public void close() {
        synchronized (this) {
            closed = true;
            notifyAll();
        }
        try {
            thread.join(10_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}

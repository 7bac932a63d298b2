package io.lora4j.model.train;

import io.lora4j.kernels.Orthogonality;
import io.lora4j.model.Llama;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.model.lora.ParamStore;

import java.util.Arrays;
import java.util.List;
import java.util.SplittableRandom;

/**
 * Trains a {@link LoraAdapter}: micro-batches of whole sequences through {@link TrainGraph},
 * gradient accumulation, global-norm clipping, AdamW or SGD with a schedule (over {@link ParamGroups}:
 * LoRA+ gives lora_B its own learning rate), periodic evaluation.
 * Deterministic: the same seed gives the same data order, dropout masks and therefore the same
 * loss curve, bit for bit. A non-finite loss or gradient stops training with the step named.
 * <p>
 * AdaLoRA adapters train A, E and B; the step's gradient also gets the orthogonal regulariser's
 * ({@code orth_reg_weight · mean over every A and B of ‖AAᵀ − I‖_F, ‖BᵀB − I‖_F}, added once per
 * optimizer step, before clipping), and after the optimizer update the {@link RankAllocator} runs
 * with that step's gradients (PEFT's {@code update_and_allocate}, which PEFT leaves to the user).
 */
public final class Trainer {

    /**
     * What a finished optimizer step reports: the data loss, and for AdaLoRA the regulariser's term
     * of the loss ({@code orthLoss}, else 0) and the triplet budget in force after the step (else −1).
     */
    public record StepStats(int step, double loss, float lr, double gradNorm, int tokens, long nanos, double orthLoss,
                            int budget) {
    }

    /** Receives progress. */
    public interface Listener {
        void step(StepStats s);

        default void eval(int step, double loss) {
        }

        /** After step {@code step} and its evaluation, if any: where a checkpoint of it belongs. */
        default void stepDone(int step) {
        }
    }

    private final Llama model;
    private final LoraAdapter adapter;
    private final TrainConfig cfg;
    private final TrainGraph graph;
    private final ParamStore store;
    private final float[] m1, m2; // the store's moments this optimizer uses, or null
    private final ParamGroups groups;
    private final List<Example> train;
    private final List<Example> eval;
    private final RankAllocator allocator;
    private final DeviceTraining device;   // null: the steps run on the JVM
    private Replicas replicas = Replicas.ALONE;
    private float[] sum;                    // the step's gradient, summed sequence by sequence
    private long exchangeNanos;
    private int[] order;
    private int cursor;
    private int epoch;
    private int step;

    public Trainer(Llama model, LoraAdapter adapter, TrainConfig cfg, List<Example> train, List<Example> eval) {
        this(model, adapter, cfg, train, eval, null);
    }

    /**
     * @param backend where the steps run; null or the JVM backend: {@link TrainGraph} and the JVM
     *                optimizers; another backend: its {@link io.lora4j.model.Backend#training}
     */
    public Trainer(Llama model, LoraAdapter adapter, TrainConfig cfg, List<Example> train, List<Example> eval,
                   io.lora4j.model.Backend backend) {
        if (train.isEmpty()) {
            throw new IllegalArgumentException("no training examples");
        }
        this.model = model;
        this.adapter = adapter;
        this.cfg = cfg;
        this.train = train;
        this.eval = eval;
        int maxT = 1;
        for (Example e : train) {
            maxT = Math.max(maxT, e.tokens().length);
        }
        for (Example e : eval) {
            maxT = Math.max(maxT, e.tokens().length);
        }
        if (maxT > model.config().contextLength()) {
            throw new IllegalArgumentException("sequences of " + maxT + " tokens exceed the model's context "
                    + model.config().contextLength());
        }
        device = backend instanceof TrainingBackend tb ? tb.training(model, adapter, maxT, cfg) : null;
        graph = device == null ? new TrainGraph(model, adapter, maxT, cfg.checkpointing()) : null;
        boolean adam = cfg.optimizer().equals("adamw");
        boolean momentum = !adam && cfg.beta1() > 0;
        if (adapter.adaLora() != null) {
            for (LoraLayer l : adapter.layers()) {
                if (l.r != adapter.adaLora().initR()) {
                    throw new IllegalArgumentException(l.path() + " has rank " + l.r + ", not init_r " + adapter.adaLora().initR()
                            + ": a saved AdaLoRA adapter was already pruned and cannot be trained again; export it as LoRA "
                            + "(adapters export-lora) or resume from a training checkpoint");
                }
            }
        }
        allocator = adapter.adaLora() == null ? null : new RankAllocator(adapter);
        store = adapter.store();
        groups = ParamGroups.of(store, cfg.loraplusLrRatio());
        m1 = adam || momentum ? store.firstMoments() : null;
        m2 = adam ? store.secondMoments() : null;
        order = new int[train.size()];
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        shuffle();
    }

    /** The JVM training graph, or null when a device trains ({@link #device()}). */
    public TrainGraph graph() {
        return graph;
    }

    /** The device training the adapter, or null on the JVM. */
    public DeviceTraining device() {
        return device;
    }

    /**
     * Brings the adapter and the optimizer moments back from the device into the host arrays (a no-op
     * on the JVM). {@link #run} ends with it; a checkpoint or save in between must call it first.
     */
    public void sync() {
        if (device != null) {
            device.syncToHost();
        }
    }

    /** The trainable tensors (views of the adapter's {@link ParamStore}), in storage order. */
    public List<ParamStore.View> params() {
        return store.views();
    }

    /** AdamW's first moments or SGD's momentum buffer over the whole store, or null when the optimizer keeps none. */
    public float[] firstMoments() {
        return m1;
    }

    /** AdamW's second moments over the whole store, or null. */
    public float[] secondMoments() {
        return m2;
    }

    public int step() {
        return step;
    }

    public TrainConfig config() {
        return cfg;
    }

    public LoraAdapter adapter() {
        return adapter;
    }

    /** The AdaLoRA rank allocator, or null for LoRA. */
    public RankAllocator allocator() {
        return allocator;
    }

    Llama model() {
        return model;
    }

    /** Where the data order stands: epoch, position in it, and the order itself. */
    record Cursor(int step, int epoch, int cursor, int[] order) {
    }

    Cursor cursor() {
        return new Cursor(step, epoch, cursor, order.clone());
    }

    /** Puts the trainer back where {@code c} was (the adapter and moments are restored by the caller). */
    void restore(Cursor c) {
        if (c.order().length != order.length) {
            throw new IllegalArgumentException("the checkpoint was made with " + c.order().length
                    + " training sequences, this data has " + order.length);
        }
        step = c.step();
        epoch = c.epoch();
        cursor = c.cursor();
        System.arraycopy(c.order(), 0, order, 0, order.length);
    }

    /** Optimizer state bytes (moments). */
    public long optimizerBytes() {
        return 4L * ((m1 == null ? 0 : m1.length) + (m2 == null ? 0 : m2.length));
    }

    /** Parameter and gradient bytes of the adapter. */
    public long adapterBytes() {
        return 8L * store.size();
    }

    /** Runs the remaining steps. */
    public void run(Listener listener) {
        while (step < cfg.steps()) {
            listener.step(trainStep());
            if (!eval.isEmpty() && cfg.evalEvery() > 0 && step % cfg.evalEvery() == 0 && step < cfg.steps()) {
                listener.eval(step, evalLoss());
            }
            listener.stepDone(step);
        }
        if (!eval.isEmpty()) {
            listener.eval(step, evalLoss());
        }
        sync();
    }

    /** One optimizer step over batchSize × gradAccum sequences. */
    /**
     * Trains as one of several data-parallel replicas (see {@link Replicas}): each step then takes
     * {@code replicas.count()} times as many sequences, of which this trainer computes its slice. JVM
     * training only.
     */
    public void replicas(Replicas r) {
        if (device != null && r.count() > 1) {
            throw new IllegalArgumentException("data-parallel replicas train on the JVM only");
        }
        this.replicas = r;
    }

    /** Nanoseconds spent exchanging gradients with the other replicas so far. */
    public long exchangeNanos() {
        return exchangeNanos;
    }

    public StepStats trainStep() {
        long t0 = System.nanoTime();
        int n = cfg.batchSize() * cfg.gradAccum() * replicas.count();
        Example[] batch = new Example[n];
        int counted = 0;
        int tokens = 0;
        for (int i = 0; i < n; i++) {
            batch[i] = next();
            counted += batch[i].countedTargets();
            tokens += batch[i].tokens().length;
        }
        if (device != null) {
            return deviceStep(t0, batch, counted, tokens);
        }
        float[] g = store.grads;
        double loss = sequenceGradients(batch, counted);
        double orth = allocator == null ? 0 : orthogonalRegularizer();
        double norm = 0;
        for (float x : g) {
            norm += (double) x * x;
        }
        norm = Math.sqrt(norm);
        if (!Double.isFinite(norm)) {
            throw nonFiniteGradient();
        }
        if (cfg.maxGradNorm() > 0 && norm > cfg.maxGradNorm()) {
            float c = (float) (cfg.maxGradNorm() / (norm + 1e-6));
            for (int i = 0; i < g.length; i++) {
                g[i] *= c;
            }
        }
        float lr = cfg.lrSchedule().lr(step);
        groups.update(store, m1, m2, cfg, lr, step + 1);
        int budget = allocator == null ? -1 : allocator.updateAndAllocate(step);
        step++;
        return new StepStats(step, loss, lr, norm, tokens, System.nanoTime() - t0, orth, budget);
    }

    /**
     * AdaLoRA's {@code orth_reg_weight · mean(‖AAᵀ − I‖_F, ‖BᵀB − I‖_F)} over every A and B (PEFT's
     * {@code AdaLoraModel.forward}); adds its gradient to dA and dB and returns its value.
     */
    double orthogonalRegularizer() {
        float w = adapter.adaLora().orthRegWeight();
        List<LoraLayer> layers = adapter.layers();
        double sum = 0;
        float[] d = new float[0];
        for (LoraLayer l : layers) {
            if (d.length < l.r * l.r) {
                d = new float[l.r * l.r];
            }
            for (boolean rows : new boolean[]{true, false}) {
                ParamStore.View v = rows ? l.a : l.b;
                float[] m = v.toArray(), dm = new float[v.len()];
                int n = rows ? l.in : l.out;
                Orthogonality.forward(d, m, l.r, n, rows);
                double norm = Orthogonality.norm(d, l.r);
                sum += norm;
                if (w > 0 && norm > 0) {
                    Orthogonality.backward(dm, d, m, (float) (2.0 * w / (2 * layers.size()) / norm), l.r, n, rows);
                    for (int i = 0; i < dm.length; i++) {
                        store.grads[v.off() + i] += dm[i];
                    }
                }
            }
        }
        return layers.isEmpty() ? 0 : w * sum / (2 * layers.size());
    }

    /** Forward and backward of one sequence, gradients accumulating (TrainGraph's or a device's). */
    private interface SequenceStep {
        double run(int[] tokens, int[] targets, int T, float lossScale, long seed);
    }

    /**
     * Runs the step's sequences, each seeded from (seed, step, index) for its dropout masks, with
     * dLoss/dloss_t = 1 / counted targets; returns the mean loss per counted target, which must be finite.
     */
    /**
     * The step's gradient into the store's gradients: every sequence's gradient computed from zero (this
     * replica's share of them), then all of them added in sequence order, so that the result does not
     * depend on how the sequences were shared out. Returns the mean loss per counted target.
     */
    private double sequenceGradients(Example[] batch, int counted) {
        float[] g = store.grads;
        if (sum == null) {
            sum = new float[g.length];
        }
        Arrays.fill(sum, 0f);
        float scale = counted == 0 ? 0f : 1f / counted;
        int per = batch.length / replicas.count(), from = replicas.index() * per;
        double lossSum = 0;
        if (replicas.count() == 1) {
            for (int i = 0; i < batch.length; i++) {
                Arrays.fill(g, 0f);
                lossSum += graph.forwardBackward(batch[i].tokens(), batch[i].targets(), batch[i].tokens().length, scale,
                        sequenceSeed(batch.length, i));
                for (int k = 0; k < g.length; k++) {
                    sum[k] += g[k];
                }
            }
        } else {
            java.nio.ByteBuffer mine = java.nio.ByteBuffer.allocate(Math.multiplyExact(per, 8 + 4 * g.length));
            for (int i = from; i < from + per; i++) {
                Arrays.fill(g, 0f);
                mine.putDouble(graph.forwardBackward(batch[i].tokens(), batch[i].targets(), batch[i].tokens().length, scale,
                        sequenceSeed(batch.length, i)));
                mine.asFloatBuffer().put(g);
                mine.position(mine.position() + 4 * g.length);
            }
            long e0 = System.nanoTime();
            List<byte[]> all = replicas.exchange(mine.array());
            exchangeNanos += System.nanoTime() - e0;
            if (all.size() != replicas.count()) {
                throw new IllegalStateException(all.size() + " replicas answered, " + replicas.count() + " expected");
            }
            for (byte[] part : all) {
                java.nio.ByteBuffer b = java.nio.ByteBuffer.wrap(part);
                for (int i = 0; i < per; i++) {
                    lossSum += b.getDouble();
                    java.nio.FloatBuffer f = b.asFloatBuffer();
                    for (int k = 0; k < g.length; k++) {
                        sum[k] += f.get(k);
                    }
                    b.position(b.position() + 4 * g.length);
                }
            }
        }
        System.arraycopy(sum, 0, g, 0, g.length);
        double loss = counted == 0 ? 0 : lossSum / counted;
        if (!Double.isFinite(loss)) {
            throw new TrainingDivergedException("loss is " + loss + " at step " + (step + 1) + "; stopping");
        }
        return loss;
    }

    /** The dropout seed of sequence i of the step's n (the same for every replica). */
    private long sequenceSeed(int n, int i) {
        return cfg.seed() * 1_000_003L + (long) step * n + i;
    }

    private double meanLoss(Example[] batch, int counted, SequenceStep f) {
        double lossSum = 0;
        float scale = counted == 0 ? 0f : 1f / counted;
        for (int i = 0; i < batch.length; i++) {
            Example e = batch[i];
            long seed = cfg.seed() * 1_000_003L + (long) step * batch.length + i;
            lossSum += f.run(e.tokens(), e.targets(), e.tokens().length, scale, seed);
        }
        double loss = counted == 0 ? 0 : lossSum / counted;
        if (!Double.isFinite(loss)) {
            throw new TrainingDivergedException("loss is " + loss + " at step " + (step + 1) + "; stopping");
        }
        return loss;
    }

    /** The error naming the first non-finite gradient element (the norm was not finite). */
    private TrainingDivergedException nonFiniteGradient() {
        for (ParamStore.View p : store.views()) {
            for (int i = 0; i < p.len(); i++) {
                float g = p.grad(i);
                if (!Float.isFinite(g)) {
                    return new TrainingDivergedException("gradient of " + p.name() + " is " + g + " at step " + (step + 1) + "; stopping");
                }
            }
        }
        return new TrainingDivergedException("the gradient norm is not finite at step " + (step + 1) + "; stopping");
    }

    /**
     * {@link #trainStep} on the device: the same sequence seeds, clipping and schedule; the optimizer runs there.
     * AdaLoRA's parts that need the whole picture run on the host, as on the JVM: the orthogonal regulariser
     * (from the values synced after the previous step; its gradient is added on the device) and, after the
     * update, the rank allocator over the synced values and the clipped gradients, whose zeroed singular
     * values are zeroed on the device too.
     */
    private StepStats deviceStep(long t0, Example[] batch, int counted, int tokens) {
        double loss = meanLoss(batch, counted, device::forwardBackward);
        double orth = 0;
        if (allocator != null) {
            Arrays.fill(store.grads, 0f);
            orth = orthogonalRegularizer(); // its gradient alone, in the host's gradient array
            device.addToGradients(store.grads);
        }
        double norm = Math.sqrt(device.gradNormSquared());
        if (!Double.isFinite(norm)) {
            device.gradientsToHost();
            throw nonFiniteGradient();
        }
        float clip = cfg.maxGradNorm() > 0 && norm > cfg.maxGradNorm() ? (float) (cfg.maxGradNorm() / (norm + 1e-6)) : 1f;
        float lr = cfg.lrSchedule().lr(step);
        if (allocator != null) {
            device.gradientsToHost();
        }
        device.update(lr, cfg.beta1(), cfg.beta2(), cfg.eps(), cfg.weightDecay(), step + 1, clip);
        int budget = -1;
        if (allocator != null) {
            device.syncToHost();
            float[] g = store.grads, w = store.values;
            for (int i = 0; i < g.length; i++) {
                g[i] *= clip; // the allocator sees the clipped gradients, as on the JVM
            }
            float[] before = w.clone();
            budget = allocator.updateAndAllocate(step);
            float[] keep = null;
            for (int i = 0; i < w.length; i++) {
                if (w[i] != before[i]) { // zeroed by the allocator
                    if (keep == null) {
                        keep = new float[w.length];
                        Arrays.fill(keep, 1f);
                    }
                    keep[i] = 0f;
                }
            }
            if (keep != null) {
                device.maskValues(keep);
            }
        }
        step++;
        return new StepStats(step, loss, lr, norm, tokens, System.nanoTime() - t0, orth, budget);
    }

    /** Mean loss per counted token over the held-out examples (no dropout, no gradients). */
    public double evalLoss() {
        double sum = 0;
        int counted = 0;
        for (Example e : eval) {
            sum += device != null ? device.loss(e.tokens(), e.targets(), e.tokens().length)
                    : graph.loss(e.tokens(), e.targets(), e.tokens().length);
            counted += e.countedTargets();
        }
        return counted == 0 ? Double.NaN : sum / counted;
    }

    private Example next() {
        if (cursor == order.length) {
            cursor = 0;
            epoch++;
            shuffle();
        }
        return train.get(order[cursor++]);
    }

    private void shuffle() {
        if (!cfg.shuffle()) {
            return;
        }
        for (int i = 0; i < order.length; i++) {
            order[i] = i;
        }
        SplittableRandom r = new SplittableRandom(cfg.seed() + 31L * epoch);
        for (int i = order.length - 1; i > 0; i--) {
            int j = r.nextInt(i + 1);
            int t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
    }
}

package io.lora4j.tornado;

import io.lora4j.model.lora.AdapterSet;
import io.lora4j.model.Backend;
import io.lora4j.model.Llama;
import io.lora4j.model.State;
import io.lora4j.model.train.TrainingBackend;
import io.lora4j.model.lora.LoraLayer;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * The TornadoVM backend: the forward pass as per-layer task graphs on a device
 * ({@link InferencePlan}). Prompts are processed in batched chunks of up to the state's batch size
 * ({@link #MAX_CHUNK} at most), decoding one token at a time through the same graphs. The
 * plan is built (and the weights uploaded) at the first token of a sequence, and again whenever the
 * weights, the active adapters or their values have changed by then; within a sequence they must
 * stay as they were.
 */
public final class TornadoBackend implements Backend, TrainingBackend {
    /** The most prompt tokens one batched execution of the block graphs takes (the attention scratch grows with it). */
    static final int MAX_CHUNK = 64;
    private final Function<DevicePlan, PlanRunner> runners;
    private InferencePlan plan;
    private List<Object> builtFor;
    private int builtHash;
    private final List<TrainPlan> trainPlans = new ArrayList<>();
    private DeviceProfile profile;

    TornadoBackend(Function<DevicePlan, PlanRunner> runners) {
        this.runners = runners;
    }

    @Override
    public String name() {
        return "tornado";
    }

    @Override
    public String device() {
        return plan == null ? "TornadoVM (no plan built yet)" : plan.device();
    }

    @Override
    public void forward(Llama m, State s, int T, int pos, int logitRows) {
        if (logitRows > 1) {
            throw new IllegalArgumentException("the tornado backend returns the last token's logits only");
        }
        List<Object> key = identity(m, s);
        if (pos == 0) {
            int hash = adapterHash(m);
            if (plan == null || !sameIdentities(key, builtFor) || hash != builtHash) {
                rebuild(m, s, key, hash);
            }
        } else if (plan == null || !sameIdentities(key, builtFor)) {
            throw new IllegalStateException("the model's weights or active adapters changed in the middle of a sequence "
                    + "(position " + pos + "); the tornado backend uploads them at the start of a sequence: start again from position 0");
        }
        int C = m.config().dim();
        for (int done = 0; done < T; done += plan.T) {
            plan.chunk(s.x, done * C, Math.min(plan.T, T - done), pos + done);
        }
        if (logitRows == 1) {
            plan.logits(s.logits);
        }
    }

    /**
     * Records the device plans' executions into {@code p} from now on (the inference and training plans, and those
     * built later; null stops): per graph and kernel times, bytes copied, executions and device memory.
     */
    public void profile(DeviceProfile p) {
        profile = p;
        if (plan != null) {
            plan.profile(p);
        }
        trainPlans.forEach(t -> t.profile(p));
    }

    /** Rows per batched execution of the current plan (0 before the first forward). */
    int chunkRows() {
        return plan == null ? 0 : plan.T;
    }

    private void rebuild(Llama m, State s, List<Object> key, int hash) {
        if (plan != null) {
            plan.close();
            plan = null;
        }
        plan = new InferencePlan(m, s.contextLength, Math.min(s.maxT, MAX_CHUNK), runners);
        if (profile != null) {
            plan.profile(profile);
        }
        builtFor = key;
        builtHash = hash;
    }

    /** What the plan was built from, compared by identity: every block's weights, the output, the adapters and scales, the context. */
    private static List<Object> identity(Llama m, State s) {
        List<Object> key = new ArrayList<>();
        for (int l = 0; l < m.config().nLayers(); l++) {
            key.add(m.layer(l));
        }
        key.add(m.output());
        for (AdapterSet.Active a : m.adapters().active()) {
            key.add(a.adapter());
            key.add(a.scale());
        }
        key.add(s.contextLength);
        key.add(s.maxT);
        return key;
    }

    private static boolean sameIdentities(List<Object> a, List<Object> b) {
        if (b == null || a.size() != b.size()) {
            return false;
        }
        for (int i = 0; i < a.size(); i++) {
            Object x = a.get(i), y = b.get(i);
            if (x != y && !(x instanceof Number && x.equals(y))) {
                return false;
            }
        }
        return true;
    }

    /** The adapters' current values (they may be trained in place between sequences). */
    private static int adapterHash(Llama m) {
        int h = 1;
        for (AdapterSet.Active a : m.adapters().active()) {
            h = 31 * h + Arrays.hashCode(a.adapter().store().values);
        }
        return h;
    }

    /** The training plan for {@code adapter} (AdamW or SGD on the device); closed with the backend. */
    @Override
    public io.lora4j.model.train.DeviceTraining training(Llama m, io.lora4j.model.lora.LoraAdapter adapter, int maxT,
                                                        io.lora4j.model.train.TrainConfig cfg) {
        if (cfg.loraplusLrRatio() > 0) {
            throw new IllegalArgumentException("LoRA+ (--loraplus-lr-ratio) gives lora_B its own learning rate; the tornado "
                    + "backend's optimizer kernels take one learning rate for the whole adapter; train it with --backend jvm");
        }
        TrainPlan tp = new TrainPlan(m, adapter, maxT, cfg.optimizer(), runners);
        if (profile != null) {
            tp.profile(profile);
        }
        trainPlans.add(tp);
        return tp;
    }

    @Override
    public void close() {
        if (plan != null) {
            plan.close();
            plan = null;
        }
        trainPlans.forEach(TrainPlan::close);
        trainPlans.clear();
    }
}

package io.lora4j.model.train;

import io.lora4j.kernels.AdamW;
import io.lora4j.kernels.Sgd;
import io.lora4j.model.lora.ParamStore;

import java.util.ArrayList;
import java.util.List;

/**
 * The optimizer's parameter groups over an adapter's flat {@link ParamStore}, as contiguous ranges with
 * a learning-rate factor and whether weight decay applies. Plain training: one group, every tensor at lr
 * with the weight decay. LoRA+ ({@code loraplus_lr_ratio} R &gt; 0) takes PEFT's
 * {@code create_loraplus_optimizer} groups (peft/optimizers/loraplus.py), tensor by tensor:
 * <ul>
 *   <li>groupB: lora_B, and DoRA's lora_magnitude_vector (one-dimensional, no "bias" in its name) — lr·R,
 *       weight decay;</li>
 *   <li>groupB_no_decay: lora_B's bias (PEFT: one-dimensional, "bias" in the name) — lr·R, no weight decay;</li>
 *   <li>groupA: everything else — lora_A, AdaLoRA's lora_E, the modules_to_save copies (lm_head,
 *       embed_tokens) — lr, weight decay.</li>
 * </ul>
 * PEFT's fourth group, {@code embedding} at {@code loraplus_lr_embedding}, holds LoRA layers on embedding
 * modules, which lora4j does not make. With LoRA+, the weight decay is PEFT's {@code loraplus_weight_decay}
 * (PEFT's groups override the optimizer's own weight_decay). Every element is updated exactly as the
 * whole-store update would update it at its group's learning rate.
 */
public final class ParamGroups {

    /** {@code len} elements from {@code off} at lr·{@code lrScale}, with weight decay when {@code decay}. */
    public record Group(String name, int off, int len, float lrScale, boolean decay) {
    }

    private final List<Group> groups;

    private ParamGroups(List<Group> groups) {
        this.groups = List.copyOf(groups);
    }

    /** The groups of {@code store}'s tensors for LoRA+ ratio {@code ratio} (0: one group at lr). */
    public static ParamGroups of(ParamStore store, float ratio) {
        List<Group> out = new ArrayList<>();
        if (ratio == 0) {
            out.add(new Group("all", 0, store.size(), 1f, true));
            return new ParamGroups(out);
        }
        for (ParamStore.View v : store.views()) {
            String group = group(v.name());
            float scale = group.equals("groupA") ? 1f : ratio;
            boolean decay = !group.equals("groupB_no_decay");
            Group last = out.isEmpty() ? null : out.get(out.size() - 1);
            if (last != null && last.name().equals(group) && last.off() + last.len() == v.off()) {
                out.set(out.size() - 1, new Group(group, last.off(), last.len() + v.len(), scale, decay));
            } else {
                out.add(new Group(group, v.off(), v.len(), scale, decay));
            }
        }
        return new ParamGroups(out);
    }

    /** PEFT's LoRA+ group of a tensor named as the store names it. */
    static String group(String tensor) {
        if (tensor.endsWith(".lora_B.bias")) {
            return "groupB_no_decay";
        }
        return tensor.endsWith(".lora_B") || tensor.endsWith(".lora_magnitude_vector") ? "groupB" : "groupA";
    }

    public List<Group> groups() {
        return groups;
    }

    /**
     * One optimizer step over every group: AdamW (moments m1, m2) or SGD (momentum buffer m1), step t
     * (1-based), learning rate {@code lr} scaled per group.
     */
    public void update(ParamStore store, float[] m1, float[] m2, TrainConfig cfg, float lr, int t) {
        for (Group g : groups) {
            float glr = g.lrScale() == 1f ? lr : lr * g.lrScale();
            float wd = g.decay() ? cfg.weightDecay() : 0f;
            if (cfg.optimizer().equals("adamw")) {
                AdamW.update(store.values, store.grads, m1, m2, glr, cfg.beta1(), cfg.beta2(), cfg.eps(), wd, t, g.off(), g.len());
            } else {
                Sgd.update(store.values, store.grads, m1, glr, cfg.beta1(), wd, g.off(), g.len());
            }
        }
    }
}

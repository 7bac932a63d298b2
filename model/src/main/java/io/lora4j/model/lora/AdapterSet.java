package io.lora4j.model.lora;

import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;
import io.lora4j.model.arch.LlamaConfig;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The named adapters loaded on one base model, and which of them the forward pass applies with
 * which weights (PEFT's {@code load_adapter}, {@code set_adapter}, {@code disable_adapter},
 * {@code delete_adapter}; several active at once add up). The base weights are never touched.
 */
public final class AdapterSet {

    /** An adapter applied in the forward pass with a weight ({@code y += scale·s·B A x}). */
    public record Active(LoraAdapter adapter, float scale) {
    }

    private final LlamaConfig config;
    private final Map<String, LoraAdapter> loaded = new LinkedHashMap<>();
    private final List<Active> active = new ArrayList<>();
    private Weight head;
    private ParamStore.View embed;

    public AdapterSet(LlamaConfig config) {
        this.config = config;
    }

    /**
     * Registers {@code a} under its name (replacing one of the same name) and makes it the only
     * active adapter; {@code null} disables every adapter (the base model exactly).
     */
    public void set(LoraAdapter a) {
        if (a == null) {
            disable();
            return;
        }
        loaded.put(a.name(), a);
        activate(Map.of(a.name(), 1f));
    }

    /** Registers a named adapter without activating it. */
    public void add(LoraAdapter a) {
        if (loaded.containsKey(a.name())) {
            throw new IllegalArgumentException("an adapter named '" + a.name() + "' is already loaded");
        }
        loaded.put(a.name(), a);
    }

    /** The loaded adapters by name, in load order. */
    public Map<String, LoraAdapter> loaded() {
        return Collections.unmodifiableMap(loaded);
    }

    /**
     * Activates the named adapters with per-adapter scales, in the given order. {@code lm_head} /
     * {@code embed_tokens} copies come from the first active adapter that has them.
     */
    public void activate(Map<String, Float> scales) {
        List<Active> next = new ArrayList<>();
        for (var e : scales.entrySet()) {
            LoraAdapter a = loaded.get(e.getKey());
            if (a == null) {
                throw new IllegalArgumentException("no adapter named '" + e.getKey() + "' (loaded: " + loaded.keySet() + ")");
            }
            next.add(new Active(a, e.getValue()));
        }
        active.clear();
        active.addAll(next);
        head = null;
        embed = null;
        for (Active x : active) {
            if (head == null && x.adapter().lmHead != null) {
                head = new Weight("lm_head", GgmlType.F32, x.adapter().lmHead.segment(), config.vocabSize(), config.dim());
            }
            if (embed == null && x.adapter().embedTokens != null) {
                embed = x.adapter().embedTokens;
            }
        }
    }

    /** No adapter is applied: the forward pass is the base model's exactly. */
    public void disable() {
        activate(Map.of());
    }

    /** Unloads the named adapter (deactivating it). */
    public void delete(String name) {
        if (loaded.remove(name) == null) {
            throw new IllegalArgumentException("no adapter named '" + name + "'");
        }
        Map<String, Float> keep = new LinkedHashMap<>();
        for (Active x : active) {
            if (!x.adapter().name().equals(name)) {
                keep.put(x.adapter().name(), x.scale());
            }
        }
        activate(keep);
    }

    /** The adapters applied in the forward pass, with their scales. */
    public List<Active> active() {
        return List.copyOf(active);
    }

    /** The trained lm_head of the first active adapter that has one, or null. */
    public Weight head() {
        return head;
    }

    /** (V, C) the trained embed_tokens of the first active adapter that has one, or null. */
    public ParamStore.View embed() {
        return embed;
    }
}

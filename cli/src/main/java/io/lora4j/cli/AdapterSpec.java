package io.lora4j.cli;

import io.lora4j.model.Llama;
import io.lora4j.model.lora.PeftAdapters;

import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/** {@code DIR[:NAME[:SCALE]]}: an adapter directory, the name to load it under and its scale. */
record AdapterSpec(Path dir, String name, float scale) {

    static AdapterSpec parse(String spec) {
        String[] p = spec.split(":");
        if (p.length > 3 || p[0].isEmpty()) {
            throw new IllegalArgumentException("--adapter expects DIR[:NAME[:SCALE]], got '" + spec + "'");
        }
        Path dir = Path.of(p[0]);
        String name = p.length > 1 && !p[1].isEmpty() ? p[1] : dir.getFileName().toString();
        float scale = 1f;
        if (p.length == 3) {
            try {
                scale = Float.parseFloat(p[2]);
            } catch (NumberFormatException e) {
                throw new IllegalArgumentException("--adapter " + spec + ": the scale is not a number");
            }
        }
        return new AdapterSpec(dir, name, scale);
    }

    /** Loads every spec into the model and activates them all with their scales. */
    static void applyAll(List<String> specs, Llama m) {
        if (specs == null || specs.isEmpty()) {
            return;
        }
        Map<String, Float> scales = new LinkedHashMap<>();
        for (String s : specs) {
            AdapterSpec a = parse(s);
            m.adapters().add(PeftAdapters.load(a.dir(), m, a.name()));
            scales.put(a.name(), a.scale());
        }
        m.adapters().activate(scales);
    }
}

package io.lora4j.serve;

import io.lora4j.model.Llama;
import io.lora4j.model.format.ModelFormatException;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.PeftAdapters;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The adapters a server can serve, by name: those loaded at start or through the load route, and —
 * with an adapter directory — every PEFT adapter directory inside it, loaded on first use. At most
 * {@code maxLoaded} are held in memory; the least recently used is dropped (it is loaded again from
 * its path when next asked for; a request already running with it keeps its copy). Paths given by
 * clients must lie inside the adapter directory, symbolic links resolved.
 */
final class AdapterRegistry {

    /** Why an adapter could not be had: {@code status} is the HTTP status to answer with. */
    static final class AdapterException extends RuntimeException {
        final int status;

        AdapterException(int status, String message) {
            super(message);
            this.status = status;
        }
    }

    private final Llama base;
    private final Path adapterDir;  // real path, or null
    private final int maxLoaded;
    private final Map<String, Path> known = new LinkedHashMap<>();            // name → adapter directory
    private final LinkedHashMap<String, LoraAdapter> loaded = new LinkedHashMap<>(16, 0.75f, true); // LRU order
    private final Map<String, Float> defaultScale = new LinkedHashMap<>();   // llama.cpp's /lora-adapters scales

    AdapterRegistry(Llama base, Path adapterDir, int maxLoaded) {
        if (maxLoaded < 1) {
            throw new IllegalArgumentException("--max-loras must be at least 1");
        }
        this.base = base;
        this.maxLoaded = maxLoaded;
        try {
            this.adapterDir = adapterDir == null ? null : adapterDir.toRealPath();
        } catch (IOException e) {
            throw new IllegalArgumentException("--adapter-dir " + adapterDir + ": " + e.getMessage());
        }
        if (this.adapterDir != null && !Files.isDirectory(this.adapterDir)) {
            throw new IllegalArgumentException("--adapter-dir " + adapterDir + " is not a directory");
        }
    }

    /** Registers and loads an adapter given on the command line (any path the operator names). */
    synchronized void preload(String name, Path dir) {
        checkName(name);
        LoraAdapter a = load(name, dir);
        known.put(name, dir);
        put(name, a);
    }

    /** Loads {@code path} (relative to, and inside, the adapter directory) under {@code name} (the load route). */
    synchronized void load(String name, String path) {
        checkName(name);
        if (known.containsKey(name)) {
            throw new AdapterException(400, "an adapter named '" + name + "' is already loaded");
        }
        Path dir = inside(path);
        LoraAdapter a = load(name, dir);
        known.put(name, dir);
        put(name, a);
    }

    /** Forgets {@code name}; requests running with it finish with their copy. */
    synchronized void unload(String name) {
        if (known.remove(name) == null) {
            throw new AdapterException(404, "no adapter named '" + name + "' is loaded");
        }
        loaded.remove(name);
        defaultScale.remove(name);
    }

    /** The adapter called {@code name}, loading it (from the adapter directory, or again after eviction) when needed; null when there is none. */
    synchronized LoraAdapter get(String name) {
        LoraAdapter a = loaded.get(name);
        if (a != null) {
            return a;
        }
        Path dir = known.get(name);
        if (dir == null && adapterDir != null && validName(name)) {
            Path candidate = adapterDir.resolve(name);
            if (Files.isRegularFile(candidate.resolve(PeftAdapters.CONFIG)) && isInside(candidate)) {
                dir = candidate;
                known.put(name, dir);
            }
        }
        if (dir == null) {
            return null;
        }
        a = load(name, dir);
        put(name, a);
        return a;
    }

    /** Every servable adapter name: loaded or known, then those in the adapter directory. */
    synchronized List<String> names() {
        List<String> out = new ArrayList<>(known.keySet());
        if (adapterDir != null) {
            try (var s = Files.list(adapterDir)) {
                s.filter(d -> Files.isRegularFile(d.resolve(PeftAdapters.CONFIG))).map(d -> d.getFileName().toString())
                        .filter(AdapterRegistry::validName).sorted().filter(n -> !out.contains(n)).forEach(out::add);
            } catch (IOException e) {
                // the listing is best effort: a vanished directory serves nothing more
            }
        }
        return out;
    }

    /** Names in load order with their paths (llama.cpp's /lora-adapters ids are indexes into this). */
    synchronized List<Map.Entry<String, Path>> entries() {
        return new ArrayList<>(known.entrySet());
    }

    synchronized int loadedCount() {
        return loaded.size();
    }

    synchronized float defaultScale(String name) {
        return defaultScale.getOrDefault(name, 0f);
    }

    synchronized void setDefaultScale(String name, float scale) {
        if (!known.containsKey(name)) {
            throw new AdapterException(404, "no adapter named '" + name + "' is loaded");
        }
        defaultScale.put(name, scale);
    }

    private void put(String name, LoraAdapter a) {
        loaded.put(name, a);
        while (loaded.size() > maxLoaded) {
            String eldest = loaded.keySet().iterator().next();
            loaded.remove(eldest);
        }
    }

    private LoraAdapter load(String name, Path dir) {
        try {
            return PeftAdapters.load(dir, base, name);
        } catch (ModelFormatException | IllegalArgumentException e) {
            throw new AdapterException(400, "adapter '" + name + "' at " + dir + ": " + e.getMessage());
        } catch (java.io.UncheckedIOException e) {
            throw new AdapterException(400, "adapter '" + name + "' at " + dir + ": " + e.getCause().getMessage());
        }
    }

    private Path inside(String path) {
        if (adapterDir == null) {
            throw new AdapterException(403, "this server loads adapters at run time only from its --adapter-dir, and has none");
        }
        if (path == null || path.isBlank()) {
            throw new AdapterException(400, "lora_path is missing");
        }
        Path p;
        try {
            p = adapterDir.resolve(path).normalize();
        } catch (java.nio.file.InvalidPathException e) {
            throw new AdapterException(400, "lora_path '" + path + "' is not a valid path");
        }
        if (!isInside(p)) {
            throw new AdapterException(403, "lora_path '" + path + "' is outside the server's adapter directory");
        }
        if (!Files.isRegularFile(p.resolve(PeftAdapters.CONFIG))) {
            throw new AdapterException(404, "no adapter (" + PeftAdapters.CONFIG + ") at lora_path '" + path + "'");
        }
        return p;
    }

    /** Whether p, with every symbolic link resolved, lies inside the adapter directory. */
    private boolean isInside(Path p) {
        if (!p.normalize().startsWith(adapterDir)) {
            return false;
        }
        try {
            return !Files.exists(p) || p.toRealPath().startsWith(adapterDir);
        } catch (IOException e) {
            return false;
        }
    }

    private static void checkName(String name) {
        if (name == null || !validName(name)) {
            throw new AdapterException(400, "adapter name '" + name + "' must be 1-128 letters, digits, '.', '_' or '-'");
        }
    }

    static boolean validName(String name) {
        return name.matches("[A-Za-z0-9._-]{1,128}") && !name.equals(".") && !name.equals("..");
    }
}

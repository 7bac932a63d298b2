package io.lora4j.tornado;

import io.lora4j.model.Backend;

/** Registers the TornadoVM backend as {@code --backend tornado} (a {@link java.util.ServiceLoader} service). */
public final class TornadoProvider implements Backend.Provider {

    @Override
    public String name() {
        return "tornado";
    }

    @Override
    public String unavailable() {
        return Tornado.unavailable();
    }

    @Override
    public boolean hasGpu() {
        return Tornado.devices().stream().anyMatch(Tornado.Device::isGpu);
    }

    @Override
    public Backend open(Integer device) {
        var dev = Tornado.device(device);
        return new TornadoBackend(p -> new TornadoRunner(p, dev));
    }
}

package io.lora4j.cli;

import io.lora4j.tornado.Tornado;
import picocli.CommandLine.Command;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/** {@code lora4j devices}: the TornadoVM backends and devices, or exactly why TornadoVM is unavailable. */
@Command(name = "devices", mixinStandardHelpOptions = true,
        description = "List TornadoVM backends and devices (numbers for --device), or say why TornadoVM is unavailable.")
final class DevicesCommand implements Callable<Integer> {

    @Override
    public Integer call() {
        System.out.println("jvm: the Vector-API backend on this CPU (" + Runtime.getRuntime().availableProcessors() + " cores)");
        String why = Tornado.unavailable();
        if (why != null) {
            System.out.println("tornado: unavailable: " + why);
            return 0;
        }
        List<Tornado.Device> all = Tornado.devices();
        System.out.println("tornado: " + all.size() + " device(s)");
        for (Tornado.Device d : all) {
            System.out.printf(Locale.ROOT, "  --device %d  [%s %d:%d] %s (%s), %s, %.0f MiB global memory%n", d.index(),
                    d.backendName(), d.backend(), d.device(), d.description(), d.name(), d.type(), d.globalMemory() / 1048576.0);
        }
        return 0;
    }
}

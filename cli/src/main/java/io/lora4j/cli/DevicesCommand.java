package io.lora4j.cli;

import io.lora4j.tornado.DeviceChecks;
import io.lora4j.tornado.Tornado;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.util.List;
import java.util.Locale;
import java.util.concurrent.Callable;

/**
 * {@code lora4j devices}: the TornadoVM backends and devices, or exactly why TornadoVM is unavailable; with
 * {@code --check}, the device kernel checks on one of them.
 */
@Command(name = "devices", mixinStandardHelpOptions = true,
        description = "List TornadoVM backends and devices (numbers for --device), or say why TornadoVM is unavailable.")
final class DevicesCommand implements Callable<Integer> {

    @Option(names = "--check", description = "Run every device kernel alone on the device and as plain Java, on odd sizes, "
            + "and compare the outputs (the tornado tests' kernel checks); exit status 1 if any differs.")
    boolean check;

    @Option(names = "--device", paramLabel = "N", description = "The device --check runs on (default: TornadoVM's default device).")
    Integer device;

    @Override
    public Integer call() {
        System.out.println("jvm: the Vector-API backend on this CPU (" + Runtime.getRuntime().availableProcessors() + " cores)");
        String why = Tornado.unavailable();
        if (why != null) {
            System.out.println("tornado: unavailable: " + why);
            return check ? 1 : 0;
        }
        List<Tornado.Device> all = Tornado.devices();
        System.out.println("tornado: " + all.size() + " device(s)");
        for (Tornado.Device d : all) {
            System.out.printf(Locale.ROOT, "  --device %d  [%s %d:%d] %s (%s), %s, %.0f MiB global memory%n", d.index(),
                    d.backendName(), d.backend(), d.device(), d.description(), d.name(), d.type(), d.globalMemory() / 1048576.0);
        }
        if (!check) {
            return 0;
        }
        int failed = 0;
        List<DeviceChecks.Check> checks = DeviceChecks.all();
        for (DeviceChecks.Check c : checks) {
            String diff;
            try {
                diff = DeviceChecks.compareOnTornado(c, device);
            } catch (RuntimeException e) {
                diff = c + ": " + e.getClass().getSimpleName() + ": " + e.getMessage();
            }
            System.out.println((diff == null ? "ok   " : "FAIL ") + (diff == null ? c.name() : diff));
            failed += diff == null ? 0 : 1;
        }
        System.out.printf(Locale.ROOT, "device kernel checks: %d of %d agree with the JVM%n", checks.size() - failed, checks.size());
        return failed == 0 ? 0 : 1;
    }
}

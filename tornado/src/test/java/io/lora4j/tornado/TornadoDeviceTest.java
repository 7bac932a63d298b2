package io.lora4j.tornado;

import io.lora4j.kernels.GgmlType;
import io.lora4j.model.Llama;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.State;
import io.lora4j.model.format.GgufFile;
import io.lora4j.model.format.RandomModel;
import io.lora4j.model.lora.LoraAdapter;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.reflect.Constructor;
import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The plans on a real TornadoVM device against the same plans run by the JVM runner (and so
 * against the JVM backend, which the JVM runner is tested against). Runs only in a JVM started
 * with a TornadoVM SDK ({@code mvn -Ptornado} with TORNADO_SDK set); skipped with the reason elsewhere.
 */
@Tag("tornado")
class TornadoDeviceTest {

    @BeforeEach
    void needsTornado() {
        String why = Tornado.unavailable();
        assumeTrue(why == null, () -> "TornadoVM runtime not present: " + why);
    }

    static PlanRunner device(DevicePlan p) {
        return new TornadoRunner(p, null);
    }

    /** Every public member the facade declares exists in the real tornado-api with the same signature. */
    @Test
    void facadeDeclaresOnlyRealApi() throws Exception {
        Path classes = Path.of(System.getProperty("user.dir")).resolve("../tornado-facade/target/classes").normalize();
        assumeTrue(Files.isDirectory(classes), "facade classes not built at " + classes);
        List<String> names;
        try (Stream<Path> s = Files.walk(classes)) {
            names = s.filter(p -> p.toString().endsWith(".class"))
                    .map(p -> classes.relativize(p).toString().replace('/', '.').replaceAll("\\.class$", "")).toList();
        }
        List<String> problems = new ArrayList<>();
        try (URLClassLoader facade = new URLClassLoader(new URL[]{classes.toUri().toURL()}, ClassLoader.getPlatformClassLoader())) {
            for (String n : names) {
                Class<?> f = facade.loadClass(n);
                Class<?> real = Class.forName(n);
                if (f.isInterface() != real.isInterface() || f.isEnum() != real.isEnum()) {
                    problems.add(n + ": kind differs");
                }
                for (Method m : f.getDeclaredMethods()) {
                    if (!Modifier.isPublic(m.getModifiers()) || m.isSynthetic()) {
                        continue;
                    }
                    try {
                        Method r = real.getMethod(m.getName(), types(m.getParameterTypes()));
                        if (!r.getReturnType().getName().equals(m.getReturnType().getName())
                                || Modifier.isStatic(r.getModifiers()) != Modifier.isStatic(m.getModifiers())) {
                            problems.add(n + "." + m.getName() + ": return type or static differs");
                        }
                    } catch (NoSuchMethodException e) {
                        problems.add(n + "." + m.getName() + Arrays.toString(m.getParameterTypes()) + ": not in the real API");
                    }
                }
                for (Constructor<?> c : f.getDeclaredConstructors()) {
                    if (Modifier.isPublic(c.getModifiers())) {
                        try {
                            real.getConstructor(types(c.getParameterTypes()));
                        } catch (NoSuchMethodException e) {
                            problems.add(n + " constructor " + Arrays.toString(c.getParameterTypes()) + ": not in the real API");
                        }
                    }
                }
                for (Field fl : f.getDeclaredFields()) {
                    if (Modifier.isPublic(fl.getModifiers()) && !fl.isSynthetic()) {
                        try {
                            Field r = real.getField(fl.getName());
                            if (!r.getType().getName().equals(fl.getType().getName())) {
                                problems.add(n + "." + fl.getName() + ": type differs");
                            }
                            if (Modifier.isStatic(fl.getModifiers()) && fl.getType() == int.class) {
                                fl.setAccessible(true);
                                r.setAccessible(true);
                                if (fl.getInt(null) != r.getInt(null)) {
                                    problems.add(n + "." + fl.getName() + ": constant value differs");
                                }
                            }
                        } catch (NoSuchFieldException e) {
                            problems.add(n + "." + fl.getName() + ": not in the real API");
                        }
                    }
                }
            }
        }
        assertTrue(problems.isEmpty(), String.join("\n", problems));
        assertTrue(names.size() >= 15, "facade classes found: " + names.size());
    }

    /** Facade parameter types mapped to the real classes of the same names. */
    private static Class<?>[] types(Class<?>[] facadeTypes) throws ClassNotFoundException {
        Class<?>[] out = new Class<?>[facadeTypes.length];
        for (int i = 0; i < out.length; i++) {
            Class<?> t = facadeTypes[i];
            out[i] = t.isPrimitive() ? t : t.isArray() && !t.getComponentType().isPrimitive()
                    ? Class.forName("[L" + t.getComponentType().getName() + ";") : t.isArray() ? t : Class.forName(t.getName());
        }
        return out;
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"F32", "F16", "Q8_0"})
    void batchedPrefillAndDecodeOnTheDeviceGiveTheJvmBackendsLogits(GgmlType type, @TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, InferencePlanTest.SMALL, type, 7, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = new Llama(src);
            m.adapters().set(InferencePlanTest.adapter(m, "a", 4, "lora_only", List.of("all-linear"), 1));
            int[] ids = {1, 17, 33, 2, 60, 5, 9};
            try (TornadoBackend dev = new TornadoBackend(TornadoDeviceTest::device);
                 io.lora4j.model.Backend jvm = io.lora4j.model.Backend.named("jvm")) {
                // a 5-token prompt in chunks of 4 (the second padded), then decoding through the same graphs
                State a = m.newState(4, 16), b = m.newState(4, 16);
                float[] want = m.forward(jvm, a, ids, 0, 5, 0).clone();
                InferencePlanTest.assertClose(want, m.forward(dev, b, ids, 0, 5, 0), 1e-4f, type + " prefill");
                for (int i = 5; i < ids.length; i++) {
                    want = m.forward(jvm, a, ids, i, 1, i).clone();
                    InferencePlanTest.assertClose(want, m.forward(dev, b, ids, i, 1, i), 1e-4f, type + " token " + i);
                }
            }
        }
    }

    /** A DoRA adapter (its magnitude step a device task) then a LoRA one, prefill and decode on the device. */
    @Test
    void aDoraAdapterOnTheDeviceGivesTheJvmBackendsLogits(@TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, InferencePlanTest.SMALL, GgmlType.F16, 7, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = new Llama(src);
            m.adapters().add(InferencePlanTest.dora(m, "d", 2));
            m.adapters().add(InferencePlanTest.adapter(m, "b", 2, "none", List.of("q_proj", "down_proj"), 2));
            java.util.Map<String, Float> scales = new java.util.LinkedHashMap<>();
            scales.put("d", 0.7f);
            scales.put("b", 1.3f);
            m.adapters().activate(scales);
            int[] ids = {1, 17, 33, 2, 60, 5, 9};
            try (TornadoBackend dev = new TornadoBackend(TornadoDeviceTest::device);
                 io.lora4j.model.Backend jvm = io.lora4j.model.Backend.named("jvm")) {
                State a = m.newState(4, 16), b = m.newState(4, 16);
                InferencePlanTest.assertClose(m.forward(jvm, a, ids, 0, 5, 0).clone(), m.forward(dev, b, ids, 0, 5, 0), 1e-4f,
                        "prefill");
                for (int i = 5; i < ids.length; i++) {
                    InferencePlanTest.assertClose(m.forward(jvm, a, ids, i, 1, i).clone(), m.forward(dev, b, ids, i, 1, i), 1e-4f,
                            "token " + i);
                }
            }
        }
    }

    @Test
    void stories260kOnTheDeviceContinuesAsLlamaCpp() {
        try (LoadedModel lm = LoadedModel.open(InferencePlanTest.stories(), null);
             TornadoBackend dev = new TornadoBackend(TornadoDeviceTest::device)) {
            int[] prompt = {1, 403, 407, 261, 378};
            var r = io.lora4j.model.Generator.generate(lm.llama(), dev, lm.llama().newState(8, 64), prompt, 0, 24,
                    new io.lora4j.model.Sampler(io.lora4j.model.Sampler.Params.greedy(), lm.llama().config().vocabSize()),
                    java.util.Set.of(), t -> { });
            assertEquals(Arrays.toString(Arrays.copyOf(InferencePlanTest.LLAMA_CPP_64, 24)), Arrays.toString(r.tokens()));
        }
    }

    /** A base quantized on load (its k-bit weights kept as they are on the device): batched prefill and decode as on the JVM. */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"nf4,true", "int8-zp,false"})
    void aKbitBaseOnTheDeviceGivesTheJvmBackendsLogits(String quant, boolean doubleQuant, @TempDir Path dir) throws Exception {
        Path f = dir.resolve("m.gguf");
        RandomModel.write(f, InferencePlanTest.SMALL, GgmlType.F32, 7, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = new Llama(src, io.lora4j.model.Quantization.parse(quant, doubleQuant));
            m.adapters().set(InferencePlanTest.adapter(m, "a", 4, "none", List.of("q_proj", "down_proj"), 1));
            int[] ids = {1, 17, 33, 2, 60, 5, 9};
            try (TornadoBackend dev = new TornadoBackend(TornadoDeviceTest::device);
                 io.lora4j.model.Backend jvm = io.lora4j.model.Backend.named("jvm")) {
                State a = m.newState(4, 16), b = m.newState(4, 16);
                InferencePlanTest.assertClose(m.forward(jvm, a, ids, 0, 5, 0).clone(), m.forward(dev, b, ids, 0, 5, 0), 1e-4f,
                        quant + " prefill");
                for (int i = 5; i < ids.length; i++) {
                    float[] want = m.forward(jvm, a, ids, i, 1, i).clone();
                    InferencePlanTest.assertClose(want, m.forward(dev, b, ids, i, 1, i), 1e-4f, quant + " token " + i);
                }
            }
        }
    }

    /**
     * Two training steps (forward, backward, norm, AdamW) on the device equal the JVM runner's: LoRA with
     * and without dropout and bias, QLoRA over an NF4 base (4-bit weights resident), and AdaLoRA with
     * trainable lm_head and embed_tokens.
     */
    @ParameterizedTest
    @org.junit.jupiter.params.provider.CsvSource({"0.0,none,F16,lora", "0.0,lora_only,F16,lora", "0.1,none,F16,lora",
            "0.0,none,NF4_DQ,lora", "0.1,none,F16,adalora+modules"})
    void trainingStepsOnTheDeviceGiveTheJvmRunnersAdapter(float dropout, String bias, String base, String kind, @TempDir Path dir)
            throws Exception {
        Path f = dir.resolve("m.gguf");
        GgmlType baseType = GgmlType.valueOf(base);
        RandomModel.write(f, InferencePlanTest.SMALL, baseType.ggml ? baseType : GgmlType.F32, 11, null);
        try (GgufFile src = GgufFile.open(f)) {
            Llama m = baseType.ggml ? new Llama(src) : new Llama(src, io.lora4j.model.Quantization.parse("nf4", true));
            LoraAdapter a = TrainPlanTest.adapter(m, dropout, bias, kind), b = TrainPlanTest.adapter(m, dropout, bias, kind);
            int V = m.config().vocabSize();
            int[] s = TrainPlanTest.sequence(9, V, 3);
            int[] t = TrainPlanTest.targets(s, V);
            try (TrainPlan dev = new TrainPlan(m, a, 12, "adamw", TornadoDeviceTest::device);
                 TrainPlan ref = new TrainPlan(m, b, 12, "adamw", JvmRunner::new)) {
                for (int step = 1; step <= 2; step++) {
                    TrainPlanTest.assertClose("loss at step " + step, ref.forwardBackward(s, t, 9, 0.1f, step), dev.forwardBackward(s, t, 9, 0.1f, step), 1e-5);
                    TrainPlanTest.assertClose("norm at step " + step, ref.gradNormSquared(), dev.gradNormSquared(), 1e-4);
                    // Adam's eps at 1e-3, not 1e-8: its first step moves a parameter by lr·g/(|g| + eps), which for a
                    // gradient that cancels to ~1e-9 turns the last bits of the summation order (1e-12 here) into a
                    // visible difference (2.8e-4 in one lora_A value of the AdaLoRA case with eps 1e-8)
                    ref.update(1e-2f, 0.9f, 0.999f, 1e-3f, 0f, step, 1f);
                    dev.update(1e-2f, 0.9f, 0.999f, 1e-3f, 0f, step, 1f);
                }
                ref.syncToHost();
                dev.syncToHost();
                TrainPlanTest.assertClose("eval loss", ref.loss(s, t, 9), dev.loss(s, t, 9), 1e-5);
                for (var v : b.store().views()) {
                    TrainPlanTest.assertArraysClose(v.name(), v.toArray(), a.store().view(v.name()).toArray(), 2e-3);
                }
            }
        }
    }
}

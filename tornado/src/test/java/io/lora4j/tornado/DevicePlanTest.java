package io.lora4j.tornado;

import io.lora4j.kernels.VectorOps;
import io.lora4j.kernels.Matmul;
import io.lora4j.tornado.DevicePlan.Mode;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The data-movement rules of device plans, as the JVM runner enforces them (TornadoVM's semantics). */
class DevicePlanTest {

    @Test
    void firstExecutionCopiesOnceEveryExecutionEachTimeAndOnlyDeclaredOutputsComeBack() {
        float[] w = {1, 2, 3, 4}; // (2, 2)
        float[] x = {1, 1};
        float[] y = new float[2];
        float[] scratch = new float[2];
        DevicePlan p = new DevicePlan();
        p.graph("g").copyIn(Mode.FIRST_EXECUTION, w, scratch).copyIn(Mode.EVERY_EXECUTION, x)
                .task("mv", Matmul::forwardNaive, scratch, x, w, 1, 2, 2)
                .task("acc", VectorOps::axpyNaive, y, scratch, 1f, 2)
                .copyIn(Mode.FIRST_EXECUTION, y).copyOut(Mode.EVERY_EXECUTION, y);
        try (JvmRunner r = new JvmRunner(p)) {
            r.execute(0);
            assertArrayEquals(new float[]{3, 7}, y);
            w[0] = 100; // a FIRST_EXECUTION array on the host changes: the device keeps its copy
            x[1] = 2;   // an EVERY_EXECUTION one is copied again
            r.execute(0);
            assertArrayEquals(new float[]{3 + 5, 7 + 11}, y, "device y accumulates; new x, old w");
            assertArrayEquals(new float[]{0, 0}, scratch, "scratch is never copied out");
        }
    }

    @Test
    void persistAndConsumeShareDeviceArraysBetweenGraphs() {
        float[] x = {1, 2, 3};
        float[] one = {1, 1, 1};
        DevicePlan p = new DevicePlan();
        p.graph("a").copyIn(Mode.EVERY_EXECUTION, x).copyIn(Mode.FIRST_EXECUTION, one)
                .task("inc", VectorOps::axpyNaive, x, one, 1f, 3).persist(x);
        float[] one2 = {1, 1, 1};
        p.graph("b").consume("a", x).copyIn(Mode.FIRST_EXECUTION, one2)
                .task("inc", VectorOps::axpyNaive, x, one2, 10f, 3).copyOut(Mode.EVERY_EXECUTION, x);
        try (JvmRunner r = new JvmRunner(p)) {
            r.execute(0);
            assertArrayEquals(new float[]{1, 2, 3}, x, "a copies nothing out");
            r.execute(1);
            assertArrayEquals(new float[]{12, 13, 14}, x, "b sees a's device x");
        }
    }

    @Test
    void undeclaredArraysAndBrokenChainsAreErrors() {
        float[] x = new float[2], y = new float[2];
        DevicePlan p1 = new DevicePlan();
        p1.graph("g").copyIn(Mode.FIRST_EXECUTION, x).task("t", VectorOps::axpyNaive, y, x, 1f, 2);
        var e1 = assertThrows(IllegalStateException.class, () -> new JvmRunner(p1).execute(0));
        assertTrue(e1.getMessage().contains("g.t: argument 1"), e1.getMessage());

        DevicePlan p2 = new DevicePlan();
        p2.graph("a").copyIn(Mode.FIRST_EXECUTION, x);
        p2.graph("b").consume("a", x).copyIn(Mode.FIRST_EXECUTION, y).task("t", VectorOps::axpyNaive, y, x, 1f, 2);
        JvmRunner r2 = new JvmRunner(p2);
        assertThrows(IllegalStateException.class, () -> r2.execute(1), "a has not run immediately before");
        r2.execute(0);
        var e2 = assertThrows(IllegalStateException.class, () -> r2.execute(1));
        assertTrue(e2.getMessage().contains("does not persist"), e2.getMessage());

        // as on TornadoVM: consumed arrays bind only from the graph that ran immediately before
        float[] z = new float[2];
        DevicePlan p5 = new DevicePlan();
        p5.graph("a").copyIn(Mode.FIRST_EXECUTION, x).persist(x);
        p5.graph("other").copyIn(Mode.FIRST_EXECUTION, z);
        p5.graph("b").consume("a", x).copyIn(Mode.FIRST_EXECUTION, y).task("t", VectorOps::axpyNaive, y, x, 1f, 2);
        JvmRunner r5 = new JvmRunner(p5);
        r5.execute(0);
        r5.execute(1);
        var e5 = assertThrows(IllegalStateException.class, () -> r5.execute(2));
        assertTrue(e5.getMessage().contains("immediately before"), e5.getMessage());
        r5.execute(0);
        r5.execute(2); // bound now; it stays bound for later executions
        r5.execute(1);
        r5.execute(2);

        DevicePlan p4 = new DevicePlan();
        var e4 = assertThrows(IllegalStateException.class, () -> p4.graph("g").task("t", VectorOps::axpyNaive, x, x, 1f, 2));
        assertTrue(e4.getMessage().contains("same array"), e4.getMessage());

        DevicePlan p3 = new DevicePlan();
        assertThrows(IllegalStateException.class, () -> p3.graph("g").copyIn(Mode.FIRST_EXECUTION, x).copyIn(Mode.EVERY_EXECUTION, x));
        assertThrows(IllegalArgumentException.class, () -> p3.graph("h").copyIn(Mode.FIRST_EXECUTION, "not an array"));
    }

    /** TornadoVM allocates no buffer for an array a graph copies in but does not use: handing it on is refused, copying it in at first use works. */
    @Test
    void anArrayIsCopiedInWhereItIsFirstUsed() {
        float[] x = {1, 2}, y = {3, 4}, one = {1, 1};
        DevicePlan bad = new DevicePlan();
        bad.graph("a").copyIn(DevicePlan.Mode.FIRST_EXECUTION, x, y).task("t", io.lora4j.kernels.VectorOps::axpyNaive, x, one, 1f, 2);
        bad.graph("b").task("u", io.lora4j.kernels.VectorOps::axpyNaive, y, x, 1f, 2);
        bad.graphs().getFirst().copyIn(DevicePlan.Mode.FIRST_EXECUTION, one);
        var e = assertThrows(IllegalStateException.class, bad::linkChain);
        assertTrue(e.getMessage().contains("none of its tasks uses"), e.getMessage());
        DevicePlan good = new DevicePlan();
        good.graph("a").copyIn(DevicePlan.Mode.FIRST_EXECUTION, x, one).task("t", io.lora4j.kernels.VectorOps::axpyNaive, x, one, 1f, 2);
        good.graph("b").task("u", io.lora4j.kernels.VectorOps::axpyNaive, y, x, 1f, 2);
        good.copyInAtFirstUse(DevicePlan.Mode.FIRST_EXECUTION, y);
        assertTrue(good.graphs().get(1).copyIn().containsKey(y));
        good.linkChain();
        good.graphs().get(1).copyOut(DevicePlan.Mode.EVERY_EXECUTION, y);
        try (JvmRunner r = new JvmRunner(good)) {
            r.execute(0);
            r.execute(1);
        }
        assertArrayEquals(new float[]{5, 7}, y);
    }

    @Test
    void underDemandOutputsComeBackOnlyWhenAsked() {
        float[] x = {1, 2};
        float[] one = {1, 1};
        DevicePlan p = new DevicePlan();
        p.graph("g").copyIn(Mode.FIRST_EXECUTION, x, one).task("inc", VectorOps::axpyNaive, x, one, 1f, 2)
                .copyOut(Mode.UNDER_DEMAND, x);
        try (JvmRunner r = new JvmRunner(p)) {
            r.execute(0);
            r.execute(0);
            assertArrayEquals(new float[]{1, 2}, x);
            r.copyToHost(0, x);
            assertArrayEquals(new float[]{3, 4}, x);
            assertThrows(IllegalStateException.class, () -> r.copyToHost(0, one));
        }
    }
}

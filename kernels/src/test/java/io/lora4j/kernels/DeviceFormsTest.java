package io.lora4j.kernels;

import org.junit.jupiter.api.Test;

import java.util.SplittableRandom;

import static io.lora4j.kernels.OpsParityTest.assertClose;
import static io.lora4j.kernels.OpsParityTest.random;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

/**
 * The device forms a training plan composes for AdaLoRA and modules_to_save: the singular-value gradient
 * against {@link Lora#backwardNaive}'s dE, the rows scaled by E from the flat buffer, and the embedding
 * scatter-add as the adjoint of the gather (⟨gather(table), y⟩ = ⟨table, scatter(y)⟩), repeated and
 * padding indices included.
 */
class DeviceFormsTest {

    @Test
    void theSingularValueGradientIsTheNaiveBackwardsDe() {
        int T = 5, IN = 7, OUT = 6, r = 3;
        SplittableRandom rnd = new SplittableRandom(1);
        float[] a = random(rnd, r * IN), e = random(rnd, r), b = random(rnd, OUT * r), x = random(rnd, T * IN), dy = random(rnd, T * OUT);
        float s = 0.7f;
        float[] ax = new float[T * r];
        for (int t = 0; t < T; t++) {
            for (int j = 0; j < r; j++) {
                for (int c = 0; c < IN; c++) {
                    ax[t * r + j] += a[j * IN + c] * x[t * IN + c];
                }
            }
        }
        float[] dE = new float[r];
        Lora.backwardNaive(new float[T * IN], new float[r * IN], dE, new float[OUT * r], new float[T * r], dy, ax, x, a, e, b, s, T, IN,
                OUT, r);
        // the device's path: dys = s·dy, gax = dys·B, then dE += Σ_t gax ⊙ ax into a flat gradient buffer at an offset
        float[] dys = new float[T * OUT], gax = new float[T * r], g = new float[4 + r];
        VectorOps.scaleNaive(dys, dy, s, T * OUT);
        Matmul.backwardNaive(gax, dys, b, 0, T, OUT, r, 0);
        Lora.backwardSingularValuesNaive(g, 4, gax, ax, T, r);
        assertClose("dE", dE, java.util.Arrays.copyOfRange(g, 4, 4 + r), 1e-5);
        // and E ⊙ rows from the flat buffer
        float[] p = new float[2 + r];
        System.arraycopy(e, 0, p, 2, r);
        float[] eax = new float[T * r];
        VectorOps.mulRowsNaive(eax, ax, p, 2, T * r, r);
        for (int i = 0; i < T * r; i++) {
            assertEquals(ax[i] * e[i % r], eax[i], "E ⊙ ax at " + i);
        }
    }

    @Test
    void theEmbeddingScatterIsTheAdjointOfTheGather() {
        int V = 6, C = 5, T = 4, off = 3;
        SplittableRandom rnd = new SplittableRandom(2);
        float[] table = random(rnd, off + V * C), y = random(rnd, T * C);
        int[] idx = {4, -1, 0, 4};
        float[] gathered = new float[T * C];
        VectorOps.gatherRowsNaive(gathered, table, off, idx, T, C);
        for (int c = 0; c < C; c++) {
            assertEquals(0f, gathered[C + c], "a padding row gathers zeros");
            assertEquals(table[off + 4 * C + c], gathered[c]);
        }
        float[] scattered = new float[off + V * C];
        VectorOps.scatterAddRowsNaive(scattered, off, y, idx, T, C);
        double lhs = 0, rhs = 0;
        for (int i = 0; i < T * C; i++) {
            lhs += (double) gathered[i] * y[i];
        }
        for (int i = 0; i < table.length; i++) {
            rhs += (double) table[i] * scattered[i];
        }
        assertEquals(lhs, rhs, 1e-5);
        float[] want = new float[C];
        for (int c = 0; c < C; c++) {
            want[c] = y[c] + y[3 * C + c]; // token 4 twice
        }
        assertArrayEquals(want, java.util.Arrays.copyOfRange(scattered, off + 4 * C, off + 5 * C), 1e-6f);
    }

    /**
     * The fast LoRA forward (A's rows four chains at a time) and the fast backward's B products are the
     * device forms' bits: every chain is summed in the oracle's order. r = 6: a block of four and two left.
     */
    @Test
    void fastLoraChainsAreTheOraclesBits() {
        int T = 5, IN = 37, OUT = 29, r = 6;
        SplittableRandom rnd = new SplittableRandom(21);
        float[] p = random(rnd, r * IN + r + OUT * r), x = random(rnd, T * IN), y0 = random(rnd, T * OUT), dy = random(rnd, T * OUT);
        int aOff = 0, eOff = r * IN, bOff = eOff + r;
        for (int eo : new int[]{-1, eOff}) {
            float[] yNaive = y0.clone(), yFast = y0.clone(), axNaive = new float[T * r], axFast = new float[T * r];
            Lora.forwardNaive(yNaive, axNaive, x, p, aOff, eo, bOff, new int[]{T}, 0.7f, T, IN, OUT, r);
            Lora.forward(yFast, axFast, x, p, aOff, eo, bOff, 0.7f, T, IN, OUT, r);
            assertArrayEquals(axNaive, axFast, "A x");
            assertArrayEquals(yNaive, yFast, "y");
            float[] a = java.util.Arrays.copyOfRange(p, aOff, aOff + r * IN), b = java.util.Arrays.copyOfRange(p, bOff, bOff + OUT * r);
            float[] e = new float[r];
            java.util.Arrays.fill(e, 1f);
            if (eo >= 0) {
                e = java.util.Arrays.copyOfRange(p, eOff, eOff + r);
            }
            float[] daxNaive = new float[T * r], daxFast = new float[T * r];
            Lora.backwardNaive(new float[T * IN], new float[r * IN], new float[r], new float[OUT * r], daxNaive, dy, axFast, x, a, e, b,
                    0.7f, T, IN, OUT, r);
            Lora.backward(new float[T * IN], new float[p.length], daxFast, dy, axFast, x, p, aOff, eo, bOff, 0.7f, T, IN, OUT, r);
            assertArrayEquals(daxNaive, daxFast, "e ⊙ s·Bᵀdy");
        }
    }
}

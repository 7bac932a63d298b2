package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

import java.util.SplittableRandom;

import static io.lora4j.kernels.OpsParityTest.assertClose;
import static io.lora4j.kernels.OpsParityTest.random;

/** Gradient checks of every backward kernel (naive oracle) and parity of the fast twins. */
class OpsGradientTest {

    @Test
    void rmsNorm() {
        int T = 3, C = 13;
        SplittableRandom r = new SplittableRandom(1);
        float[] x = random(r, T * C), w = random(r, C), g = random(r, T * C);
        float[] out = new float[T * C], rstd = new float[T];
        float[] dx = new float[T * C], dw = new float[C];
        RmsNorm.forwardNaive(out, rstd, x, w, T, C, 1e-5f);
        RmsNorm.backwardNaive(dx, g, x, w, rstd, T, C);
        RmsNorm.backwardWeightNaive(dw, g, x, rstd, T, C);
        Runnable fwd = () -> RmsNorm.forwardNaive(out, rstd, x, w, T, C, 1e-5f);
        GradCheck.check("x", x, dx, () -> GradCheck.loss(fwd, out, g), 1e-2);
        GradCheck.check("w", w, dw, () -> GradCheck.loss(fwd, out, g), 1e-2);
        float[] dx2 = new float[T * C], dw2 = new float[C];
        RmsNorm.forwardNaive(out, rstd, x, w, T, C, 1e-5f);
        RmsNorm.backward(dx2, dw2, g, x, w, rstd, T, C);
        assertClose("rmsnorm dx fast", dx, dx2, 1e-5);
        assertClose("rmsnorm dw fast", dw, dw2, 1e-5);
    }

    @Test
    void swiglu() {
        int N = 29;
        SplittableRandom r = new SplittableRandom(2);
        float[] gate = random(r, N), up = random(r, N), g = random(r, N);
        for (int i = 0; i < N; i++) {
            gate[i] *= 4; // cover the non-linear range of silu
        }
        float[] out = new float[N], dgate = new float[N], dup = new float[N];
        SwiGlu.backwardNaive(dgate, dup, g, gate, up, N);
        Runnable fwd = () -> SwiGlu.forwardNaive(out, gate, up, N);
        GradCheck.check("gate", gate, dgate, () -> GradCheck.loss(fwd, out, g), 1e-2);
        GradCheck.check("up", up, dup, () -> GradCheck.loss(fwd, out, g), 1e-2);
        float[] dgate2 = new float[N], dup2 = new float[N];
        SwiGlu.backward(dgate2, dup2, g, gate, up, N);
        assertClose("swiglu dgate fast", dgate, dgate2, 0);
        assertClose("swiglu dup fast", dup, dup2, 0);
    }

    @ParameterizedTest
    @CsvSource({"false", "true"})
    void rope(boolean halves) {
        int T = 4, NH = 3, HS = 8, pos0 = 5;
        SplittableRandom r = new SplittableRandom(3);
        float[] x = random(r, T * NH * HS), g = random(r, T * NH * HS);
        float[] freqs = Rope.frequencies(HS, 100f);
        float[] dx = g.clone();
        Rope.backwardNaive(dx, freqs, GradCheck.positions(pos0, T), T, NH, HS, halves ? 1 : 0);
        float[] out = new float[x.length];
        Runnable fwd = () -> {
            System.arraycopy(x, 0, out, 0, x.length);
            Rope.forwardNaive(out, freqs, GradCheck.positions(pos0, T), T, NH, HS, halves ? 1 : 0);
        };
        GradCheck.check("x", x, dx, () -> GradCheck.loss(fwd, out, g), 1e-2);
        float[] dx2 = g.clone();
        Rope.backward(dx2, freqs, T, NH, HS, pos0, halves);
        assertClose("rope backward fast", dx, dx2, 1e-6);
    }

    @ParameterizedTest
    @CsvSource({"5,4,2,4", "4,2,2,8", "3,3,1,2"})
    void attention(int T, int NH, int NKV, int HS) {
        SplittableRandom r = new SplittableRandom(4 + T);
        float[] q = random(r, T * NH * HS), k = random(r, T * NKV * HS), v = random(r, T * NKV * HS);
        float[] g = random(r, T * NH * HS);
        for (int i = 0; i < q.length; i++) {
            q[i] *= 2; // sharper attention than uniform
        }
        float[] out = new float[T * NH * HS], att = new float[T * NH * T];
        float[] dq = new float[q.length], dk = new float[k.length], dv = new float[v.length], dAtt = new float[T * NH * T];
        Attention.forwardNaive(out, att, q, k, v, GradCheck.positions(0, T), T, NH, NKV, HS, T);
        Attention.backwardNaive(dq, dk, dv, dAtt, g, att, q, k, v, T, NH, NKV, HS);
        float[] scratch = new float[T * NH * T];
        Runnable fwd = () -> Attention.forwardNaive(out, scratch, q, k, v, GradCheck.positions(0, T), T, NH, NKV, HS, T);
        GradCheck.check("q", q, dq, () -> GradCheck.loss(fwd, out, g), 1e-2);
        GradCheck.check("k", k, dk, () -> GradCheck.loss(fwd, out, g), 1e-2);
        GradCheck.check("v", v, dv, () -> GradCheck.loss(fwd, out, g), 1e-2);
        float[] dq2 = new float[q.length], dk2 = new float[k.length], dv2 = new float[v.length];
        Attention.backward(dq2, dk2, dv2, new float[T * NH * T], g, att, q, k, v, T, NH, NKV, HS);
        assertClose("attention dq fast", dq, dq2, 1e-5);
        assertClose("attention dk fast", dk, dk2, 1e-5);
        assertClose("attention dv fast", dv, dv2, 1e-5);
    }

    @Test
    void crossEntropy() {
        int T = 4, V = 11;
        SplittableRandom r = new SplittableRandom(5);
        float[] logits = random(r, T * V);
        int[] targets = {3, -1, 0, 10};
        float[] dl = {0.25f, 0.25f, 0.5f, 1f};
        float[] losses = new float[T], probs = new float[T * V], dlogits = new float[T * V];
        CrossEntropy.forwardNaive(losses, probs, logits, targets, T, V);
        CrossEntropy.backwardNaive(dlogits, probs, targets, dl, T, V);
        float[] p2 = new float[T * V];
        Runnable fwd = () -> CrossEntropy.forwardNaive(losses, p2, logits, targets, T, V);
        GradCheck.check("logits", logits, dlogits, () -> GradCheck.loss(fwd, losses, dl), 1e-2);
        CrossEntropy.forwardNaive(losses, probs, logits, targets, T, V); // the checks left losses perturbed
        float[] losses2 = new float[T], probs2 = new float[T * V], dlogits2 = new float[T * V];
        CrossEntropy.forward(losses2, probs2, logits, targets, T, V);
        CrossEntropy.backward(dlogits2, probs2, targets, dl, T, V);
        assertClose("ce loss fast", losses, losses2, 1e-5);
        assertClose("ce dlogits fast", dlogits, dlogits2, 1e-5);
        for (int v = 0; v < V; v++) {
            if (dlogits[V + v] != 0f) {
                throw new AssertionError("ignored position has a gradient");
            }
        }
    }

    /** LoRA (e = 1) and AdaLoRA's SVD form (random non-zero e): every input, A, B and E against central differences. */
    @ParameterizedTest
    @CsvSource({"3,7,5,2,false", "4,16,9,4,false", "3,7,5,3,true", "5,13,11,6,true"})
    void lora(int T, int IN, int OUT, int r, boolean svd) {
        SplittableRandom rnd = new SplittableRandom(6 + IN);
        float[] x = random(rnd, T * IN), a = random(rnd, r * IN), b = random(rnd, OUT * r), g = random(rnd, T * OUT);
        float[] e = svd ? random(rnd, r) : ones(r);
        float[] base = random(rnd, T * OUT);
        float s = 2.0f;
        float[] y = new float[T * OUT], ax = new float[T * r];
        Runnable fwd = () -> {
            System.arraycopy(base, 0, y, 0, y.length);
            Lora.forwardNaive(y, ax, x, a, e, b, s, T, IN, OUT, r);
        };
        fwd.run();
        float[] dx = new float[T * IN], dA = new float[r * IN], dE = new float[r], dB = new float[OUT * r], dax = new float[T * r];
        Lora.backwardNaive(dx, dA, dE, dB, dax, g, ax.clone(), x, a, e, b, s, T, IN, OUT, r);
        GradCheck.check("x", x, dx, () -> GradCheck.loss(fwd, y, g), 1e-2);
        GradCheck.check("A", a, dA, () -> GradCheck.loss(fwd, y, g), 1e-2);
        GradCheck.check("B", b, dB, () -> GradCheck.loss(fwd, y, g), 1e-2);
        GradCheck.check("E", e, dE, () -> GradCheck.loss(fwd, y, g), 1e-2);
        fwd.run();
        // the fast twin over flat parameters (A, e, B at offsets after 3 unrelated leading values; LoRA: no e)
        int aOff = 3, eOff = svd ? aOff + a.length : -1, bOff = aOff + a.length + (svd ? r : 0);
        float[] p = new float[bOff + b.length], grads = new float[p.length];
        System.arraycopy(a, 0, p, aOff, a.length);
        if (svd) {
            System.arraycopy(e, 0, p, eOff, r);
        }
        System.arraycopy(b, 0, p, bOff, b.length);
        float[] y2 = base.clone(), ax2 = new float[T * r];
        Lora.forward(y2, ax2, x, p, aOff, eOff, bOff, s, T, IN, OUT, r);
        assertClose("lora y fast", y, y2, 1e-5);
        float[] dx2 = new float[T * IN];
        Lora.backward(dx2, grads, new float[T * r], g, ax2, x, p, aOff, eOff, bOff, s, T, IN, OUT, r);
        assertClose("lora dx fast", dx, dx2, 1e-5);
        assertClose("lora dA fast", dA, java.util.Arrays.copyOfRange(grads, aOff, aOff + a.length), 1e-5);
        assertClose("lora dB fast", dB, java.util.Arrays.copyOfRange(grads, bOff, bOff + b.length), 1e-5);
        if (svd) {
            assertClose("lora dE fast", dE, java.util.Arrays.copyOfRange(grads, eOff, eOff + r), 1e-5);
        }
        for (int i = 0; i < aOff; i++) {
            org.junit.jupiter.api.Assertions.assertEquals(0f, grads[i], "outside the branch's tensors");
        }
    }

    @Test
    void aUnitScaleVectorLeavesLoraBitForBit() {
        // LoRA's frozen e = 1 (eOff −1) must give exactly s·B(Ax): y += s·Σ b·ax, computed here without e
        int T = 3, IN = 19, OUT = 10, r = 5;
        SplittableRandom rnd = new SplittableRandom(61);
        float[] x = random(rnd, T * IN), a = random(rnd, r * IN), b = random(rnd, OUT * r);
        float[] y = new float[T * OUT], ax = new float[T * r];
        float[] ab = new float[a.length + b.length];
        System.arraycopy(a, 0, ab, 0, a.length);
        System.arraycopy(b, 0, ab, a.length, b.length);
        Lora.forward(y, ax, x, ab, 0, -1, a.length, 0.75f, T, IN, OUT, r);
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < OUT; o++) {
                float acc = 0f;
                for (int j = 0; j < r; j++) {
                    float p = 0f;
                    for (int c = 0; c < IN; c++) {
                        p += a[j * IN + c] * x[t * IN + c];
                    }
                    acc += b[o * r + j] * p;
                }
                org.junit.jupiter.api.Assertions.assertEquals(0.75f * acc, y[t * OUT + o], 0f, "y " + t + "," + o);
            }
        }
    }

    /** AdaLoRA's ‖AAᵀ − I‖_F (rows) and ‖BᵀB − I‖_F (columns): gradient check and the fast twin bitwise. */
    @ParameterizedTest
    @CsvSource({"3,7,true", "3,7,false", "6,13,true", "5,11,false"})
    void orthogonality(int K, int N, boolean rows) {
        SplittableRandom rnd = new SplittableRandom(70 + K * N);
        float[] m = random(rnd, K * N), d = new float[K * K];
        float[] out = new float[1], g = {(float) (rnd.nextDouble() + 0.5)};
        Runnable fwd = () -> {
            Orthogonality.forwardNaive(d, m, K, N, rows);
            out[0] = (float) Orthogonality.norm(d, K);
        };
        fwd.run();
        double norm = out[0];
        float[] dm = new float[K * N];
        Orthogonality.backwardNaive(dm, d, m, (float) (2 * g[0] / norm), K, N, rows);
        GradCheck.check(rows ? "A" : "B", m, dm, () -> GradCheck.loss(fwd, out, g), 1e-2);
        fwd.run();
        // against the definition in double
        double ss = 0;
        for (int i = 0; i < K; i++) {
            for (int j = 0; j < K; j++) {
                double acc = 0;
                for (int n = 0; n < N; n++) {
                    acc += (double) (rows ? m[i * N + n] : m[n * K + i]) * (rows ? m[j * N + n] : m[n * K + j]);
                }
                ss += (acc - (i == j ? 1 : 0)) * (acc - (i == j ? 1 : 0));
            }
        }
        org.junit.jupiter.api.Assertions.assertEquals(Math.sqrt(ss), Orthogonality.norm(d, K), 1e-5 * Math.sqrt(ss));
        float[] d2 = new float[K * K], dm2 = new float[K * N];
        Orthogonality.forward(d2, m, K, N, rows);
        Orthogonality.backward(dm2, d2, m, (float) (2 * g[0] / norm), K, N, rows);
        assertClose("orthogonality D fast", d, d2, 0);
        assertClose("orthogonality dM fast", dm, dm2, 0);
    }

    static float[] ones(int n) {
        float[] e = new float[n];
        java.util.Arrays.fill(e, 1f);
        return e;
    }

    @Test
    void adamwMatchesTheFormulaInDoubleAndTheFastTwinBitwise() {
        int N = 37;
        SplittableRandom rnd = new SplittableRandom(7);
        float[] p = random(rnd, N), m = new float[N], v = new float[N];
        float[] p2 = p.clone(), m2 = new float[N], v2 = new float[N];
        double[] pd = new double[N], md = new double[N], vd = new double[N];
        for (int i = 0; i < N; i++) {
            pd[i] = p[i];
        }
        for (int t = 1; t <= 3; t++) {
            float[] g = random(rnd, N);
            float[] h = new float[AdamW.HYPER];
            AdamW.hyper(h, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, t, 1f);
            AdamW.updateNaive(p, g, m, v, h, N);
            AdamW.update(p2, g, m2, v2, 1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f, t, N);
            for (int i = 0; i < N; i++) {
                md[i] = 0.9 * md[i] + 0.1 * g[i];
                vd[i] = 0.999 * vd[i] + 0.001 * g[i] * (double) g[i];
                double mh = md[i] / (1 - Math.pow(0.9, t)), vh = vd[i] / (1 - Math.pow(0.999, t));
                pd[i] -= 1e-2 * (mh / (Math.sqrt(vh) + 1e-8) + 0.01 * pd[i]);
            }
        }
        for (int i = 0; i < N; i++) {
            org.junit.jupiter.api.Assertions.assertEquals(pd[i], p[i], 1e-5, "param " + i);
        }
        assertClose("adamw fast", p, p2, 0);
    }

    @Test
    void scaledGradientsInTheDeviceFormsEqualScalingOnTheHost() {
        int N = 23;
        SplittableRandom rnd = new SplittableRandom(8);
        float[] g = random(rnd, N);
        float c = 0.37f;
        float[] gs = g.clone();
        for (int i = 0; i < N; i++) {
            gs[i] *= c;
        }
        float[] p = random(rnd, N), m = random(rnd, N), v = random(rnd, N);
        for (int i = 0; i < N; i++) {
            v[i] = Math.abs(v[i]);
        }
        float[] p2 = p.clone(), m2 = m.clone(), v2 = v.clone();
        float[] h = new float[AdamW.HYPER];
        AdamW.hyper(h, 3e-3f, 0.8f, 0.99f, 1e-6f, 0.1f, 4, c);
        AdamW.updateNaive(p, g, m, v, h, N);
        AdamW.update(p2, gs, m2, v2, 3e-3f, 0.8f, 0.99f, 1e-6f, 0.1f, 4, N);
        assertClose("adamw with clipping", p, p2, 0);
        assertClose("adamw moments", m, m2, 0);
        float[] q = random(rnd, N), buf = random(rnd, N);
        float[] q2 = q.clone(), buf2 = buf.clone();
        float[] hs = new float[Sgd.HYPER];
        Sgd.hyper(hs, 0.1f, 0.9f, 0.01f, c);
        Sgd.updateNaive(q, g, buf, hs, N);
        Sgd.update(q2, gs, buf2, 0.1f, 0.9f, 0.01f, N);
        assertClose("sgd with momentum and clipping", q, q2, 0);
        assertClose("sgd momentum", buf, buf2, 0);
    }
}

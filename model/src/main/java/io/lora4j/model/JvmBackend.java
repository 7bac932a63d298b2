package io.lora4j.model;

import io.lora4j.kernels.Attention;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.Weight;
import io.lora4j.model.lora.LinearModule;
import io.lora4j.model.lora.LoraLayer;

/**
 * The reference backend: the Vector-API kernels on the JVM, multi-threaded across outer loops.
 *
 * <pre>
 * layer plan (one per block; names are State buffers):
 * (every "matmul W" also adds an active adapter's s·B(A x) from the same input)
 *   x ──rmsnorm(attn_norm)──▶ xb ──matmul wq──▶ q ──rope──┐
 *                              ├──matmul wk──▶ k ──rope──┼─▶ kCache[l]
 *                              └──matmul wv──▶ v ────────┴─▶ vCache[l]
 *   q,kCache,vCache ──attention──▶ attOut ──matmul wo──▶ proj ──(+)──▶ x
 *   x ──rmsnorm(ffn_norm)──▶ xb ──matmul gate──▶ hb ─┐
 *                              └──matmul up────▶ hb2 ┴─swiglu─▶ hb ──matmul down──▶ proj ──(+)──▶ x
 * logits plan:
 *   x[rows] ──rmsnorm(output_norm)──▶ xb ──matmul output──▶ logits
 * </pre>
 */
public final class JvmBackend implements Backend {

    @Override
    public String name() {
        return "jvm";
    }

    @Override
    public String device() {
        return "JVM, " + io.lora4j.kernels.Threads.threadCount() + " threads";
    }

    @Override
    public void forward(Llama m, State s, int T, int pos, boolean logits) {
        for (int l = 0; l < m.config().nLayers(); l++) {
            layer(m, s, l, T, pos);
        }
        if (logits) {
            logits(m, s, T - 1, 1);
        }
    }

    /** One transformer block over tokens at positions {@code pos..pos+T-1}; updates the KV cache of layer {@code l}. */
    void layer(Llama m, State s, int l, int T, int pos) {
        LlamaConfig c = m.config();
        Llama.Layer w = m.layer(l);
        int C = c.dim();
        int kvDim = c.kvDim();
        boolean halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES;

        java.util.List<Llama.Active> ad = m.activeAdapters();
        RmsNorm.forward(s.xb, s.rstd, s.x, w.attnNorm(), T, C, c.rmsEps());
        Matmul.forward(new float[][]{s.q, s.k, s.v}, s.xb, w.qkv(), T);
        lora(s, ad, l, LinearModule.Q_PROJ, s.q, s.xb, T);
        lora(s, ad, l, LinearModule.K_PROJ, s.k, s.xb, T);
        lora(s, ad, l, LinearModule.V_PROJ, s.v, s.xb, T);
        Rope.forward(s.q, m.ropeFreqs(), T, c.nHeads(), c.headSize(), pos, halves);
        Rope.forward(s.k, m.ropeFreqs(), T, c.nKvHeads(), c.headSize(), pos, halves);
        System.arraycopy(s.k, 0, s.kCache[l], pos * kvDim, T * kvDim);
        System.arraycopy(s.v, 0, s.vCache[l], pos * kvDim, T * kvDim);
        Attention.forward(s.attOut, null, s.q, s.kCache[l], s.vCache[l], T, pos, c.nHeads(), c.nKvHeads(), c.headSize(), 0);
        linear(s, ad, l, LinearModule.O_PROJ, s.proj, s.attOut, w.wo(), T);
        add(s.x, s.proj, T * C);

        RmsNorm.forward(s.xb, s.rstd, s.x, w.ffnNorm(), T, C, c.rmsEps());
        Matmul.forward(new float[][]{s.hb, s.hb2}, s.xb, w.gateUp(), T);
        lora(s, ad, l, LinearModule.GATE_PROJ, s.hb, s.xb, T);
        lora(s, ad, l, LinearModule.UP_PROJ, s.hb2, s.xb, T);
        SwiGlu.forward(s.hb, s.hb, s.hb2, T * c.hiddenDim());
        linear(s, ad, l, LinearModule.DOWN_PROJ, s.proj, s.hb, w.down(), T);
        add(s.x, s.proj, T * C);
    }

    /** Final RMSNorm and logits of rows {@code first..first+n-1} of {@link State#x}, written to {@link State#logits} as (n, V). */
    void logits(Llama m, State s, int first, int n) {
        LlamaConfig c = m.config();
        int C = c.dim();
        System.arraycopy(s.x, first * C, s.proj, 0, n * C);
        RmsNorm.forward(s.xb, s.rstd, s.proj, m.outputNorm(), n, C, c.rmsEps());
        Matmul.forward(s.logits, s.xb, m.output(), n);
    }

    /** y = W x, plus the adapter's low-rank branch s·(B A x + bias) when one is active on this projection. */
    private static void linear(State s, java.util.List<Llama.Active> ad, int l, LinearModule mod, float[] y, float[] x, Weight w, int T) {
        Matmul.forward(y, x, w, T);
        lora(s, ad, l, mod, y, x, T);
    }

    /** y += scale·s·(B diag(e) A x + bias) for every active adapter on this projection, in activation order. */
    private static void lora(State s, java.util.List<Llama.Active> ad, int l, LinearModule mod, float[] y, float[] x, int T) {
        for (Llama.Active act : ad) {
            LoraLayer ll = act.adapter().get(l, mod);
            if (ll == null) {
                continue;
            }
            float sc = act.scale() * ll.scaling;
            Lora.forward(y, s.loraScratch(T * ll.r), x, ll.a, ll.e, ll.b, sc, T, ll.in, ll.out, ll.r);
            if (ll.bias != null) {
                for (int t = 0; t < T; t++) {
                    for (int o = 0; o < ll.out; o++) {
                        y[t * ll.out + o] += sc * ll.bias[o];
                    }
                }
            }
        }
    }

    /** Residual connection: {@code x += y} over N elements. */
    private static void add(float[] x, float[] y, int N) {
        for (int i = 0; i < N; i++) {
            x[i] += y[i];
        }
    }
}

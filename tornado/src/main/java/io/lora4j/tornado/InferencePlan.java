package io.lora4j.tornado;

import io.lora4j.kernels.Attention;
import io.lora4j.kernels.VectorOps;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.model.Llama;
import io.lora4j.model.LlamaConfig;
import io.lora4j.model.lora.LinearModule;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * The decode plan of a Llama with its active adapters: one graph per transformer block and one for
 * the logits, a token per execution. Weights, adapter factors and KV caches go to the device once;
 * the residual stream {@code x} stays there from graph to graph (persist → consume); per token only
 * the embedding and the position go in, and only the logits come back.
 *
 * <pre>
 * layer_l (names are this plan's buffers; "lora m" = + s·B(A·in) of every active adapter on m):
 *   x ─rms(attn_norm)→ xb ─wq→ q ─rope(pos)─────────────────┐
 *                       ├─wk→ k ─rope(pos)─store(pos)→ kCache┼─attention(pos)→ attOut ─wo→ proj ─(+)→ x
 *                       └─wv→ v ───────────store(pos)→ vCache┘
 *   x ─rms(ffn_norm)→ xb ─gate→ hb ─┐
 *                       └─up───→ hb2┴─swiglu→ act ─down→ proj ─(+)→ x
 * logits:
 *   x ─rms(output_norm)→ xb ─output→ logits  (copied to the host)
 * </pre>
 * Glossary: C dim, Q = NH·HS, KV = NKV·HS, H hidden, V vocab, P context length.
 */
final class InferencePlan implements AutoCloseable {
    final DevicePlan plan = new DevicePlan();
    /** (C) the token's embedding, copied in by layer_0 every execution, then the residual stream on the device. */
    final float[] x;
    /** (1) the token's position, copied in by every layer graph. */
    final int[] pos = new int[1];
    /** (V) the logits, copied out by the logits graph. */
    final float[] logits;
    final int contextLength;
    private final int nLayers;
    private final PlanRunner runner;
    private long deviceBytes;

    InferencePlan(Llama m, int contextLength, Function<DevicePlan, PlanRunner> runners) {
        LlamaConfig c = m.config();
        this.contextLength = contextLength;
        this.nLayers = c.nLayers();
        x = new float[c.dim()];
        logits = new float[c.vocabSize()];
        for (int l = 0; l < nLayers; l++) {
            layer(m, l);
        }
        logitsGraph(m);
        plan.linkChain(); // x stays on the device from graph to graph
        runner = runners.apply(plan);
    }

    private static String layerName(int l) {
        return "layer_" + l;
    }

    private void layer(Llama m, int l) {
        LlamaConfig c = m.config();
        Llama.Layer w = m.layer(l);
        int C = c.dim(), Q = c.qDim(), KV = c.kvDim(), H = c.hiddenDim(), NH = c.nHeads(), NKV = c.nKvHeads(), HS = c.headSize();
        int halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES ? 1 : 0;
        float[] xb = new float[C], rstd = new float[1], q = new float[Q], k = new float[KV], v = new float[KV];
        float[] att = new float[NH * contextLength], attOut = new float[Q], proj = new float[C];
        float[] hb = new float[H], hb2 = new float[H], act = new float[H];
        float[] kCache = new float[Math.multiplyExact(contextLength, KV)], vCache = new float[kCache.length];
        String name = layerName(l);
        Graph g = plan.graph(name);
        if (l == 0) {
            g.copyIn(Mode.EVERY_EXECUTION, x);
        }
        g.copyIn(Mode.EVERY_EXECUTION, pos);
        DeviceMatrix[] ws = upload(g, w.wq(), w.wk(), w.wv(), w.wo(), w.gate(), w.up(), w.down());
        DeviceMatrix wq = ws[0], wk = ws[1], wv = ws[2], wo = ws[3], gate = ws[4], up = ws[5], down = ws[6];
        float[] freqs = m.ropeFreqs().clone(); // each graph uploads its own small arrays
        in(g, w.attnNorm(), w.ffnNorm(), freqs, xb, rstd, q, k, v, att, attOut, proj, hb, hb2, act, kCache, vCache);
        List<Lora> lora = new ArrayList<>();
        for (Llama.Active a : m.activeAdapters()) {
            for (LinearModule mod : LinearModule.values()) {
                LoraLayer ll = a.adapter().get(l, mod);
                if (ll != null && ll.r > 0) { // AdaLoRA can prune a module to rank 0
                    lora.add(new Lora(mod, ll, a.scale() * ll.scaling, a.adapter().name(), g, a.adapter().adaLora() != null, this));
                }
            }
        }
        float eps = c.rmsEps();
        g.task("attn_norm", RmsNorm::forwardNaive, xb, rstd, x, w.attnNorm(), 1, C, eps);
        wq.matmul(g, "q", q, xb, 1);
        wk.matmul(g, "k", k, xb, 1);
        wv.matmul(g, "v", v, xb, 1);
        Lora.apply(lora, LinearModule.Q_PROJ, q, xb);
        Lora.apply(lora, LinearModule.K_PROJ, k, xb);
        Lora.apply(lora, LinearModule.V_PROJ, v, xb);
        g.task("rope_q", Rope::forwardNaive, q, freqs, pos, 1, NH, HS, halves);
        g.task("rope_k", Rope::forwardNaive, k, freqs, pos, 1, NKV, HS, halves);
        g.task("store_k", Attention::storeNaive, kCache, k, pos, 1, KV);
        g.task("store_v", Attention::storeNaive, vCache, v, pos, 1, KV);
        g.task("attention", Attention::forwardNaive, attOut, att, q, kCache, vCache, pos, 1, NH, NKV, HS, contextLength);
        wo.matmul(g, "o", proj, attOut, 1);
        Lora.apply(lora, LinearModule.O_PROJ, proj, attOut);
        g.task("attn_residual", VectorOps::axpyNaive, x, proj, 1f, C);
        g.task("ffn_norm", RmsNorm::forwardNaive, xb, rstd, x, w.ffnNorm(), 1, C, eps);
        gate.matmul(g, "gate", hb, xb, 1);
        up.matmul(g, "up", hb2, xb, 1);
        Lora.apply(lora, LinearModule.GATE_PROJ, hb, xb);
        Lora.apply(lora, LinearModule.UP_PROJ, hb2, xb);
        g.task("swiglu", SwiGlu::forwardNaive, act, hb, hb2, H);
        down.matmul(g, "down", proj, act, 1);
        Lora.apply(lora, LinearModule.DOWN_PROJ, proj, act);
        g.task("ffn_residual", VectorOps::axpyNaive, x, proj, 1f, C);
    }

    private void logitsGraph(Llama m) {
        LlamaConfig c = m.config();
        int C = c.dim();
        float[] xb = new float[C], rstd = new float[1];
        Graph g = plan.graph("logits");
        DeviceMatrix out = upload(g, m.output())[0];
        in(g, m.outputNorm(), xb, rstd, logits);
        g.task("output_norm", RmsNorm::forwardNaive, xb, rstd, x, m.outputNorm(), 1, C, c.rmsEps());
        out.matmul(g, "output", logits, xb, 1);
        g.copyOut(Mode.EVERY_EXECUTION, logits);
    }

    /** Weight matrices packed into shared buffers, uploaded once by {@code g}. */
    private DeviceMatrix[] upload(Graph g, io.lora4j.kernels.Weight... w) {
        DeviceMatrix[] d = DeviceMatrix.pack(w);
        g.copyIn(Mode.FIRST_EXECUTION, DeviceMatrix.buffers(d));
        for (DeviceMatrix x : d) {
            deviceBytes += x.bytes();
        }
        return d;
    }

    /** Declares arrays (small weights, scratch, caches) as allocated on the device at the first execution. */
    private void in(Graph g, Object... arrays) {
        g.copyIn(Mode.FIRST_EXECUTION, arrays);
        for (Object a : arrays) {
            deviceBytes += switch (a) {
                case float[] f -> 4L * f.length;
                case int[] i -> 4L * i.length;
                default -> throw new IllegalArgumentException();
            };
        }
    }

    /**
     * The low-rank branch of one adapter on one projection of a layer graph: {@code y += s·B(A·in) (+ s·bias)},
     * or for AdaLoRA {@code y += s·B(E ⊙ A·in)} (eax holds E ⊙ A·in; null for LoRA).
     */
    private record Lora(LinearModule module, LoraLayer ll, float scale, String adapter, Graph g, float[] ax, float[] eax,
                        float[] bax) {
        Lora(LinearModule module, LoraLayer ll, float scale, String adapter, Graph g, boolean svd, InferencePlan p) {
            this(module, ll, scale, adapter, g, new float[ll.r], svd ? new float[ll.r] : null, new float[ll.out]);
            p.in(g, ll.a, ll.b, ax, bax);
            if (svd) {
                p.in(g, ll.e, eax);
            }
            if (ll.bias != null) {
                p.in(g, ll.bias);
            }
        }

        static void apply(List<Lora> all, LinearModule m, float[] y, float[] in) {
            for (Lora lo : all) {
                if (lo.module == m) {
                    lo.add(y, in);
                }
            }
        }

        private void add(float[] y, float[] in) {
            String id = "lora_" + module.peftName + "_" + adapter;
            g.task(id + "_a", io.lora4j.kernels.Matmul::forwardNaive, ax, in, ll.a, 0, 1, ll.r, ll.in);
            if (eax != null) {
                g.task(id + "_e", VectorOps::mulRowsNaive, eax, ax, ll.e, ll.r, ll.r);
            }
            g.task(id + "_b", io.lora4j.kernels.Matmul::forwardNaive, bax, eax != null ? eax : ax, ll.b, 0, 1, ll.out, ll.r);
            g.task(id + "_add", VectorOps::axpyNaive, y, bax, scale, ll.out);
            if (ll.bias != null) {
                g.task(id + "_bias", VectorOps::axpyNaive, y, ll.bias, scale, ll.out);
            }
        }
    }

    /** Runs one token (its embedding in {@code embedding[off..off+C)}) at {@code position} through every block. */
    void token(float[] embedding, int off, int position) {
        if (position >= contextLength) {
            throw new IllegalArgumentException("position " + position + " beyond the device plan's context " + contextLength);
        }
        System.arraycopy(embedding, off, x, 0, x.length);
        pos[0] = position;
        for (int l = 0; l < nLayers; l++) {
            runner.execute(l);
        }
    }

    /** The logits of the last token run, copied into {@code out[0..V)}. */
    void logits(float[] out) {
        runner.execute(nLayers);
        System.arraycopy(logits, 0, out, 0, logits.length);
    }

    long deviceBytes() {
        return deviceBytes;
    }

    String device() {
        return runner.device();
    }

    @Override
    public void close() {
        runner.close();
    }
}

package io.lora4j.tornado;

import io.lora4j.model.lora.AdapterSet;
import io.lora4j.model.arch.Layer;
import io.lora4j.kernels.VectorOps;
import io.lora4j.model.Llama;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.block.Buf;
import io.lora4j.model.block.LlamaBlock;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.lora.LoraLayer;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Mode;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.function.Function;

/**
 * The inference plan of a Llama with its active adapters: {@link LlamaBlock} recorded by
 * {@link DeviceOps} as one graph per block, plus a logits graph, for chunks of up to T tokens (a
 * prompt runs as ⌈n / T⌉ batched executions; decoding runs one-token chunks through the same graphs).
 * Weights, adapter parameters and KV caches go to the device once; the residual stream and the
 * scratch buffers are copied in by the first block's graph and stay on the device from graph to graph
 * (persist → consume); per chunk only the embeddings, the positions and the live row count go in, and
 * only the last live token's logits come back.
 * <pre>
 * buffers: X, X_MID, X_OUT → x (residual adds in place)   XB1, XB2 → xb   RSTD1, RSTD2 → rstd
 *          Q, K, V → q, k, v → kCache[l], vCache[l]        ATT → att       ATT_OUT → attOut
 *          ATT_PROJ, FFN_PROJ → proj   GATE → hb   UP → hb2   HB → act
 * logits:  the last live row of x → xLast ─rmsnorm(output)→ xbF ─output→ logits (copied to the host)
 * </pre>
 * Glossary: T chunk rows, C dim, Q = NH·HS, KV = NKV·HS, H hidden, V vocab, P context length.
 */
final class InferencePlan implements AutoCloseable {
    final DevicePlan plan = new DevicePlan();
    /** (T, C) the chunk's embeddings (zero in padding rows), copied in by block 0, then the residual stream on the device. */
    final float[] x;
    /** (T) the chunk's positions, −1 in padding rows; (1) its live rows. Copied in by every block's graph. */
    final int[] pos, n = new int[1];
    /** (V) the logits, copied out by the logits graph. */
    final float[] logits;
    /** Rows per chunk. */
    final int T;
    final int contextLength;
    private final int nLayers;
    private final PlanRunner runner;
    private final List<float[]> uploaded = new ArrayList<>(); // adapter stores already on the device

    InferencePlan(Llama m, int contextLength, int T, Function<DevicePlan, PlanRunner> runners) {
        LlamaConfig c = m.config();
        this.T = T;
        this.contextLength = contextLength;
        this.nLayers = c.nLayers();
        x = new float[T * c.dim()];
        pos = new int[T];
        logits = new float[c.vocabSize()];
        int C = c.dim(), Q = c.qDim(), KV = c.kvDim(), H = c.hiddenDim();
        float[] xb = new float[T * C], rstd = new float[T], q = new float[T * Q], k = new float[T * KV], v = new float[T * KV];
        float[] att = new float[Math.multiplyExact(T * c.nHeads(), contextLength)], attOut = new float[T * Q],
                proj = new float[T * C], hb = new float[T * H], hb2 = new float[T * H], act = new float[T * H];
        Function<Buf, float[]> bind = b -> switch (b) {
            case X, X_MID, X_OUT -> x;
            case XB1, XB2 -> xb;
            case RSTD1, RSTD2 -> rstd;
            case Q -> q;
            case K -> k;
            case V -> v;
            case ATT -> att;
            case ATT_OUT -> attOut;
            case ATT_PROJ, FFN_PROJ -> proj;
            case GATE -> hb;
            case UP -> hb2;
            case HB -> act;
            default -> null;
        };
        for (int l = 0; l < nLayers; l++) {
            Graph g = plan.graph("layer_" + l);
            if (l == 0) {
                g.copyIn(Mode.EVERY_EXECUTION, x);
                in(g, xb, rstd, q, k, v, att, attOut, proj, hb, hb2, act); // later blocks consume them
            }
            g.copyIn(Mode.EVERY_EXECUTION, pos, n);
            layer(m, l, g, bind);
        }
        logitsGraph(m);
        plan.linkChain();
        runner = runners.apply(plan);
    }

    private void layer(Llama m, int l, Graph g, Function<Buf, float[]> bind) {
        LlamaConfig c = m.config();
        Layer lw = m.layer(l);
        LinearModule[] mods = LinearModule.values();
        io.lora4j.kernels.Weight[] ws = new io.lora4j.kernels.Weight[mods.length];
        for (LinearModule mod : mods) {
            ws[mod.ordinal()] = mod.weight(lw);
        }
        DeviceMatrix[] w = upload(g, ws);
        float[] freqs = m.ropeFreqs().clone(), attnNorm = lw.attnNorm().clone(), ffnNorm = lw.ffnNorm().clone();
        float[] kCache = new float[Math.multiplyExact(contextLength, c.kvDim())], vCache = new float[kCache.length];
        in(g, freqs, attnNorm, ffnNorm, kCache, vCache);
        DeviceOps o = new DeviceOps(g, c, T, pos, n, freqs, attnNorm, ffnNorm, w, bind).kvCache(kCache, vCache, contextLength);
        // each active adapter's parameter store goes to the device once, with the first block that uses it
        for (AdapterSet.Active a : m.adapters().active()) {
            DeviceOps.refuseBottlenecks(a.adapter());
            float[] p = a.adapter().store().values;
            for (LinearModule mod : mods) {
                LoraLayer ll = a.adapter().get(l, mod);
                if (ll == null || ll.r == 0) { // AdaLoRA can prune a module to rank 0
                    continue;
                }
                if (uploaded.stream().noneMatch(x -> x == p)) {
                    in(g, p);
                    uploaded.add(p);
                }
                DeviceOps.Branch b = new DeviceOps.Branch(p, null, ll.a.off(), ll.eOff(), ll.b.off(),
                        ll.bias == null ? -1 : ll.bias.off(), a.scale() * ll.scaling, ll.r, ll.in, ll.out, T);
                if (ll.dora()) { // the row norms of the weight in use, as the JVM takes them
                    float[] norm = ll.weightNorm(ws[mod.ordinal()], a.scale() * ll.scaling).clone();
                    b.dora(ll.magnitude.off(), norm);
                }
                o.branch(mod, b, null, false);
            }
        }
        LlamaBlock.forward(o);
    }

    private void logitsGraph(Llama m) {
        LlamaConfig c = m.config();
        int C = c.dim();
        float[] xLast = new float[C], xbF = new float[C], rstdF = new float[1], norm = m.outputNorm().clone();
        int[] one = {1};
        Graph g = plan.graph("logits");
        DeviceMatrix out = upload(g, m.output())[0];
        in(g, norm, xLast, xbF, rstdF, logits, one);
        g.task("last_row", VectorOps::lastRowNaive, xLast, x, n, C);
        Function<Buf, float[]> bind = b -> switch (b) {
            case X -> xLast;
            case XF -> xbF;
            case RSTD_F -> rstdF;
            case LOGITS -> logits;
            default -> null;
        };
        LlamaBlock.head(new DeviceOps(g, c, 1, null, one, null, null, null, null, bind).head(norm, out), false);
        g.copyOut(Mode.EVERY_EXECUTION, logits);
    }

    /** Weight matrices packed into shared buffers, uploaded once by {@code g}. */
    private DeviceMatrix[] upload(Graph g, io.lora4j.kernels.Weight... w) {
        DeviceMatrix[] d = DeviceMatrix.pack(w);
        g.copyIn(Mode.FIRST_EXECUTION, DeviceMatrix.buffers(d));
        return d;
    }

    /** Declares arrays (small weights, scratch, caches) as allocated on the device at the first execution. */
    private void in(Graph g, Object... arrays) {
        g.copyIn(Mode.FIRST_EXECUTION, arrays);
    }

    /**
     * Runs {@code count ≤ T} tokens (their embeddings in {@code embeddings[off..off+count·C)}) at positions
     * {@code position..position+count-1} through every block as one batched chunk.
     */
    void chunk(float[] embeddings, int off, int count, int position) {
        if (count < 1 || count > T) {
            throw new IllegalArgumentException("a chunk of " + count + " tokens; this plan takes 1.." + T);
        }
        if (position + count > contextLength) {
            throw new IllegalArgumentException("position " + (position + count - 1) + " beyond the device plan's context " + contextLength);
        }
        int C = x.length / T;
        System.arraycopy(embeddings, off, x, 0, count * C);
        Arrays.fill(x, count * C, x.length, 0f);
        for (int t = 0; t < T; t++) {
            pos[t] = t < count ? position + t : -1;
        }
        n[0] = count;
        for (int l = 0; l < nLayers; l++) {
            plan.graphs().get(l).liveRows(count);
        }
        for (int l = 0; l < nLayers; l++) {
            runner.execute(l);
        }
    }

    /** The logits of the last token of the last chunk run, copied into {@code out[0..V)}. */
    void logits(float[] out) {
        runner.execute(nLayers);
        System.arraycopy(logits, 0, out, 0, logits.length);
    }

    void profile(DeviceProfile p) {
        runner.profile(p);
    }

    /** Bytes of the plan's device buffers: weights, KV caches, adapters, scratch. */
    long deviceBytes() {
        return plan.deviceBytes();
    }

    String device() {
        return runner.device();
    }

    @Override
    public void close() {
        runner.close();
    }
}

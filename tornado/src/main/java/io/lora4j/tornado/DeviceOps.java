package io.lora4j.tornado;

import io.lora4j.kernels.Attention;
import io.lora4j.kernels.CrossEntropy;
import io.lora4j.kernels.Dora;
import io.lora4j.kernels.Dropout;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.VectorOps;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.block.BlockOps;
import io.lora4j.model.block.Buf;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.tornado.DevicePlan.Graph;
import io.lora4j.tornado.DevicePlan.Grid;
import io.lora4j.tornado.DevicePlan.Mode;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.function.Function;

/**
 * The device executor of the block program: each op of {@link io.lora4j.model.block.LlamaBlock}
 * becomes a task of one {@link Graph} — a work-group kernel shaped for GPUs for the products
 * ({@link GpuMatmul} through {@link DeviceMatrix}), attention ({@link GpuAttention}) and RMSNorm
 * ({@link GpuRmsNorm}), whose grids follow the chunk's live rows, else a naive kernel of {@code kernels/}
 * (the TornadoVM kernel subset) — over the arrays the plan binds to the block's buffer names. {@link InferencePlan}
 * and {@link TrainPlan} differ only in what they bind: a KV cache or none, the adapters' parameters,
 * and which arrays stay on the device.
 * <p>
 * The graph's chunk has T rows; {@code n[0]} of them are live (a shorter chunk, or one token when
 * decoding, runs through a plan built for T: the matmuls and the low-rank branches skip the padding,
 * whose positions are −1 so attention ignores it and the cache never stores it).
 * Glossary: T rows, C dim, H hidden, V vocab, NH/NKV heads, HS head size, P cached positions, r rank.
 */
final class DeviceOps implements BlockOps.Backward {

    /**
     * One adapter branch on one projection: where A, e (or −1: e = 1), B and the bias (or −1) sit in the
     * parameter buffer {@code p} (gradients at the same offsets of {@code g}, when training), its scaling,
     * and its scratch rows in this graph. A DoRA branch also has its magnitude's offset and the row norms
     * of its adapted weight (computed on the host when the plan is built: inference only).
     */
    static final class Branch {
        final float[] p, g;
        final int aOff, eOff, bOff, biasOff, r, in, out;
        final float scale;
        final float[] ax;
        float[] dropped, dys, dax, dIn, ones, eax, gax, norm;
        int mOff = -1;
        long[] seed;

        Branch(float[] p, float[] g, int aOff, int eOff, int bOff, int biasOff, float scale, int r, int in, int out, int T) {
            this.p = p;
            this.g = g;
            this.aOff = aOff;
            this.eOff = eOff;
            this.bOff = bOff;
            this.biasOff = biasOff;
            this.scale = scale;
            this.r = r;
            this.in = in;
            this.out = out;
            this.ax = new float[T * r];
        }

        /** Makes this a DoRA branch: magnitude at {@code p[mOff]}, row norms {@code norm} (OUT). */
        Branch dora(int mOff, float[] norm) {
            this.mOff = mOff;
            this.norm = norm;
            return this;
        }
    }

    private final Graph g;
    private final LlamaConfig c;
    private final int T;
    private final int[] pos, n;
    private final float[] freqs, attnNorm, ffnNorm;
    private final DeviceMatrix[] w;
    private final Function<Buf, float[]> bind;
    private final List<List<Branch>> branches = new ArrayList<>();
    private final int halves;
    private String prefix = "";
    // set by the plan where they apply
    private float[] kCache, vCache;
    private int attStride;
    private float[] outputNorm;
    private DeviceMatrix output;
    private int[] targets;
    private float[] dlosses, dAtt, tmp, drop;
    private float[] headGrad; // a trainable output projection's gradients (null: frozen)
    private int headGradOff;

    /**
     * @param w     the block's projections by {@link LinearModule} ordinal (null for the head)
     * @param bind  the plan's array for each buffer name this graph uses
     * @param pos   (T) positions, −1 for padding
     * @param n     (1) live rows
     */
    DeviceOps(Graph g, LlamaConfig c, int T, int[] pos, int[] n, float[] freqs, float[] attnNorm, float[] ffnNorm,
              DeviceMatrix[] w, Function<Buf, float[]> bind) {
        this.g = g;
        this.c = c;
        this.T = T;
        this.pos = pos;
        this.n = n;
        this.freqs = freqs;
        this.attnNorm = attnNorm;
        this.ffnNorm = ffnNorm;
        this.w = w;
        this.bind = bind;
        this.halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES ? 1 : 0;
        for (int i = 0; i < LinearModule.values().length; i++) {
            branches.add(new ArrayList<>());
        }
    }

    /** Keys and values go to these caches (P rows) at the positions, and attention reads them. Without, attention reads K and V. */
    DeviceOps kvCache(float[] k, float[] v, int P) {
        kCache = k;
        vCache = v;
        attStride = P;
        return this;
    }

    DeviceOps head(float[] norm, DeviceMatrix out) {
        outputNorm = norm;
        output = out;
        return this;
    }

    /** The output projection is trained (modules_to_save lm_head): its weight gradient accumulates into {@code g[off..]}. */
    DeviceOps headGradient(float[] g, int off) {
        headGrad = g;
        headGradOff = off;
        return this;
    }

    /** The loss's targets and per-token weights (training heads). */
    DeviceOps loss(int[] targets, float[] dlosses) {
        this.targets = targets;
        this.dlosses = dlosses;
        return this;
    }

    /** Task names start with {@code prefix} (a backward graph recomputes the forward before differentiating it). */
    DeviceOps prefix(String prefix) {
        this.prefix = prefix;
        return this;
    }

    /** Adds a branch on m; with {@code dropout} its input is dropped out with the per-step seed and rate holders. */
    Branch branch(LinearModule m, Branch b, float[] dropRate, boolean backward) {
        b.ones = b.biasOff >= 0 && backward ? TrainPlan.filled(T, 1f) : null;
        if (dropRate != null) {
            drop = dropRate;
            b.dropped = new float[T * b.in];
            b.seed = new long[1];
        }
        if (backward) {
            b.dys = new float[T * b.out];
            b.dax = new float[T * b.r];
            b.dIn = b.dropped != null ? new float[T * b.in] : null;
            if (b.eOff >= 0) { // AdaLoRA: E ⊙ A x, and the gradient reaching it
                b.eax = new float[T * b.r];
                b.gax = new float[T * b.r];
            }
        }
        if (b.norm != null && backward) {
            throw new IllegalArgumentException("DoRA branches run on the device for inference only; train DoRA with --backend jvm");
        }
        g.copyIn(Mode.FIRST_EXECUTION, Arrays.stream(new Object[]{b.ax, b.dropped, b.dys, b.dax, b.dIn, b.ones, b.eax, b.gax, b.norm})
                .filter(Objects::nonNull).toArray());
        if (b.seed != null) {
            g.copyIn(Mode.EVERY_EXECUTION, b.seed);
        }
        branches.get(m.ordinal()).add(b);
        return b;
    }

    /** Backward scratch: (T·NH, T) attention gradient and a (T, C) row buffer, owned by this graph. */
    DeviceOps backwardScratch() {
        dAtt = new float[T * c.nHeads() * T];
        tmp = new float[T * c.dim()];
        g.copyIn(Mode.FIRST_EXECUTION, dAtt, tmp);
        return this;
    }

    private float[] buf(Buf b) {
        float[] a = bind.apply(b);
        if (a == null) {
            throw new IllegalStateException(g.name() + ": buffer " + b + " is not bound");
        }
        return a;
    }

    private float[] norm(Norm which) {
        return switch (which) {
            case ATTN -> attnNorm;
            case FFN -> ffnNorm;
            case OUTPUT -> outputNorm;
        };
    }

    private int heads(Heads h) {
        return h == Heads.QUERY ? c.nHeads() : c.nKvHeads();
    }

    private String id(String name) {
        return prefix + name;
    }

    @Override
    public void rmsNorm(Buf out, Buf rstd, Buf x, Norm which) {
        g.kernel(id("norm_" + which.name().toLowerCase()), Grid.byLiveRows(1, T, GpuRmsNorm::grid), GpuRmsNorm::forward,
                GpuRmsNorm::forward, buf(out), buf(rstd), buf(x), norm(which), T, c.dim(), c.rmsEps());
    }

    @Override
    public void matmul(LinearModule[] ms, Buf[] ys, Buf x) {
        for (int i = 0; i < ms.length; i++) {
            w[ms[i].ordinal()].matmul(g, id(ms[i].peftName), buf(ys[i]), buf(x), n, T);
        }
    }

    @Override
    public int adapters(LinearModule m) {
        return branches.get(m.ordinal()).size();
    }

    private String branchId(LinearModule m, int i) {
        return id(m.peftName + "_lora" + i);
    }

    @Override
    public void lowRank(LinearModule m, int i, Buf y, Buf x) {
        Branch b = branches.get(m.ordinal()).get(i);
        float[] in = buf(x);
        if (b.dropped != null) {
            g.task(branchId(m, i) + "_dropout", Dropout::forwardNaive, b.dropped, in, b.seed, drop, T * b.in);
            in = b.dropped;
        }
        g.task(branchId(m, i), Lora::forwardNaive, buf(y), b.ax, in, b.p, b.aOff, b.eOff, b.bOff, n, b.scale, T, b.in,
                b.out, b.r);
    }

    @Override
    public void bias(LinearModule m, int i, Buf y) {
        Branch b = branches.get(m.ordinal()).get(i);
        if (b.biasOff >= 0) {
            g.task(branchId(m, i) + "_bias", VectorOps::addRowsNaive, buf(y), b.p, b.biasOff, b.scale, T, b.out);
        }
    }

    @Override
    public boolean decomposed(LinearModule m, int i) {
        return branches.get(m.ordinal()).get(i).norm != null;
    }

    @Override
    public void magnitude(LinearModule m, int i, Buf y) {
        Branch b = branches.get(m.ordinal()).get(i);
        g.task(branchId(m, i) + "_magnitude", Dora::forwardNaive, buf(y), b.p, b.mOff, b.norm, n, T, b.out);
    }

    /** None: the device plans refuse adapters with bottleneck modules when they are built ({@link #refuseBottlenecks}). */
    @Override
    public int bottlenecks(Sublayer s) {
        return 0;
    }

    @Override
    public void bottleneck(Sublayer s, int i, Buf y) {
        throw new UnsupportedOperationException("bottleneck adapters on the device"); // refused when the plan is built
    }

    /** A bottleneck adapter has no device kernels yet: the plans refuse it with this message. */
    static void refuseBottlenecks(LoraAdapter a) {
        if (!a.bottlenecks().isEmpty()) {
            throw new IllegalArgumentException("adapter " + a.name() + " is a bottleneck adapter, which the tornado backend "
                    + "does not run (no device kernels for it); use --backend jvm");
        }
    }

    @Override
    public void rope(Buf x, Heads h) {
        g.task(id("rope_" + h.name().toLowerCase()), Rope::forwardNaive, buf(x), freqs, pos, T, heads(h), c.headSize(), halves);
    }

    @Override
    public void attention(Buf out, Buf att, Buf q, Buf k, Buf v) {
        float[] keys = buf(k), values = buf(v);
        int stride = T;
        if (kCache != null) {
            g.task(id("store_k"), Attention::storeNaive, kCache, keys, pos, T, c.kvDim());
            g.task(id("store_v"), Attention::storeNaive, vCache, values, pos, T, c.kvDim());
            keys = kCache;
            values = vCache;
            stride = attStride;
        }
        int NH = c.nHeads();
        g.kernel(id("attention"), Grid.byLiveRows(1, T, (gr, live) -> GpuAttention.grid(gr, live, NH)), GpuAttention::forward,
                GpuAttention::forward, buf(out), buf(att), buf(q), keys, values, pos, T, NH, c.nKvHeads(), c.headSize(), stride);
    }

    @Override
    public void add(Buf out, Buf a, Buf b) {
        float[] o = buf(out), x = buf(a), y = buf(b);
        if (o != x && o != y) {
            throw new IllegalStateException(g.name() + ": the device adds in place; bind " + out + " to " + a + " or " + b);
        }
        g.task(id("residual_" + out.name().toLowerCase()), VectorOps::axpyNaive, o, o == x ? y : x, 1f, T * c.dim());
    }

    @Override
    public void swiglu(Buf out, Buf gate, Buf up) {
        g.task(id("swiglu"), SwiGlu::forwardNaive, buf(out), buf(gate), buf(up), T * c.hiddenDim());
    }

    @Override
    public void logits(Buf logits, Buf x) {
        output.matmul(g, id("output"), buf(logits), buf(x), n, T);
    }

    @Override
    public void crossEntropy(Buf losses, Buf probs, Buf logits) {
        g.task(id("cross_entropy"), CrossEntropy::forwardNaive, buf(losses), buf(probs), buf(logits), targets, T, c.vocabSize());
    }

    // ---- backward (training plans; LoRA branches, and AdaLoRA's with E) ----

    @Override
    public void matmulBackward(LinearModule m, Buf dx, boolean accumulate, Buf dy) {
        w[m.ordinal()].backward(g, m.peftName + "_bwd", buf(dx), buf(dy), T, accumulate);
    }

    @Override
    public void lowRankBackward(LinearModule m, int i, Buf dx, Buf dy, Buf x) {
        Branch b = branches.get(m.ordinal()).get(i);
        String id = branchId(m, i) + "_bwd";
        g.task(id + "_dy", VectorOps::scaleNaive, b.dys, buf(dy), b.scale, T * b.out);
        if (b.eOff >= 0) {
            // y = s·B (E ⊙ A x): dB += dysᵀ (E ⊙ ax), gax = dys·B, dE += Σ_t gax ⊙ ax, dax = E ⊙ gax
            g.task(id + "_eax", VectorOps::mulRowsNaive, b.eax, b.ax, b.p, b.eOff, T * b.r, b.r);
            g.task(id + "_db", Matmul::backwardWeightNaive, b.g, b.bOff, b.dys, b.eax, T, b.out, b.r);
            g.task(id + "_gax", Matmul::backwardNaive, b.gax, b.dys, b.p, b.bOff, T, b.out, b.r, 0);
            g.task(id + "_de", Lora::backwardSingularValuesNaive, b.g, b.eOff, b.gax, b.ax, T, b.r);
            g.task(id + "_dax", VectorOps::mulRowsNaive, b.dax, b.gax, b.p, b.eOff, T * b.r, b.r);
        } else {
            g.task(id + "_db", Matmul::backwardWeightNaive, b.g, b.bOff, b.dys, b.ax, T, b.out, b.r);
            g.task(id + "_dax", Matmul::backwardNaive, b.dax, b.dys, b.p, b.bOff, T, b.out, b.r, 0);
        }
        g.task(id + "_da", Matmul::backwardWeightNaive, b.g, b.aOff, b.dax, b.dropped != null ? b.dropped : buf(x), T, b.r, b.in);
        if (b.dropped != null) {
            g.task(id + "_dx", Matmul::backwardNaive, b.dIn, b.dax, b.p, b.aOff, T, b.r, b.in, 0);
            g.task(id + "_dropout", Dropout::backwardNaive, buf(dx), b.dIn, b.seed, drop, T * b.in);
        } else {
            g.task(id + "_dx", Matmul::backwardNaive, buf(dx), b.dax, b.p, b.aOff, T, b.r, b.in, 1);
        }
    }

    @Override
    public void magnitudeBackward(LinearModule m, int i, Buf dyOut, Buf dy) {
        throw new UnsupportedOperationException("DoRA training on the device"); // refused when the branch is added
    }

    @Override
    public void bottleneckBackward(Sublayer s, int i, Buf dx, Buf dy) {
        throw new UnsupportedOperationException("bottleneck adapters on the device"); // refused when the plan is built
    }

    @Override
    public void biasBackward(LinearModule m, int i, Buf dy) {
        Branch b = branches.get(m.ordinal()).get(i);
        if (b.biasOff < 0) {
            return;
        }
        String id = branchId(m, i) + "_bias_bwd";
        g.task(id + "_dy", VectorOps::scaleNaive, b.dys, buf(dy), b.scale, T * b.out);
        g.task(id, Matmul::backwardWeightNaive, b.g, b.biasOff, b.dys, b.ones, T, b.out, 1);
    }

    @Override
    public void rmsNormBackward(Buf dx, boolean accumulate, Buf dOut, Buf x, Norm which, Buf rstd) {
        String id = "norm_" + which.name().toLowerCase() + "_bwd";
        float[] into = accumulate ? tmp : buf(dx);
        g.task(id, RmsNorm::backwardNaive, into, buf(dOut), buf(x), norm(which), buf(rstd), T, c.dim());
        if (accumulate) {
            g.task(id + "_add", VectorOps::axpyNaive, buf(dx), tmp, 1f, T * c.dim());
        }
    }

    @Override
    public void ropeBackward(Buf dx, Heads h) {
        g.task("rope_" + h.name().toLowerCase() + "_bwd", Rope::backwardNaive, buf(dx), freqs, pos, T, heads(h), c.headSize(),
                halves);
    }

    @Override
    public void attentionBackward(Buf dq, Buf dk, Buf dv, Buf dOut, Buf att, Buf q, Buf k, Buf v) {
        g.task("attention_bwd_q", Attention::backwardQueryNaive, buf(dq), dAtt, buf(dOut), buf(att), buf(k), buf(v), T,
                c.nHeads(), c.nKvHeads(), c.headSize());
        g.task("attention_bwd_kv", Attention::backwardKeyValueNaive, buf(dk), buf(dv), dAtt, buf(dOut), buf(att), buf(q), T,
                c.nHeads(), c.nKvHeads(), c.headSize());
    }

    @Override
    public void swigluBackward(Buf dGate, Buf dUp, Buf dOut, Buf gate, Buf up) {
        g.task("swiglu_bwd", SwiGlu::backwardNaive, buf(dGate), buf(dUp), buf(dOut), buf(gate), buf(up), T * c.hiddenDim());
    }

    @Override
    public void logitsBackward(Buf dx, Buf dLogits, Buf x) {
        if (headGrad != null) {
            g.task("output_bwd_weight", Matmul::backwardWeightNaive, headGrad, headGradOff, buf(dLogits), buf(x), T, output.rows,
                    output.cols);
        }
        output.backward(g, "output_bwd", buf(dx), buf(dLogits), T, false);
    }

    @Override
    public void crossEntropyBackward(Buf dLogits, Buf probs) {
        g.task("cross_entropy_bwd", CrossEntropy::backwardNaive, buf(dLogits), buf(probs), targets, dlosses, T, c.vocabSize());
    }
}

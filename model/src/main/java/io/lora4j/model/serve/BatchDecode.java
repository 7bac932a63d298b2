package io.lora4j.model.serve;

import io.lora4j.kernels.Attention;
import io.lora4j.kernels.Bottleneck;
import io.lora4j.kernels.Dora;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.Weight;
import io.lora4j.model.Llama;
import io.lora4j.model.State;
import io.lora4j.model.arch.Layer;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.block.Buf;
import io.lora4j.model.block.JvmOps;
import io.lora4j.model.block.LlamaBlock;
import io.lora4j.model.lora.AdapterSet;
import io.lora4j.model.lora.BottleneckLayer;
import io.lora4j.model.lora.LoraLayer;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.WeakHashMap;

/**
 * One decode step for R sequences at once, each at its own position with its own KV cache and its own
 * adapters: the executor of {@link LlamaBlock} a server runs. Every base projection is computed once
 * for all R rows ({@link Matmul#forwardRows}: the weights are read once); each adapter branch runs on
 * the rows whose sequence uses it ({@link Lora#forwardRows}); attention and RoPE run per row at the
 * row's position. Every kernel computes a row the same way whatever the other rows are, so a
 * sequence's tokens do not depend on what it is batched with. Rows may also be a prompt's tokens, one
 * row per position (the logits computed only for the rows that want them). A row's adapters apply in
 * the row's own order (a DoRA branch rescales what came before it): branches are grouped by their
 * place in the rows' adapter lists first. A served adapter's values do not change: each adapter layer's
 * {@link Lora.RowsLayout} is made on its first step and kept while the layer is reachable.
 * <pre>
 *   X, X_MID, X_OUT → x (R, C)   XB1, XB2 → xb   Q, K, V → q, k, v → row t's cache at pos[t]
 *   ATT_OUT → attOut   ATT_PROJ, FFN_PROJ → proj   GATE, HB → hb   UP → hb2   LOGITS → logits (R, V)
 * </pre>
 * Glossary: R rows (sequences), C dim, V vocab.
 */
final class BatchDecode extends JvmOps {
    private final Llama m;
    private final int maxRows;
    private final float[] x, xb, rstd, q, k, v, attOut, proj, hb, hb2, ax;
    final float[] logits;
    final int[] pos;
    private final int[] logitRows;
    private int nLogits;
    private final State[] states;
    private final List<List<AdapterSet.Active>> adapters = new ArrayList<>();
    private final float[][] kCaches, vCaches;
    private int layer;
    // the adapter branches of the projection last asked about: (layer, module) → branch list
    private int branchLayer = -1;
    private LinearModule branchModule;
    private final List<Branch> branches = new ArrayList<>();
    private final Map<LoraLayer, Lora.RowsLayout> layouts = new WeakHashMap<>();

    /** One adapter layer with one weight at one place in the rows' adapter lists, and the rows whose sequences use it so. */
    private record Branch(LoraLayer ll, float scale, int slot, int[] rows, int n) {
    }

    BatchDecode(Llama m, int maxRows, int maxRank) {
        this(m, maxRows, maxRows, maxRank);
    }

    /** Steps of up to maxRows rows, of which up to maxLogitRows want logits (a prompt's rows but its last need none). */
    BatchDecode(Llama m, int maxRows, int maxLogitRows, int maxRank) {
        super(m.config(), m.ropeFreqs());
        this.m = m;
        this.maxRows = maxRows;
        this.logitRows = new int[maxLogitRows];
        LlamaConfig c = m.config();
        int R = maxRows;
        x = new float[R * c.dim()];
        xb = new float[R * c.dim()];
        rstd = new float[R];
        q = new float[R * c.qDim()];
        k = new float[R * c.kvDim()];
        v = new float[R * c.kvDim()];
        attOut = new float[R * c.qDim()];
        proj = new float[R * c.dim()];
        hb = new float[R * c.hiddenDim()];
        hb2 = new float[R * c.hiddenDim()];
        ax = new float[R * Math.max(1, maxRank)];
        logits = new float[Math.multiplyExact(maxLogitRows, c.vocabSize())];
        pos = new int[R];
        states = new State[R];
        kCaches = new float[R][];
        vCaches = new float[R][];
    }

    /** The input rows: their embeddings go to {@link #x()}, row t of sequence t at position pos[t]. */
    float[] x() {
        return x;
    }

    /**
     * One step: row t (embedding in x, position {@code pos[t]}) of the sequence whose KV cache is in
     * {@code states.get(t)} and whose adapters are {@code rowAdapters.get(t)}; leaves (R, V) logits.
     */
    void step(List<State> rowStates, List<List<AdapterSet.Active>> rowAdapters, int R) {
        int[] all = new int[R];
        java.util.Arrays.setAll(all, t -> t);
        step(rowStates, rowAdapters, R, all, R);
    }

    /**
     * {@link #step} where only the rows {@code wanted[0..n)} (ascending) need logits: the logits of row
     * {@code wanted[j]} are left at {@code j · V}. Several rows may be one sequence's consecutive
     * positions (a prompt's tokens): every row's K and V go to the caches before any row attends.
     */
    void step(List<State> rowStates, List<List<AdapterSet.Active>> rowAdapters, int R, int[] wanted, int n) {
        if (R < 1 || R > maxRows || n > logitRows.length) {
            throw new IllegalArgumentException(R + " rows (" + n + " with logits); this batch takes 1.." + maxRows
                    + " (" + logitRows.length + ")");
        }
        System.arraycopy(wanted, 0, logitRows, 0, n);
        nLogits = n;
        T = R;
        adapters.clear();
        adapters.addAll(rowAdapters);
        for (int t = 0; t < R; t++) {
            states[t] = rowStates.get(t);
        }
        branchLayer = -1;
        for (int l = 0; l < c.nLayers(); l++) {
            layer = l;
            LlamaBlock.forward(this);
        }
        LlamaBlock.head(this, false);
    }

    @Override
    protected float[] buf(Buf b) {
        return switch (b) {
            case X, X_MID, X_OUT -> x;
            case RSTD1, RSTD2, RSTD_F -> rstd;
            case XB1, XB2, XF -> xb;
            case Q -> q;
            case K -> k;
            case V -> v;
            case ATT -> null;
            case ATT_OUT -> attOut;
            case ATT_PROJ, FFN_PROJ -> proj;
            case GATE, HB -> hb;
            case UP -> hb2;
            case LOGITS -> logits;
            default -> throw new IllegalArgumentException(b + " is not a decode buffer");
        };
    }

    @Override
    protected Layer layer() {
        return m.layer(layer);
    }

    @Override
    protected float[] outputNorm() {
        return m.outputNorm();
    }

    @Override
    public void matmul(LinearModule[] ms, Buf[] ys, Buf in) {
        float[][] outs = new float[ms.length][];
        Weight[] ws = new Weight[ms.length];
        for (int i = 0; i < ms.length; i++) {
            outs[i] = buf(ys[i]);
            ws[i] = ms[i].weight(layer());
        }
        Matmul.forwardRows(outs, buf(in), ws, T);
    }

    /**
     * The branches of {@code mod} in the current block: one per (adapter layer, weight, place in the row's
     * list of the adapters on mod), with its rows; ordered by place, then first use. A row has one adapter
     * per place, so the branches of one place touch disjoint rows and each row sees its adapters in order.
     */
    private List<Branch> branches(LinearModule mod) {
        if (branchLayer == layer && branchModule == mod) {
            return branches;
        }
        branches.clear();
        branchLayer = layer;
        branchModule = mod;
        for (int slot = 0, found = 1; found > 0; slot++) {
            found = 0;
            for (int t = 0; t < T; t++) {
                int k = 0;
                for (AdapterSet.Active a : adapters.get(t)) {
                    LoraLayer ll = a.adapter().get(layer, mod);
                    if (ll == null || ll.r == 0 || k++ != slot) {
                        continue;
                    }
                    found++;
                    add(ll, a.scale(), slot, t);
                }
            }
        }
        return branches;
    }

    /** Row t into the branch of (ll, scale, slot), made when new. */
    private void add(LoraLayer ll, float scale, int slot, int t) {
        int found = -1;
        for (int i = 0; i < branches.size(); i++) {
            Branch b = branches.get(i);
            if (b.ll == ll && b.scale == scale && b.slot == slot) {
                found = i;
            }
        }
        if (found < 0) {
            branches.add(new Branch(ll, scale, slot, new int[T], 0));
            found = branches.size() - 1;
        }
        Branch b = branches.get(found);
        b.rows[b.n] = t;
        branches.set(found, new Branch(b.ll, b.scale, slot, b.rows, b.n + 1));
    }

    @Override
    public int adapters(LinearModule mod) {
        return branches(mod).size();
    }

    @Override
    public void lowRank(LinearModule mod, int i, Buf y, Buf in) {
        Branch b = branches(mod).get(i);
        LoraLayer ll = b.ll;
        float[] scratch = ll.r <= ax.length / maxRows ? ax : new float[T * ll.r];
        Lora.RowsLayout lay = layouts.computeIfAbsent(ll, l -> Lora.rowsLayout(l.values(), l.a.off(), l.b.off(), l.in, l.out, l.r));
        Lora.forwardRows(buf(y), scratch, buf(in), b.rows, b.n, lay, ll.values(), ll.eOff(), b.scale * ll.scaling, ll.in, ll.out,
                ll.r);
    }

    @Override
    public void bias(LinearModule mod, int i, Buf y) {
        Branch b = branches(mod).get(i);
        LoraLayer ll = b.ll;
        if (ll.bias == null) {
            return;
        }
        float[] out = buf(y), p = ll.values();
        float s = b.scale * ll.scaling;
        for (int j = 0; j < b.n; j++) {
            int t = b.rows[j];
            for (int o = 0; o < ll.out; o++) {
                out[t * ll.out + o] += s * p[ll.bias.off() + o];
            }
        }
    }

    @Override
    public boolean decomposed(LinearModule mod, int i) {
        return branches(mod).get(i).ll.dora();
    }

    @Override
    public void magnitude(LinearModule mod, int i, Buf y) {
        Branch b = branches(mod).get(i);
        LoraLayer ll = b.ll;
        float[] norm = ll.weightNorm(mod.weight(layer()), b.scale * ll.scaling);
        Dora.forwardRows(buf(y), b.rows, b.n, ll.values(), ll.magnitude.off(), norm, ll.out);
    }

    /** The most bottleneck modules any row's adapters have after the sublayer. */
    @Override
    public int bottlenecks(Sublayer site) {
        int n = 0;
        for (int t = 0; t < T; t++) {
            int k = 0;
            for (AdapterSet.Active a : adapters.get(t)) {
                k += a.adapter().bottleneck(layer, site) != null ? 1 : 0;
            }
            n = Math.max(n, k);
        }
        return n;
    }

    /** Each row's i-th bottleneck module after the sublayer (if it has one), on that row alone. */
    @Override
    public void bottleneck(Sublayer site, int i, Buf y) {
        float[] out = buf(y);
        int C = c.dim();
        for (int t = 0; t < T; t++) {
            int k = 0;
            for (AdapterSet.Active a : adapters.get(t)) {
                BottleneckLayer b = a.adapter().bottleneck(layer, site);
                if (b != null && k++ == i) {
                    float[] row = java.util.Arrays.copyOfRange(out, t * C, (t + 1) * C), za = new float[b.d];
                    Bottleneck.forward(row, null, za, za, b.values(), b.down.off(), b.downBias.off(), b.up.off(), b.upBias.off(),
                            a.adapter().bottleneckConfig().activation(), a.scale() * a.adapter().bottleneckConfig().scaling(), 1, C, b.d);
                    System.arraycopy(row, 0, out, t * C, C);
                }
            }
        }
    }

    @Override
    public void rope(Buf in, Heads h) {
        Rope.forwardRows(buf(in), m.ropeFreqs(), pos, T, h == Heads.QUERY ? c.nHeads() : c.nKvHeads(), c.headSize(),
                c.ropeStyle() == LlamaConfig.RopeStyle.HALVES);
    }

    @Override
    public void attention(Buf out, Buf att, Buf qs, Buf ks, Buf vs) {
        int kvDim = c.kvDim();
        float[] kk = buf(ks), vv = buf(vs);
        for (int t = 0; t < T; t++) {
            kCaches[t] = states[t].kCache[layer];
            vCaches[t] = states[t].vCache[layer];
            System.arraycopy(kk, t * kvDim, kCaches[t], pos[t] * kvDim, kvDim);
            System.arraycopy(vv, t * kvDim, vCaches[t], pos[t] * kvDim, kvDim);
        }
        Attention.forwardRows(buf(out), buf(qs), kCaches, vCaches, pos, T, c.nHeads(), c.nKvHeads(), c.headSize());
    }

    @Override
    public void logits(Buf out, Buf in) {
        float[] x = buf(in);
        int C = c.dim();
        for (int j = 0; j < nLogits; j++) { // the wanted rows packed to the front (ascending: nothing overwritten before it is read)
            if (logitRows[j] != j) {
                System.arraycopy(x, logitRows[j] * C, x, j * C, C);
            }
        }
        if (nLogits > 0) {
            Matmul.forwardRows(new float[][]{buf(out)}, x, new Weight[]{m.output()}, nLogits);
        }
    }

    @Override
    public void crossEntropy(Buf losses, Buf probs, Buf logits) {
        throw new UnsupportedOperationException("decoding computes no loss");
    }
}

package io.lora4j.model.block;

import io.lora4j.kernels.Matmul;
import io.lora4j.kernels.RmsNorm;
import io.lora4j.kernels.Rope;
import io.lora4j.kernels.SwiGlu;
import io.lora4j.kernels.Weight;
import io.lora4j.model.arch.Layer;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.LlamaConfig;

/**
 * The block's ops on the JVM: the Vector-API kernels over the float arrays a subclass binds to the
 * block's buffer names — the inference backend (one run state, residual stream in place, a KV cache)
 * or training (one block's saved activations). The ops that differ between them (attention, the
 * adapter branches, the output projection, the loss) are theirs.
 */
public abstract class JvmOps implements BlockOps {
    protected final LlamaConfig c;
    private final float[] freqs;
    private final boolean halves;
    /** Tokens in the chunk and the position of the first. */
    protected int T, pos;

    protected JvmOps(LlamaConfig c, float[] ropeFreqs) {
        this.c = c;
        this.freqs = ropeFreqs;
        this.halves = c.ropeStyle() == LlamaConfig.RopeStyle.HALVES;
    }

    /** The array bound to {@code b}. */
    protected abstract float[] buf(Buf b);

    /** The current block's weights. */
    protected abstract Layer layer();

    /** The final norm's gain. */
    protected abstract float[] outputNorm();

    private float[] norm(Norm w) {
        return switch (w) {
            case ATTN -> layer().attnNorm();
            case FFN -> layer().ffnNorm();
            case OUTPUT -> outputNorm();
        };
    }

    @Override
    public void rmsNorm(Buf out, Buf rstd, Buf x, Norm w) {
        RmsNorm.forward(buf(out), buf(rstd), buf(x), norm(w), T, c.dim(), c.rmsEps());
    }

    /** {@code dx (=, or += with accumulate)} the RMSNorm's input gradient; {@code tmp} (T, C) is scratch for accumulating. */
    protected void rmsNormBackward(Buf dx, boolean accumulate, Buf dOut, Buf x, Norm w, Buf rstd, float[] tmp) {
        int C = c.dim();
        if (!accumulate) {
            RmsNorm.backward(buf(dx), null, buf(dOut), buf(x), norm(w), buf(rstd), T, C);
            return;
        }
        RmsNorm.backward(tmp, null, buf(dOut), buf(x), norm(w), buf(rstd), T, C);
        float[] d = buf(dx);
        for (int i = 0; i < T * C; i++) {
            d[i] += tmp[i];
        }
    }

    @Override
    public void matmul(LinearModule[] ms, Buf[] ys, Buf x) {
        Layer w = layer();
        if (ms.length == 1) {
            Matmul.forward(buf(ys[0]), buf(x), ms[0].weight(w), T);
            return;
        }
        float[][] outs = new float[ms.length][];
        Weight[] ws = new Weight[ms.length];
        for (int i = 0; i < ms.length; i++) {
            outs[i] = buf(ys[i]);
            ws[i] = ms[i].weight(w);
        }
        Matmul.forward(outs, buf(x), ws, T); // one pass over x when decoding
    }

    @Override
    public void rope(Buf x, Heads h) {
        Rope.forward(buf(x), freqs, T, heads(h), c.headSize(), pos, halves);
    }

    /** The inverse rotation of a gradient. */
    protected void ropeBackward(Buf dx, Heads h, int pos0) {
        Rope.backward(buf(dx), freqs, T, heads(h), c.headSize(), pos0, halves);
    }

    private int heads(Heads h) {
        return h == Heads.QUERY ? c.nHeads() : c.nKvHeads();
    }

    @Override
    public void add(Buf out, Buf a, Buf b) {
        float[] o = buf(out), x = buf(a), y = buf(b);
        for (int i = 0, n = T * c.dim(); i < n; i++) {
            o[i] = x[i] + y[i];
        }
    }

    @Override
    public void swiglu(Buf out, Buf gate, Buf up) {
        SwiGlu.forward(buf(out), buf(gate), buf(up), T * c.hiddenDim());
    }

    /** {@code y[t] += s·p[off..off+N)} for every row t of (T, N): an adapter's lora_B bias. */
    protected void addBias(Buf y, float[] p, int off, float s, int N) {
        float[] out = buf(y);
        for (int t = 0; t < T; t++) {
            for (int o = 0; o < N; o++) {
                out[t * N + o] += s * p[off + o];
            }
        }
    }
}

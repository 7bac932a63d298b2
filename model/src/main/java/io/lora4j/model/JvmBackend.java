package io.lora4j.model;

import io.lora4j.model.lora.AdapterSet;
import io.lora4j.model.arch.Layer;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.kernels.Attention;
import io.lora4j.kernels.Bottleneck;
import io.lora4j.kernels.Dora;
import io.lora4j.kernels.Lora;
import io.lora4j.kernels.Matmul;
import io.lora4j.model.block.Buf;
import io.lora4j.model.block.JvmOps;
import io.lora4j.model.block.LlamaBlock;
import io.lora4j.model.arch.LinearModule;
import io.lora4j.model.arch.Sublayer;
import io.lora4j.model.lora.BottleneckLayer;
import io.lora4j.model.lora.LoraLayer;

import java.util.List;

/**
 * The reference backend: runs {@link LlamaBlock} batched over T tokens with the Vector-API kernels
 * on the JVM, multi-threaded across outer loops. Its executor binds the block's buffers to
 * {@link State}, where the residual stream is updated in place:
 * <pre>
 *   X, X_MID, X_OUT → x      XB1, XB2 → xb     RSTD1, RSTD2 → rstd     Q, K, V → q, k, v
 *   ATT_OUT → attOut         ATT_PROJ, FFN_PROJ → proj                 GATE, HB → hb    UP → hb2
 *   K and V go into kCache[l] and vCache[l] at the chunk's positions; no probabilities are kept.
 * head: the chosen rows of x are copied to proj (X), XF → xb, LOGITS → logits.
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
    public void forward(Llama m, State s, int T, int pos, int logitRows) {
        forward(m, s, m.adapters().active(), T, pos, logitRows);
    }

    /** {@link #forward(Llama, State, int, int, int)} with these adapters active instead of the model's (a server's per-request adapters). */
    public void forward(Llama m, State s, List<AdapterSet.Active> adapters, int T, int pos, int logitRows) {
        Exec e = new Exec(m, s, adapters, T, pos);
        for (int l = 0; l < m.config().nLayers(); l++) {
            e.layer = l;
            LlamaBlock.forward(e);
        }
        if (logitRows > 0) {
            e.head(T - logitRows, logitRows);
        }
    }

    /** The block's ops over one {@link State}, for tokens at positions {@code pos..pos+T-1} of block {@code layer}. */
    private static final class Exec extends JvmOps {
        private final Llama m;
        private final State s;
        private final List<AdapterSet.Active> active;
        private int layer;
        private boolean head;

        Exec(Llama m, State s, List<AdapterSet.Active> active, int T, int pos) {
            super(m.config(), m.ropeFreqs());
            this.m = m;
            this.s = s;
            this.T = T;
            this.pos = pos;
            this.active = active;
        }

        /** Final norm and logits of rows {@code first..first+n-1} of x, written to {@link State#logits} as (n, V). */
        void head(int first, int n) {
            System.arraycopy(s.x, first * c.dim(), s.proj, 0, n * c.dim());
            T = n;
            head = true;
            LlamaBlock.head(this, false);
        }

        @Override
        protected float[] buf(Buf b) {
            return switch (b) {
                case X -> head ? s.proj : s.x;
                case X_MID, X_OUT -> s.x;
                case RSTD1, RSTD2, RSTD_F -> s.rstd;
                case XB1, XB2, XF -> s.xb;
                case Q -> s.q;
                case K -> s.k;
                case V -> s.v;
                case ATT -> null;
                case ATT_OUT -> s.attOut;
                case ATT_PROJ, FFN_PROJ -> s.proj;
                case GATE, HB -> s.hb;
                case UP -> s.hb2;
                case LOGITS -> s.logits;
                default -> throw new IllegalArgumentException(b + " is not an inference buffer");
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
        public int adapters(LinearModule mod) {
            int n = 0;
            for (AdapterSet.Active a : active) {
                if (a.adapter().get(layer, mod) != null) {
                    n++;
                }
            }
            return n;
        }

        /** The i-th active adapter that adapts mod in this block. */
        private AdapterSet.Active branch(LinearModule mod, int i) {
            for (AdapterSet.Active a : active) {
                if (a.adapter().get(layer, mod) != null && i-- == 0) {
                    return a;
                }
            }
            throw new IndexOutOfBoundsException("branch " + i + " of " + mod);
        }

        @Override
        public void lowRank(LinearModule mod, int i, Buf y, Buf x) {
            AdapterSet.Active a = branch(mod, i);
            LoraLayer ll = a.adapter().get(layer, mod);
            Lora.forward(buf(y), s.loraScratch(T * ll.r), buf(x), ll.values(), ll.a.off(), ll.eOff(), ll.b.off(), a.scale() * ll.scaling,
                    T, ll.in, ll.out, ll.r);
        }

        @Override
        public void bias(LinearModule mod, int i, Buf y) {
            AdapterSet.Active a = branch(mod, i);
            LoraLayer ll = a.adapter().get(layer, mod);
            if (ll.bias != null) {
                addBias(y, ll.values(), ll.bias.off(), a.scale() * ll.scaling, ll.out);
            }
        }

        @Override
        public boolean decomposed(LinearModule mod, int i) {
            return branch(mod, i).adapter().get(layer, mod).dora();
        }

        /** The row norms of the weight in use (a merged one too, as PEFT's forward reads the base layer's weight). */
        @Override
        public void magnitude(LinearModule mod, int i, Buf y) {
            AdapterSet.Active a = branch(mod, i);
            LoraLayer ll = a.adapter().get(layer, mod);
            float[] norm = ll.weightNorm(mod.weight(layer()), a.scale() * ll.scaling);
            Dora.forward(buf(y), null, ll.values(), ll.magnitude.off(), norm, T, ll.out);
        }

        @Override
        public int bottlenecks(Sublayer site) {
            int n = 0;
            for (AdapterSet.Active a : active) {
                if (a.adapter().bottleneck(layer, site) != null) {
                    n++;
                }
            }
            return n;
        }

        /** The active adapters' bottleneck modules after the sublayer, in activation order; the adapter's weight scales its output. */
        @Override
        public void bottleneck(Sublayer site, int i, Buf y) {
            for (AdapterSet.Active a : active) {
                BottleneckLayer b = a.adapter().bottleneck(layer, site);
                if (b != null && i-- == 0) {
                    float[] za = s.loraScratch(T * b.d); // z and f(z) share it: nothing is kept for a backward
                    Bottleneck.forward(buf(y), null, za, za, b.values(), b.down.off(), b.downBias.off(), b.up.off(),
                            b.upBias.off(), a.adapter().bottleneckConfig().activation(),
                            a.scale() * a.adapter().bottleneckConfig().scaling(), T, b.C, b.d);
                    return;
                }
            }
            throw new IndexOutOfBoundsException("bottleneck " + i + " after " + site);
        }

        @Override
        public void attention(Buf out, Buf att, Buf q, Buf k, Buf v) {
            int kvDim = c.kvDim();
            System.arraycopy(buf(k), 0, s.kCache[layer], pos * kvDim, T * kvDim);
            System.arraycopy(buf(v), 0, s.vCache[layer], pos * kvDim, T * kvDim);
            Attention.forward(buf(out), buf(att), buf(q), s.kCache[layer], s.vCache[layer], T, pos, c.nHeads(), c.nKvHeads(), c.headSize(), 0);
        }

        @Override
        public void logits(Buf logits, Buf x) {
            Matmul.forward(buf(logits), buf(x), m.output(), T);
        }

        @Override
        public void crossEntropy(Buf losses, Buf probs, Buf logits) {
            throw new UnsupportedOperationException("the inference backend computes no loss (see TrainGraph)");
        }
    }
}

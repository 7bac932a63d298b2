package io.lora4j.model.lora;

import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.GgmlType;
import io.lora4j.kernels.Weight;
import io.lora4j.model.arch.BaseModel;
import io.lora4j.model.arch.LlamaConfig;
import io.lora4j.model.format.Quantizer;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;

/**
 * PEFT's initialisations from the base weight's principal components (peft/tuners/lora/layer.py
 * {@code pissa_init}, {@code olora_init}): per adapted projection W (OUT, IN), with s the scaling and r the rank,
 * <ul>
 *   <li>{@code pissa}: W = V·S·Uᵀ (torch.linalg.svd); A = diag(√(S_r/s))·U_rᵀ, B = V_r·diag(√(S_r/s));</li>
 *   <li>{@code pissa_niter_N}: the same from {@code torch.svd_lowrank(W, q=r, niter=N)} (Halko et al.'s
 *       randomised range finder: R ~ randn(n, r) for the tall form of W, X = W·R, N power iterations with
 *       QR re-orthonormalisation, then the SVD of QᵀW);</li>
 *   <li>{@code olora}: W = Q·R (torch.linalg.qr); A = R_r (first r rows), B = Q_r (first r columns).</li>
 * </ul>
 * and then the base weight becomes the residual {@code W − s·B·A} (computed in float from the float A and B,
 * stored in W's own type), so the adapted model starts as the base model. Only F32, F16 and BF16 bases are
 * decomposed, as PEFT: PiSSA refuses anything else with PEFT's message; OLoRA, which PEFT also runs on
 * bitsandbytes' 4- and 8-bit weights, dequantizes a base quantized on load ({@code --quantize}) and quantizes
 * the residual back to the same type, and refuses a GGUF block type (Q8_0, Q4_K, …) as PEFT refuses a dtype it
 * does not know.
 * <p>
 * Randomness: pissa_niter's R is drawn from {@link TorchRandom}, positioned as PEFT's {@code get_peft_model}
 * leaves torch's generator after {@code torch.manual_seed(seed)}: for every adapted projection in module order,
 * the draws of {@code nn.Linear(IN, r)} and {@code nn.Linear(r, OUT)}'s initialisation, then R. So with the
 * same seed R is PEFT's (to an ulp), and so is the residual (it depends only on the span of Q). Singular
 * vectors are defined up to sign: A's rows and B's columns may differ from PEFT's by a sign per rank, which
 * changes neither the residual nor training. OLoRA's QR follows LAPACK's sign convention, so its A and B are
 * PEFT's. Everything is computed in Hugging Face row order (a GGUF base's q/k rows are permuted first).
 */
public final class ResidualInit {
    private ResidualInit() {
    }

    /** Whether {@code init} is PiSSA or OLoRA, which replace the base weights with residuals. */
    public static boolean mutatesBase(String init) {
        return init.equals("pissa") || init.startsWith("pissa_niter_") || init.equalsIgnoreCase("olora");
    }

    /** pissa_niter_N's N, or −1 for full-SVD PiSSA; refuses a malformed name with PEFT's message. */
    static int niter(String init) {
        if (init.equals("pissa")) {
            return -1;
        }
        String n = init.substring("pissa_niter_".length());
        try {
            int v = Integer.parseInt(n);
            if (v >= 0) {
                return v;
            }
        } catch (NumberFormatException ignored) {
        }
        throw new IllegalArgumentException("init_lora_weights should be 'pissa' or 'pissa_niter_[number of iters]', got "
                + init + " instead.");
    }

    /**
     * Initialises every layer of {@code a} from the base (the config's {@code init_lora_weights}) and replaces
     * each adapted projection of {@code base} by its residual. Returns the store's values with A₀ and B₀ filled
     * in (the adapter's other values as they are). Every projection is checked before any is replaced.
     */
    static float[] decompose(LoraAdapter a, BaseModel base, long seed) {
        String init = a.config().initLoraWeights();
        boolean olora = init.equalsIgnoreCase("olora");
        int niter = olora ? -1 : niter(init);
        for (LoraLayer l : a.layers()) {
            check(l, base.projection(l.layer, l.module), olora);
        }
        LlamaConfig c = base.config();
        TorchRandom rnd = new TorchRandom(seed);
        float[] v = a.store().values.clone();
        for (LoraLayer l : a.layers()) {
            rnd.skip((long) l.r * l.in + (long) l.out * l.r); // nn.Linear(IN, r), nn.Linear(r, OUT)
            double[] w = toDouble(hfRows(l, c, base.projection(l.layer, l.module)));
            double[] ad, bd;
            if (olora) {
                Linalg.Qr qr = Linalg.qr(w, l.out, l.in, l.r);
                ad = qr.r();
                bd = qr.q();
            } else {
                Linalg.Svd s = niter < 0 ? Linalg.svd(w, l.out, l.in, l.r) : svdLowRank(w, l.out, l.in, l.r, niter, rnd);
                ad = new double[l.r * l.in];
                bd = new double[l.out * l.r];
                for (int j = 0; j < l.r; j++) {
                    double root = Math.sqrt((float) (s.s()[j] / l.scaling)); // Sr /= scaling, in float
                    for (int i = 0; i < l.in; i++) {
                        ad[j * l.in + i] = root * s.vt()[j * l.in + i];
                    }
                    for (int o = 0; o < l.out; o++) {
                        bd[o * l.r + j] = s.u()[o * l.r + j] * root;
                    }
                }
            }
            for (int i = 0; i < ad.length; i++) {
                v[l.a.off() + i] = (float) ad[i];
            }
            float[] b = new float[bd.length];
            for (int i = 0; i < bd.length; i++) {
                b[i] = (float) bd[i];
            }
            System.arraycopy(toBaseRows(l, c, b, l.r), 0, v, l.b.off(), b.length);
        }
        subtract(a, base, v);
        return v;
    }

    /**
     * Replaces every adapted projection W of {@code base} with {@code W − s·B₀A₀}, A₀ and B₀ read from
     * {@code initial} at the adapter's offsets (a checkpoint's initial values, or {@link #decompose}'s).
     */
    static void subtract(LoraAdapter a, BaseModel base, float[] initial) {
        LlamaConfig c = base.config();
        boolean olora = a.config().initLoraWeights().equalsIgnoreCase("olora");
        List<Weight> residuals = new ArrayList<>();
        for (LoraLayer l : a.layers()) {
            Weight w = base.projection(l.layer, l.module);
            check(l, w, olora);
            float[] m = hfRows(l, c, w);
            float[] b = new float[l.out * l.r];
            System.arraycopy(initial, l.b.off(), b, 0, b.length);
            b = fromBaseRows(l, c, b, l.r);
            for (int o = 0; o < l.out; o++) {
                for (int i = 0; i < l.in; i++) {
                    double s = 0;
                    for (int j = 0; j < l.r; j++) {
                        s += (double) b[o * l.r + j] * initial[l.a.off() + j * l.in + i];
                    }
                    m[o * l.in + i] -= l.scaling * (float) s;
                }
            }
            residuals.add(stored(w, toBaseRows(l, c, m, l.in)));
        }
        for (int i = 0; i < residuals.size(); i++) {
            LoraLayer l = a.layers().get(i);
            base.replaceProjection(l.layer, l.module, residuals.get(i));
        }
    }

    /** PEFT's type checks: F32/F16/BF16 for PiSSA; OLoRA also takes lora4j's bitsandbytes-like types. */
    private static void check(LoraLayer l, Weight w, boolean olora) {
        GgmlType t = w.type();
        if (l.r > Math.min(l.in, l.out)) {
            throw new IllegalArgumentException(l.path() + ": rank " + l.r + " exceeds min(in, out) = " + Math.min(l.in, l.out)
                    + ", the most singular vectors PiSSA/OLoRA can take");
        }
        if (t == GgmlType.F32 || t == GgmlType.F16 || t == GgmlType.BF16) {
            return;
        }
        if (!olora) {
            throw new IllegalArgumentException(l.path() + " is " + t + ": Please initialize PiSSA under float32, float16, or "
                    + "bfloat16. Subsequently, re-quantize the residual model to help minimize quantization errors.");
        }
        if (t.ggml) {
            throw new IllegalArgumentException(l.path() + ": Unsupported data type for the base layer. Got " + t
                    + " (OLoRA decomposes F32, F16 and BF16 bases, and, as PEFT does with bitsandbytes, those quantized on "
                    + "load with --quantize)");
        }
    }

    /** The residual in w's type: F32/F16/BF16 rounded as torch's {@code .to(dtype)}, a --quantize type quantized again. */
    private static Weight stored(Weight w, float[] m) {
        String name = w.name() + "-residual";
        GgmlType t = w.type();
        if (t == GgmlType.F32 || t == GgmlType.F16 || t == GgmlType.BF16) {
            long rowBytes = t.byteSize(w.cols());
            MemorySegment seg = Arena.ofAuto().allocate(w.rows() * rowBytes, 64);
            for (int r = 0; r < w.rows(); r++) {
                Quantizer.quantizeRow(t, seg, r * rowBytes, m, r * w.cols(), w.cols());
            }
            return new Weight(name, t, seg, w.rows(), w.cols());
        }
        return Requantize.like(w, name, m);
    }

    /**
     * {@code torch.svd_lowrank(w, q=k, niter)} for w (m, n): the tall form (wᵀ when m &lt; n), R = randn(cols, k),
     * Q = qr(A·R).Q, then niter times Q = qr(Aᵀ·Q).Q, Q = qr(A·Q).Q; the SVD of B = Qᵀ·A; U = Q·U_B.
     * Returned for w itself (U and V swapped back when it was transposed).
     */
    static Linalg.Svd svdLowRank(double[] w, int m, int n, int k, int niter, TorchRandom rnd) {
        boolean wide = m < n;
        int rows = wide ? n : m, cols = wide ? m : n;
        double[] a = wide ? transpose(w, m, n) : w;
        float[] r = new float[cols * k];
        rnd.randn(r, 0, r.length);
        double[] rd = new double[r.length];
        for (int i = 0; i < r.length; i++) {
            rd[i] = r[i];
        }
        double[] q = Linalg.qr(matmul(a, rd, rows, cols, k), rows, k, k).q();
        double[] at = transpose(a, rows, cols);
        for (int it = 0; it < niter; it++) {
            q = Linalg.qr(matmul(at, q, cols, rows, k), cols, k, k).q();
            q = Linalg.qr(matmul(a, q, rows, cols, k), rows, k, k).q();
        }
        double[] b = matmul(transpose(q, rows, k), a, k, rows, cols); // (k, cols)
        Linalg.Svd s = Linalg.svd(b, k, cols, k);
        double[] u = matmul(q, s.u(), rows, k, k); // (rows, k)
        if (!wide) {
            return new Linalg.Svd(u, s.s(), s.vt(), m, n, k);
        }
        // w = aᵀ = V·S·Uᵀ: w's left vectors are s.vt's rows, its right vectors u's columns
        return new Linalg.Svd(transpose(s.vt(), k, cols), s.s(), transpose(u, rows, k), m, n, k);
    }

    private static double[] matmul(double[] x, double[] y, int m, int p, int n) {
        double[] out = new double[m * n];
        for (int i = 0; i < m; i++) {
            for (int t = 0; t < p; t++) {
                double xv = x[i * p + t];
                for (int j = 0; j < n; j++) {
                    out[i * n + j] += xv * y[t * n + j];
                }
            }
        }
        return out;
    }

    private static double[] transpose(double[] x, int m, int n) {
        double[] t = new double[x.length];
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < n; j++) {
                t[j * m + i] = x[i * n + j];
            }
        }
        return t;
    }

    private static double[] toDouble(float[] x) {
        double[] d = new double[x.length];
        for (int i = 0; i < x.length; i++) {
            d[i] = x[i];
        }
        return d;
    }

    /** W (OUT, IN) dequantized, in Hugging Face row order. */
    private static float[] hfRows(LoraLayer l, LlamaConfig c, Weight w) {
        return PeftAdapters.hfRows(Dequant.matrix(w), l.module, c, l.in, true);
    }

    private static float[] fromBaseRows(LoraLayer l, LlamaConfig c, float[] m, int cols) {
        return PeftAdapters.hfRows(m, l.module, c, cols, true);
    }

    private static float[] toBaseRows(LoraLayer l, LlamaConfig c, float[] m, int cols) {
        return PeftAdapters.hfRows(m, l.module, c, cols, false);
    }
}

package io.lora4j.model.lora;

import io.lora4j.model.arch.BaseModel;

import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * PEFT's {@code add_weighted_adapter}: a new adapter from weighted adapters with the same targets.
 * The result is a LoRA adapter with scaling 1 (lora_alpha = r), the old scalings folded into A; so
 * are AdaLoRA's singular values E (which PEFT's AdaLoRA refuses to combine at all).
 * <ul>
 *   <li>{@code linear}: equal ranks; A = Σ √w·s·A_i, B = Σ √w·B_i (PEFT's definition; not the sum of
 *       the updates when there are several adapters);</li>
 *   <li>{@code cat}: A stacks √w·s·A_i, B stacks √w·B_i side by side: rank Σ r_i (of the widest module) and
 *       ΔW = Σ w·s·B_i A_i exactly;</li>
 *   <li>{@code svd}: ΔW = Σ w·s·B_i A_i truncated to {@code svdRank} singular triplets (B = U·S, A = Vᵀ),
 *       computed from the factors (QR of the stacked B and Aᵀ, SVD of the small core) without forming ΔW.</li>
 * </ul>
 */
public final class WeightedAdapters {
    private WeightedAdapters() {
    }

    public static LoraAdapter combine(BaseModel base, List<LoraAdapter> adapters, List<Float> weights, String name,
                                      String combination, int svdRank) {
        if (adapters.isEmpty() || adapters.size() != weights.size()) {
            throw new IllegalArgumentException("add_weighted_adapter needs as many weights as adapters (and at least one)");
        }
        Set<String> paths = paths(adapters.get(0));
        for (LoraAdapter a : adapters) {
            if (!paths(a).equals(paths)) {
                throw new IllegalArgumentException("adapters " + adapters.get(0).name() + " and " + a.name()
                        + " adapt different modules; combining them is not supported");
            }
            for (LoraLayer l : a.layers()) {
                if (l.bias != null) {
                    throw new IllegalArgumentException("adapter " + a.name() + " has lora_B biases; they cannot be combined");
                }
            }
        }
        int rank = switch (combination) {
            case "linear" -> {
                for (LoraAdapter a : adapters) {
                    for (LoraLayer l : a.layers()) {
                        if (l.r != adapters.get(0).layers().get(0).r) {
                            throw new IllegalArgumentException("linear combination needs one rank in every adapter; use cat or svd");
                        }
                    }
                }
                yield adapters.get(0).layers().get(0).r;
            }
            case "cat" -> {
                // the widest module's Σ r_i (ranks differ per module with rank_pattern or AdaLoRA); others are zero-padded
                int r = 0;
                for (LoraLayer l : adapters.get(0).layers()) {
                    int sum = 0;
                    for (LoraAdapter a : adapters) {
                        sum += a.get(l.layer, l.module).r;
                    }
                    r = Math.max(r, sum);
                }
                yield r;
            }
            case "svd" -> {
                int max = 0;
                for (LoraAdapter a : adapters) {
                    for (LoraLayer l : a.layers()) {
                        max = Math.max(max, l.r);
                    }
                }
                yield svdRank > 0 ? svdRank : max;
            }
            default -> throw new IllegalArgumentException("combination type must be linear, cat or svd, got '" + combination + "'");
        };
        LoraConfig first = adapters.get(0).config();
        LoraConfig cfg = new LoraConfig(rank, rank, 0f, first.targetModules(), first.targetRegex(), "none", false, "true",
                first.layersToTransform(), Map.of(), Map.of(), List.of());
        LoraAdapter out = new LoraAdapter(name, cfg, base, 0);
        for (LoraLayer target : out.layers()) {
            List<LoraLayer> src = new ArrayList<>();
            for (LoraAdapter a : adapters) {
                src.add(a.get(target.layer, target.module));
            }
            switch (combination) {
                case "linear" -> linear(target, src, weights);
                case "cat" -> cat(target, src, weights);
                default -> svd(target, src, weights);
            }
        }
        return out;
    }

    private static Set<String> paths(LoraAdapter a) {
        Set<String> s = new LinkedHashSet<>();
        for (LoraLayer l : a.layers()) {
            s.add(l.path());
        }
        return s;
    }

    private static void linear(LoraLayer t, List<LoraLayer> src, List<Float> w) {
        float[] ta = new float[t.a.len()], tb = new float[t.b.len()];
        for (int k = 0; k < src.size(); k++) {
            LoraLayer s = src.get(k);
            float sw = (float) Math.sqrt(w.get(k));
            for (int i = 0; i < ta.length; i++) {
                ta[i] += sw * s.scaling * s.e(i / s.in) * s.a.get(i);
            }
            for (int i = 0; i < tb.length; i++) {
                tb[i] += sw * s.b.get(i);
            }
        }
        t.a.load(ta);
        t.b.load(tb);
    }

    private static void cat(LoraLayer t, List<LoraLayer> src, List<Float> w) {
        float[] ta = new float[t.a.len()], tb = new float[t.b.len()];
        int row = 0;
        for (int k = 0; k < src.size(); k++) {
            LoraLayer s = src.get(k);
            float sw = (float) Math.sqrt(w.get(k));
            for (int j = 0; j < s.r; j++) {
                for (int i = 0; i < t.in; i++) {
                    ta[(row + j) * t.in + i] = sw * s.scaling * s.e(j) * s.a.get(j * s.in + i);
                }
                for (int o = 0; o < t.out; o++) {
                    tb[o * t.r + row + j] = sw * s.b.get(o * s.r + j);
                }
            }
            row += s.r;
        }
        t.a.load(ta);
        t.b.load(tb);
    }

    /** Truncated SVD of ΔW = Bc·Ac with Bc (out × R) = [w·s·B_i], Ac (R × in) = [A_i], in double. */
    private static void svd(LoraLayer t, List<LoraLayer> src, List<Float> w) {
        int R = 0;
        for (LoraLayer s : src) {
            R += s.r;
        }
        double[][] bc = new double[t.out][R];  // out × R
        double[][] act = new double[t.in][R];  // in × R (Acᵀ)
        int col = 0;
        for (int k = 0; k < src.size(); k++) {
            LoraLayer s = src.get(k);
            for (int j = 0; j < s.r; j++) {
                for (int o = 0; o < t.out; o++) {
                    bc[o][col + j] = (double) w.get(k) * s.scaling * s.e(j) * s.b.get(o * s.r + j);
                }
                for (int i = 0; i < t.in; i++) {
                    act[i][col + j] = s.a.get(j * s.in + i);
                }
            }
            col += s.r;
        }
        double[][] r1 = qr(bc);  // bc becomes Q1
        double[][] r2 = qr(act); // act becomes Q2
        double[][] m = new double[R][R]; // R1 · R2ᵀ
        for (int i = 0; i < R; i++) {
            for (int j = 0; j < R; j++) {
                double sum = 0;
                for (int k = 0; k < R; k++) {
                    sum += r1[i][k] * r2[j][k];
                }
                m[i][j] = sum;
            }
        }
        double[][] v = new double[R][R];
        double[] sigma = jacobiSvd(m, v); // m becomes U·S (columns), v the right vectors
        Integer[] order = new Integer[R];
        for (int i = 0; i < R; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (x, y) -> Double.compare(sigma[y], sigma[x]));
        for (int j = 0; j < t.r; j++) {
            int c = j < R ? order[j] : -1;
            for (int o = 0; o < t.out; o++) { // B = Q1 · (U·S)[:, c]
                double sum = 0;
                for (int k = 0; c >= 0 && k < R; k++) {
                    sum += bc[o][k] * m[k][c];
                }
                t.b.set(o * t.r + j, (float) sum);
            }
            for (int i = 0; i < t.in; i++) { // A = (Q2 · V[:, c])ᵀ
                double sum = 0;
                for (int k = 0; c >= 0 && k < R; k++) {
                    sum += act[i][k] * v[k][c];
                }
                t.a.set(j * t.in + i, (float) sum);
            }
        }
    }

    /** Modified Gram-Schmidt: a (n × R) becomes Q (orthonormal columns, zero where dependent); returns R (R × R). */
    static double[][] qr(double[][] a) {
        int n = a.length, R = a[0].length;
        double[][] r = new double[R][R];
        for (int j = 0; j < R; j++) {
            for (int k = 0; k < j; k++) {
                double dot = 0;
                for (int i = 0; i < n; i++) {
                    dot += a[i][k] * a[i][j];
                }
                r[k][j] = dot;
                for (int i = 0; i < n; i++) {
                    a[i][j] -= dot * a[i][k];
                }
            }
            double norm = 0;
            for (int i = 0; i < n; i++) {
                norm += a[i][j] * a[i][j];
            }
            norm = Math.sqrt(norm);
            r[j][j] = norm;
            for (int i = 0; i < n; i++) {
                a[i][j] = norm > 1e-300 ? a[i][j] / norm : 0;
            }
        }
        return r;
    }

    /**
     * One-sided Jacobi: rotates the columns of m (R × R) until orthogonal, accumulating the
     * rotations in v; afterwards m = U·S column-wise and the returned array holds S.
     */
    static double[] jacobiSvd(double[][] m, double[][] v) {
        int R = m.length;
        for (int i = 0; i < R; i++) {
            v[i][i] = 1;
        }
        for (int sweep = 0; sweep < 60; sweep++) {
            double off = 0;
            for (int p = 0; p < R; p++) {
                for (int q = p + 1; q < R; q++) {
                    double alpha = 0, beta = 0, gamma = 0;
                    for (int i = 0; i < R; i++) {
                        alpha += m[i][p] * m[i][p];
                        beta += m[i][q] * m[i][q];
                        gamma += m[i][p] * m[i][q];
                    }
                    if (Math.abs(gamma) <= 1e-15 * Math.sqrt(alpha * beta) || gamma == 0) {
                        continue;
                    }
                    off = Math.max(off, Math.abs(gamma) / Math.sqrt(alpha * beta));
                    double zeta = (beta - alpha) / (2 * gamma);
                    double tan = Math.signum(zeta) / (Math.abs(zeta) + Math.sqrt(1 + zeta * zeta));
                    if (zeta == 0) {
                        tan = 1;
                    }
                    double c = 1 / Math.sqrt(1 + tan * tan), s = c * tan;
                    for (int i = 0; i < R; i++) {
                        double x = m[i][p], y = m[i][q];
                        m[i][p] = c * x - s * y;
                        m[i][q] = s * x + c * y;
                        x = v[i][p];
                        y = v[i][q];
                        v[i][p] = c * x - s * y;
                        v[i][q] = s * x + c * y;
                    }
                }
            }
            if (off < 1e-14) {
                break;
            }
        }
        double[] sigma = new double[R];
        for (int j = 0; j < R; j++) {
            double n = 0;
            for (int i = 0; i < R; i++) {
                n += m[i][j] * m[i][j];
            }
            sigma[j] = Math.sqrt(n);
        }
        return sigma;
    }
}

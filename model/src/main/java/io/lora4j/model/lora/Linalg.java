package io.lora4j.model.lora;

/**
 * The dense linear algebra PEFT's initialisations and adapter combinations call torch.linalg for, in
 * double precision on row-major arrays: Householder QR with LAPACK's sign convention, a symmetric
 * eigendecomposition (Householder tridiagonalisation and implicit QL, EISPACK's tred2/tql2 as JAMA
 * writes them) and the leading singular triplets of a matrix from the eigenvectors of its Gram matrix.
 * Glossary: m rows, n columns, k reflectors or triplets.
 */
public final class Linalg {
    private Linalg() {
    }

    /** The first k columns of Q (m, k) and first k rows of R (k, n) of a QR decomposition. */
    public record Qr(double[] q, double[] r, int m, int n, int k) {
    }

    /**
     * The first {@code k} columns of Q and rows of R of {@code a} (m, n), as LAPACK's geqrf + orgqr
     * compute them (torch.linalg.qr): reflector j maps column j's tail x to βe₁ with
     * β = −sign(x₀)·‖x‖ (no reflection when the tail below x₀ is zero), so R's diagonal has those signs.
     * Only the first k reflectors shape these columns and rows, so only they are computed: O(m·n·k).
     */
    public static Qr qr(double[] a, int m, int n, int k) {
        if (k > Math.min(m, n)) {
            throw new IllegalArgumentException("QR: " + k + " columns of a " + m + "×" + n + " matrix");
        }
        double[] w = a.clone();
        double[][] v = new double[k][];
        double[] tau = new double[k];
        for (int j = 0; j < k; j++) {
            double alpha = w[j * n + j], xnorm = 0;
            for (int i = j + 1; i < m; i++) {
                xnorm = Math.hypot(xnorm, w[i * n + j]);
            }
            double[] vj = new double[m];
            vj[j] = 1;
            v[j] = vj;
            if (xnorm == 0) { // dlarfg: H = I
                continue;
            }
            double beta = -Math.copySign(Math.hypot(alpha, xnorm), alpha);
            tau[j] = (beta - alpha) / beta;
            for (int i = j + 1; i < m; i++) {
                vj[i] = w[i * n + j] / (alpha - beta);
            }
            // apply H = I − τ v vᵀ to the remaining columns
            for (int c = j; c < n; c++) {
                double dot = 0;
                for (int i = j; i < m; i++) {
                    dot += vj[i] * w[i * n + c];
                }
                dot *= tau[j];
                for (int i = j; i < m; i++) {
                    w[i * n + c] -= dot * vj[i];
                }
            }
            w[j * n + j] = beta;
            for (int i = j + 1; i < m; i++) {
                w[i * n + j] = 0;
            }
        }
        double[] r = new double[k * n];
        for (int i = 0; i < k; i++) {
            for (int c = i; c < n; c++) {
                r[i * n + c] = w[i * n + c];
            }
        }
        double[] q = new double[m * k]; // Q e_c = H_0 … H_c e_c
        for (int c = 0; c < k; c++) {
            double[] col = new double[m];
            col[c] = 1;
            for (int j = c; j >= 0; j--) {
                double dot = 0;
                for (int i = j; i < m; i++) {
                    dot += v[j][i] * col[i];
                }
                dot *= tau[j];
                for (int i = j; i < m; i++) {
                    col[i] -= dot * v[j][i];
                }
            }
            for (int i = 0; i < m; i++) {
                q[i * k + c] = col[i];
            }
        }
        return new Qr(q, r, m, n, k);
    }

    /** Singular triplets: U (m, k), S (k) descending, Vᵀ (k, n). */
    public record Svd(double[] u, double[] s, double[] vt, int m, int n, int k) {
    }

    /**
     * The {@code k} leading singular triplets of {@code a} (m, n), from the eigenvectors of the Gram
     * matrix of its shorter side (AᵀA when m ≥ n: V, then U = A·V/σ; else AAᵀ: U, then V = AᵀU/σ).
     * Singular vectors are defined up to sign: each pair is chosen so that the entry of largest
     * magnitude of its right singular vector (its row of Vᵀ) is positive. A triplet of a zero singular
     * value has zero vectors on the side computed by division.
     */
    public static Svd svd(double[] a, int m, int n, int k) {
        if (k > Math.min(m, n)) {
            throw new IllegalArgumentException("SVD: " + k + " triplets of a " + m + "×" + n + " matrix");
        }
        boolean tall = m >= n;
        int p = tall ? n : m, len = tall ? m : n;
        double[] g = new double[p * p]; // lower triangle accumulated row by row, then mirrored
        if (tall) {
            for (int x = 0; x < m; x++) {
                for (int i = 0; i < n; i++) {
                    double ai = a[x * n + i];
                    for (int j = 0; j <= i; j++) {
                        g[i * p + j] += ai * a[x * n + j];
                    }
                }
            }
        } else {
            for (int i = 0; i < m; i++) {
                for (int j = 0; j <= i; j++) {
                    double s = 0;
                    for (int x = 0; x < n; x++) {
                        s += a[i * n + x] * a[j * n + x];
                    }
                    g[i * p + j] = s;
                }
            }
        }
        for (int i = 0; i < p; i++) {
            for (int j = 0; j < i; j++) {
                g[j * p + i] = g[i * p + j];
            }
        }
        Eigen e = symmetricEigen(g, p);
        double[] u = new double[m * k], sv = new double[k], vt = new double[k * n];
        for (int t = 0; t < k; t++) {
            double sigma = Math.sqrt(Math.max(0, e.values()[t]));
            sv[t] = sigma;
            double[] known = new double[p], other = new double[len];
            for (int i = 0; i < p; i++) {
                known[i] = e.vectors()[i * p + t];
            }
            if (sigma > 0) { // the other side: A·v/σ (tall) or Aᵀ·u/σ
                if (tall) {
                    for (int x = 0; x < m; x++) {
                        for (int i = 0; i < n; i++) {
                            other[x] += a[x * n + i] * known[i];
                        }
                    }
                } else {
                    for (int i = 0; i < m; i++) {
                        for (int x = 0; x < n; x++) {
                            other[x] += a[i * n + x] * known[i];
                        }
                    }
                }
                for (int x = 0; x < len; x++) {
                    other[x] /= sigma;
                }
            }
            double[] right = tall ? known : other, left = tall ? other : known;
            for (int i = 0; i < n; i++) {
                vt[t * n + i] = right[i];
            }
            for (int i = 0; i < m; i++) {
                u[i * k + t] = left[i];
            }
        }
        return canonical(new Svd(u, sv, vt, m, n, k));
    }

    /**
     * The leading {@code k} singular triplets of the product B·A (m, r)·(r, n), r ≤ min(m, n), from the
     * factors: B = Q₁R₁, Aᵀ = Q₂R₂, then the SVD of the small core R₁R₂ᵀ = U'SV'ᵀ gives U = Q₁U',
     * V = Q₂V'. O((m + n)·r²); the signs as {@link #svd} chooses them.
     */
    public static Svd svdOfProduct(double[] b, double[] a, int m, int r, int n, int k) {
        if (r > Math.min(m, n) || k > r) {
            throw new IllegalArgumentException("SVD of a product: rank " + r + " of " + m + "×" + n + ", " + k + " triplets");
        }
        double[] at = new double[n * r];
        for (int j = 0; j < r; j++) {
            for (int i = 0; i < n; i++) {
                at[i * r + j] = a[j * n + i];
            }
        }
        Qr q1 = qr(b, m, r, r), q2 = qr(at, n, r, r);
        double[] core = new double[r * r];
        for (int i = 0; i < r; i++) {
            for (int j = 0; j < r; j++) {
                double s = 0;
                for (int x = 0; x < r; x++) {
                    s += q1.r()[i * r + x] * q2.r()[j * r + x];
                }
                core[i * r + j] = s;
            }
        }
        Svd c = svd(core, r, r, k);
        double[] u = new double[m * k], vt = new double[k * n];
        for (int t = 0; t < k; t++) {
            for (int i = 0; i < m; i++) {
                double s = 0;
                for (int x = 0; x < r; x++) {
                    s += q1.q()[i * r + x] * c.u()[x * k + t];
                }
                u[i * k + t] = s;
            }
            for (int i = 0; i < n; i++) {
                double s = 0;
                for (int x = 0; x < r; x++) {
                    s += c.vt()[t * r + x] * q2.q()[i * r + x];
                }
                vt[t * n + i] = s;
            }
        }
        return canonical(new Svd(u, c.s(), vt, m, n, k));
    }

    /** Flips each triplet so that the largest-magnitude entry of its right singular vector is positive. */
    private static Svd canonical(Svd s) {
        int m = s.m(), n = s.n(), k = s.k();
        for (int t = 0; t < k; t++) {
            int big = 0;
            for (int i = 1; i < n; i++) {
                if (Math.abs(s.vt()[t * n + i]) > Math.abs(s.vt()[t * n + big])) {
                    big = i;
                }
            }
            if (s.vt()[t * n + big] < 0) {
                for (int i = 0; i < n; i++) {
                    s.vt()[t * n + i] = -s.vt()[t * n + i];
                }
                for (int i = 0; i < m; i++) {
                    s.u()[i * k + t] = -s.u()[i * k + t];
                }
            }
        }
        return s;
    }

    /** Eigenvalues in descending order and the matching unit eigenvectors as the columns of an (n, n) array. */
    public record Eigen(double[] values, double[] vectors) {
    }

    /** Eigendecomposition of the symmetric (n, n) matrix {@code a} (tred2 + tql2). */
    public static Eigen symmetricEigen(double[] a, int n) {
        double[][] v = new double[n][n];
        for (int i = 0; i < n; i++) {
            System.arraycopy(a, i * n, v[i], 0, n);
        }
        double[] d = new double[n], e = new double[n];
        tred2(v, d, e, n);
        tql2(v, d, e, n);
        Integer[] order = new Integer[n];
        for (int i = 0; i < n; i++) {
            order[i] = i;
        }
        java.util.Arrays.sort(order, (x, y) -> Double.compare(d[y], d[x]));
        double[] values = new double[n], vectors = new double[n * n];
        for (int c = 0; c < n; c++) {
            values[c] = d[order[c]];
            for (int r = 0; r < n; r++) {
                vectors[r * n + c] = v[r][order[c]];
            }
        }
        return new Eigen(values, vectors);
    }

    /** Householder reduction to tridiagonal form (v becomes the accumulated transformation). */
    private static void tred2(double[][] v, double[] d, double[] e, int n) {
        for (int j = 0; j < n; j++) {
            d[j] = v[n - 1][j];
        }
        for (int i = n - 1; i > 0; i--) {
            double scale = 0, h = 0;
            for (int k = 0; k < i; k++) {
                scale += Math.abs(d[k]);
            }
            if (scale == 0) {
                e[i] = d[i - 1];
                for (int j = 0; j < i; j++) {
                    d[j] = v[i - 1][j];
                    v[i][j] = 0;
                    v[j][i] = 0;
                }
            } else {
                for (int k = 0; k < i; k++) {
                    d[k] /= scale;
                    h += d[k] * d[k];
                }
                double f = d[i - 1];
                double g = Math.sqrt(h);
                if (f > 0) {
                    g = -g;
                }
                e[i] = scale * g;
                h -= f * g;
                d[i - 1] = f - g;
                for (int j = 0; j < i; j++) {
                    e[j] = 0;
                }
                for (int j = 0; j < i; j++) {
                    f = d[j];
                    v[j][i] = f;
                    g = e[j] + v[j][j] * f;
                    for (int k = j + 1; k <= i - 1; k++) {
                        g += v[k][j] * d[k];
                        e[k] += v[k][j] * f;
                    }
                    e[j] = g;
                }
                f = 0;
                for (int j = 0; j < i; j++) {
                    e[j] /= h;
                    f += e[j] * d[j];
                }
                double hh = f / (h + h);
                for (int j = 0; j < i; j++) {
                    e[j] -= hh * d[j];
                }
                for (int j = 0; j < i; j++) {
                    f = d[j];
                    g = e[j];
                    for (int k = j; k <= i - 1; k++) {
                        v[k][j] -= (f * e[k] + g * d[k]);
                    }
                    d[j] = v[i - 1][j];
                    v[i][j] = 0;
                }
            }
            d[i] = h;
        }
        for (int i = 0; i < n - 1; i++) {
            v[n - 1][i] = v[i][i];
            v[i][i] = 1;
            double h = d[i + 1];
            if (h != 0) {
                for (int k = 0; k <= i; k++) {
                    d[k] = v[k][i + 1] / h;
                }
                for (int j = 0; j <= i; j++) {
                    double g = 0;
                    for (int k = 0; k <= i; k++) {
                        g += v[k][i + 1] * v[k][j];
                    }
                    for (int k = 0; k <= i; k++) {
                        v[k][j] -= g * d[k];
                    }
                }
            }
            for (int k = 0; k <= i; k++) {
                v[k][i + 1] = 0;
            }
        }
        for (int j = 0; j < n; j++) {
            d[j] = v[n - 1][j];
            v[n - 1][j] = 0;
        }
        v[n - 1][n - 1] = 1;
        e[0] = 0;
    }

    /** Symmetric tridiagonal QL with implicit shifts (eigenvalues in d, vectors accumulated in v). */
    private static void tql2(double[][] v, double[] d, double[] e, int n) {
        for (int i = 1; i < n; i++) {
            e[i - 1] = e[i];
        }
        e[n - 1] = 0;
        double f = 0, tst1 = 0;
        double eps = Math.ulp(1.0);
        for (int l = 0; l < n; l++) {
            tst1 = Math.max(tst1, Math.abs(d[l]) + Math.abs(e[l]));
            int m = l;
            while (m < n) {
                if (Math.abs(e[m]) <= eps * tst1) {
                    break;
                }
                m++;
            }
            if (m == n) {
                m = n - 1;
            }
            if (m > l) {
                int iter = 0;
                do {
                    if (++iter > 300) {
                        throw new ArithmeticException("eigendecomposition did not converge");
                    }
                    double g = d[l];
                    double p = (d[l + 1] - g) / (2 * e[l]);
                    double r = Math.hypot(p, 1);
                    if (p < 0) {
                        r = -r;
                    }
                    d[l] = e[l] / (p + r);
                    d[l + 1] = e[l] * (p + r);
                    double dl1 = d[l + 1];
                    double h = g - d[l];
                    for (int i = l + 2; i < n; i++) {
                        d[i] -= h;
                    }
                    f += h;
                    p = d[m];
                    double c = 1, c2 = c, c3 = c;
                    double el1 = e[l + 1];
                    double s = 0, s2 = 0;
                    for (int i = m - 1; i >= l; i--) {
                        c3 = c2;
                        c2 = c;
                        s2 = s;
                        g = c * e[i];
                        h = c * p;
                        r = Math.hypot(p, e[i]);
                        e[i + 1] = s * r;
                        s = e[i] / r;
                        c = p / r;
                        p = c * d[i] - s * g;
                        d[i + 1] = h + s * (c * g + s * d[i]);
                        for (int k = 0; k < n; k++) {
                            h = v[k][i + 1];
                            v[k][i + 1] = s * v[k][i] + c * h;
                            v[k][i] = c * v[k][i] - s * h;
                        }
                    }
                    p = -s * s2 * c3 * el1 * e[l] / dl1;
                    e[l] = s * p;
                    d[l] = c * p;
                } while (Math.abs(e[l]) > eps * tst1);
            }
            d[l] = d[l] + f;
            e[l] = 0;
        }
    }
}

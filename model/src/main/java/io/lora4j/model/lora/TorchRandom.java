package io.lora4j.model.lora;

/**
 * PyTorch's CPU random generator, so that lora4j's random PEFT operations draw what PEFT draws after
 * {@code torch.manual_seed(seed)}: an MT19937 engine ({@code at::mt19937}, seeded with the low 32 bits
 * of the seed) and ATen's CPU transforms of its 32-bit outputs (aten/src/ATen/core/TransformationHelper.h,
 * DistributionsHelper.h, native/cpu/DistributionTemplates.h):
 * <ul>
 *   <li>a float uniform in [0, 1): {@code (x & 0xFFFFFF) · 2⁻²⁴}, one draw per element ({@code uniform_},
 *       hence {@code nn.Linear}'s and {@code kaiming_uniform_}'s initialisation);</li>
 *   <li>{@code torch.bernoulli(p)}: 1 where that uniform is below p;</li>
 *   <li>{@code torch.randn} of a float tensor of 16 or more elements ({@code normal_fill}): every element
 *       a uniform first, then Box–Muller on blocks of 16 (u1 = 1 − d[j], u2 = d[j+8] give
 *       d[j] = √(−2 ln u1)·cos 2πu2 and d[j+8] = …·sin 2πu2), a partial last block recomputed from 16
 *       fresh uniforms over the last 16 elements; fewer than 16 elements: a double Box–Muller pair per two
 *       values, each double from two draws, the second value cached in the generator.</li>
 * </ul>
 * The uniforms, Bernoulli draws and the stream position agree bit for bit with torch; randn agrees to
 * an ulp or two (torch evaluates log and sin/cos with AVX2 approximations).
 */
public final class TorchRandom {
    private static final int N = 624, M = 397;
    private final int[] mt = new int[N];
    private int index;
    private double cachedNormal = Double.NaN;

    /** The generator as {@code torch.manual_seed(seed)} leaves it. */
    public TorchRandom(long seed) {
        mt[0] = (int) seed;
        for (int i = 1; i < N; i++) {
            mt[i] = 1812433253 * (mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
        }
        index = N;
    }

    /** The engine's next 32-bit output (unsigned, in an int). */
    public int next() {
        if (index >= N) {
            for (int k = 0; k < N; k++) {
                int y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff);
                mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? 0x9908b0df : 0);
            }
            index = 0;
        }
        int y = mt[index++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        y ^= y >>> 18;
        return y;
    }

    /** Skips {@code n} draws: what a float {@code uniform_} (or {@code nn.Linear}'s init) of n elements consumes. */
    public void skip(long n) {
        for (long i = 0; i < n; i++) {
            next();
        }
    }

    /** A float uniform in [0, 1), as {@code uniform_} draws it. */
    public float uniform() {
        return (next() & 0xFFFFFF) * 0x1p-24f;
    }

    /** One {@code torch.bernoulli} draw with probability {@code p} (a float tensor's value): 1 or 0. */
    public boolean bernoulli(float p) {
        return uniform() < p;
    }

    private double uniformDouble() {
        long hi = next() & 0xFFFFFFFFL, lo = next() & 0xFFFFFFFFL;
        return ((hi << 32 | lo) & ((1L << 53) - 1)) * 0x1p-53;
    }

    /** {@code torch.randn(n)} (float32, contiguous) into {@code d[off..off+n)}. */
    public void randn(float[] d, int off, int n) {
        if (n < 16) {
            for (int i = 0; i < n; i++) {
                d[off + i] = (float) normalDouble();
            }
            return;
        }
        for (int i = 0; i < n; i++) {
            d[off + i] = uniform();
        }
        for (int i = 0; i + 16 <= n; i += 16) {
            boxMuller16(d, off + i);
        }
        if (n % 16 != 0) {
            for (int i = 0; i < 16; i++) {
                d[off + n - 16 + i] = uniform();
            }
            boxMuller16(d, off + n - 16);
        }
    }

    /** Skips what {@code torch.randn(n)} (float32) consumes, updating the cached value as it would. */
    public void skipRandn(int n) {
        randn(new float[n], 0, n);
    }

    private static void boxMuller16(float[] d, int o) {
        for (int j = 0; j < 8; j++) {
            float u1 = 1f - d[o + j];
            float u2 = d[o + j + 8];
            float radius = (float) Math.sqrt(-2f * (float) Math.log(u1));
            float theta = 2f * (float) Math.PI * u2;
            d[o + j] = radius * (float) Math.cos(theta);
            d[o + j + 8] = radius * (float) Math.sin(theta);
        }
    }

    private double normalDouble() {
        if (!Double.isNaN(cachedNormal)) {
            double v = cachedNormal;
            cachedNormal = Double.NaN;
            return v;
        }
        double u1 = uniformDouble(), u2 = uniformDouble();
        double r = Math.sqrt(-2 * Math.log1p(-u2));
        double theta = 2 * Math.PI * u1;
        cachedNormal = r * Math.sin(theta);
        return r * Math.cos(theta);
    }
}

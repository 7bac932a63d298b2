package io.lora4j.model;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class SamplerTest {
    static final float[] LOGITS = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f};

    static int[] draw(Sampler.Params p, int n) {
        Sampler s = new Sampler(p, LOGITS.length);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = s.sample(LOGITS.clone(), LOGITS.length, new int[0], 0);
        }
        return out;
    }

    @Test
    void greedyTakesTheArgmax() {
        assertEquals(1, new Sampler(Sampler.Params.greedy(), 6).sample(LOGITS.clone(), 6, new int[0], 0));
    }

    @Test
    void sameSeedSameTokensOtherSeedOtherTokens() {
        Sampler.Params a = new Sampler.Params(1f, 0, 1f, 0f, 1f, 64, 1234);
        Sampler.Params b = new Sampler.Params(1f, 0, 1f, 0f, 1f, 64, 99);
        assertArrayEquals(draw(a, 200), draw(a, 200));
        assertNotEquals(java.util.Arrays.toString(draw(a, 200)), java.util.Arrays.toString(draw(b, 200)));
    }

    @Test
    void frequenciesFollowTheSoftmax() {
        int n = 60000;
        int[] counts = new int[LOGITS.length];
        for (int t : draw(new Sampler.Params(1f, 0, 1f, 0f, 1f, 64, 7), n)) {
            counts[t]++;
        }
        double z = 0;
        for (float l : LOGITS) {
            z += Math.exp(l);
        }
        for (int i = 0; i < LOGITS.length; i++) {
            double p = Math.exp(LOGITS[i]) / z;
            double sd = Math.sqrt(n * p * (1 - p));
            assertEquals(n * p, counts[i], 5 * sd + 1, "token " + i);
        }
    }

    @Test
    void topKTopPAndMinPRestrictTheCandidates() {
        for (int t : draw(new Sampler.Params(1f, 2, 1f, 0f, 1f, 64, 3), 2000)) {
            assertTrue(t == 1 || t == 5, "top-k 2 drew " + t);
        }
        for (int t : draw(new Sampler.Params(1f, 0, 0.3f, 0f, 1f, 64, 3), 500)) {
            assertEquals(1, t, "top-p 0.3 keeps only the best token");
        }
        // p(5)/p(1) = e^-0.1 ≈ 0.905, p(2)/p(1) = e^-0.5 ≈ 0.61: min-p 0.8 keeps tokens 1 and 5
        for (int t : draw(new Sampler.Params(1f, 0, 1f, 0.8f, 1f, 64, 3), 2000)) {
            assertTrue(t == 1 || t == 5, "min-p 0.8 drew " + t);
        }
    }

    @Test
    void repetitionPenaltyPushesRecentTokensDown() {
        Sampler s = new Sampler(new Sampler.Params(0f, 0, 1f, 0f, 2f, 64, 0), 6);
        assertEquals(5, s.sample(LOGITS.clone(), 6, new int[]{1, 4}, 2));
        // outside the look-back window the token is not penalised
        Sampler s2 = new Sampler(new Sampler.Params(0f, 0, 1f, 0f, 2f, 1, 0), 6);
        assertEquals(1, s2.sample(LOGITS.clone(), 6, new int[]{1, 4}, 2));
    }

    @Test
    void invalidParametersAreRejected() {
        assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(-1f, 0, 1f, 0f, 1f, 64, 0));
        assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(1f, 0, 0f, 0f, 1f, 64, 0));
        assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(1f, 0, 1f, 1f, 1f, 64, 0));
        assertThrows(IllegalArgumentException.class, () -> new Sampler.Params(1f, -2, 1f, 0f, 1f, 64, 0));
    }

    /** The radix sort of the whole vocabulary gives exactly Arrays.sort's order: ties (by index), signs, zeros, infinities. */
    @Test
    void radixSortIsArraysSort() {
        java.util.SplittableRandom r = new java.util.SplittableRandom(3);
        float[] special = {0f, -0f, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY, Float.MIN_VALUE, -Float.MAX_VALUE, 1e30f};
        for (int n : new int[]{1, 2, 7, 1000, 32000}) {
            long[] keys = new long[n];
            for (int i = 0; i < n; i++) {
                float logit = switch (r.nextInt(4)) {
                    case 0 -> special[r.nextInt(special.length)];
                    case 1 -> r.nextInt(5) - 2f; // many ties
                    default -> (float) (r.nextGaussian() * 8);
                };
                int b = Float.floatToIntBits(logit);
                b ^= (b >> 31) & 0x7fffffff;
                keys[i] = ((long) ~b << 32) | i;
            }
            long[] expected = keys.clone();
            java.util.Arrays.sort(expected);
            Sampler.radixSort(keys, new long[n], n);
            assertArrayEquals(expected, keys, "n = " + n);
        }
    }
}

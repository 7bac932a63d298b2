package io.lora4j.model.lora;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * PEFT's merge_utils on two hand-worked task tensors t1 = [1, −2, 3, −4], t2 = [−1, 2, 2, 0.5] with weights
 * [0.5, 2] (the expected values are worked out in the comments), and DARE's random masks by their draws and
 * statistics.
 */
class TaskMergingTest {
    static final float[] T1 = {1, -2, 3, -4}, T2 = {-1, 2, 2, 0.5f};
    static final float[] W = {0.5f, 2};

    @Test
    void taskArithmeticIsTheWeightedSum() {
        // [0.5 − 2, −1 + 4, 1.5 + 4, −2 + 1]
        assertArrayEquals(new float[]{-1.5f, 3, 5.5f, -1}, TaskMerging.taskArithmetic(List.of(T1, T2), W));
    }

    @Test
    void magnitudePruneKeepsTheLargestHalfOfEachThenSums() {
        // density 0.5 keeps 2 of 4: t1 → [0, 0, 3, −4], t2 → [0, 2, 2, 0]; then 0.5·t1 + 2·t2
        assertArrayEquals(new float[]{0, 0, 3, -4}, TaskMerging.magnitude(T1, 0.5));
        assertArrayEquals(new float[]{0, 2, 2, 0}, TaskMerging.magnitude(T2, 0.5));
        assertArrayEquals(new float[]{0, 4, 5.5f, -2}, TaskMerging.magnitudePrune(List.of(T1, T2), W, 0.5));
        assertArrayEquals(new float[]{0, 0, 0, 0}, TaskMerging.magnitude(T1, 0.2), "⌊0.2·4⌋ = 0 kept");
        assertArrayEquals(T1, TaskMerging.magnitudePrune(List.of(T1), new float[]{1}, 1.0), "density 1 prunes nothing");
    }

    @Test
    void tiesElectsTheSignFromThePrunedTensorsAndAveragesTheAgreeingWeightedValues() {
        // pruned [0,0,3,−4], [0,2,2,0]; their sum [0,2,5,−4] elects [+,+,+,−] (0 counts as +);
        // agreeing weighted values: idx1 4 (one), idx2 1.5 and 4 (two: 2.75), idx3 −2 (one); idx0 none → 0
        assertArrayEquals(new float[]{0, 4, 2.75f, -2}, TaskMerging.ties(List.of(T1, T2), W, 0.5, "total"));
        // unpruned, "total": sums [0, 0, 5, −3.5] → [+,+,+,−]: idx0 0.5, idx1 4, idx2 2.75, idx3 t1's −2
        assertArrayEquals(new float[]{0.5f, 4, 2.75f, -2}, TaskMerging.ties(List.of(T1, T2), W, 1.0, "total"));
        // "frequency": sign counts [0, 0, 2, 0] → all +: idx3 takes t2's 2·0.5 = 1
        assertArrayEquals(new float[]{0.5f, 4, 2.75f, 1}, TaskMerging.ties(List.of(T1, T2), W, 1.0, "frequency"));
        assertThrows(IllegalArgumentException.class, () -> TaskMerging.ties(List.of(T1, T2), W, 0.5, "majority"));
        assertThrows(IllegalArgumentException.class, () -> TaskMerging.magnitudePrune(List.of(T1, T2), W, -0.1));
    }

    @Test
    void dareKeepsWhatTorchBernoulliKeepsAndRescales() {
        // the masks: torch.bernoulli(full(4, 0.5)) for t1, then for t2, from one generator
        TorchRandom masks = new TorchRandom(3);
        boolean[] m1 = new boolean[4], m2 = new boolean[4];
        for (int i = 0; i < 4; i++) {
            m1[i] = masks.bernoulli(0.5f);
        }
        for (int i = 0; i < 4; i++) {
            m2[i] = masks.bernoulli(0.5f);
        }
        float[] want = new float[4];
        for (int i = 0; i < 4; i++) {
            want[i] = (m1[i] ? T1[i] / 0.5f : 0) * W[0] + (m2[i] ? T2[i] / 0.5f : 0) * W[1];
        }
        assertArrayEquals(want, TaskMerging.dareLinear(List.of(T1, T2), W, 0.5, new TorchRandom(3)));
        // density 1 draws nothing (PEFT's prune returns before torch.bernoulli)
        TorchRandom r = new TorchRandom(3);
        assertArrayEquals(TaskMerging.taskArithmetic(List.of(T1, T2), W), TaskMerging.dareLinear(List.of(T1, T2), W, 1.0, r));
        assertEquals(new TorchRandom(3).next(), r.next());
    }

    @Test
    void dareKeepsADensityFractionAndPreservesTheMean() {
        int n = 200_000;
        float[] ones = new float[n];
        java.util.Arrays.fill(ones, 1f);
        float[] out = TaskMerging.random(ones, 0.3, new TorchRandom(11));
        int kept = 0;
        double sum = 0;
        for (float v : out) {
            kept += v != 0 ? 1 : 0;
            sum += v;
            assertTrue(v == 0 || v == 1f / 0.3f);
        }
        double sd = Math.sqrt(n * 0.3 * 0.7);
        assertEquals(0.3 * n, kept, 5 * sd, "kept elements");
        assertEquals(1.0, sum / n, 5 * sd / (0.3 * n), "rescaled mean");
    }
}

package io.lora4j.kernels;

import java.util.Arrays;

/**
 * bitsandbytes' 8-bit blockwise quantization with its signed "dynamic" map
 * ({@code create_dynamic_map}, {@code quantize_blockwise}, {@code dequantize_blockwise}), which
 * QLoRA's double quantization applies to the 4-bit absmax constants: the mean is subtracted, the
 * centred constants are quantized in blocks of 256 (one fp32 absmax each), and decoding is
 * code[q]·absmax2[b / 256] + mean. Glossary: n values, block b of {@code blocksize}, q an index 0..255.
 */
public final class Blockwise8 {
    /** Block size of the double quantization of the absmax constants (bitsandbytes: 256). */
    public static final int DQ_BLOCK = 256;

    /** The 256 sorted values of the signed dynamic map. */
    public static final float[] DYNAMIC = dynamicMap();

    private Blockwise8() {
    }

    /**
     * {@code create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8)} in float32: for
     * exponent i = 0..6, the midpoints of {@code linspace(0.1, 1, 2^i + 1)} times 10^(i−6), with
     * both signs, plus 0 and 1, sorted. {@code linspace} is torch's CPU kernel (float32 step, from
     * the start below the halfway index and from the end above it).
     */
    static float[] dynamicMap() {
        float[] data = new float[256];
        double[] scale = {1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1};
        int k = 0;
        for (int i = 0; i < 7; i++) {
            int steps = (1 << i) + 1;
            float start = (float) 0.1, end = 1f;
            float step = (end - start) / (steps - 1);
            float[] bound = new float[steps];
            for (int j = 0; j < steps; j++) {
                bound[j] = j < steps / 2 ? start + step * j : end - step * (steps - j - 1);
            }
            float s = (float) scale[i];
            for (int j = 0; j + 1 < steps; j++) {
                float v = s * ((bound[j] + bound[j + 1]) / 2f);
                data[k++] = v;
                data[k++] = -v;
            }
        }
        data[k++] = 0f;
        data[k] = 1f;
        Arrays.sort(data);
        return data;
    }

    /**
     * bitsandbytes' {@code dQuantize<0>} (CUDA): a binary search over the sorted code from index
     * 127, then the nearer of the two neighbours by their midpoint. A value exactly on a midpoint
     * keeps the last visited pivot.
     */
    public static int index(float[] code, float x) {
        int pivot = 127;
        int upperPivot = 255;
        int lowerPivot = 0;
        float lower = -1f;
        float upper = 1f;
        float val = code[pivot];
        for (int i = 64; i > 0; i >>= 1) {
            if (x > val) {
                lowerPivot = pivot;
                lower = val;
                pivot += i;
            } else {
                upperPivot = pivot;
                upper = val;
                pivot -= i;
            }
            val = code[pivot];
        }
        if (upperPivot == 255) {
            upper = code[upperPivot];
        }
        if (lowerPivot == 0) {
            lower = code[lowerPivot];
        }
        if (x > val) {
            return x > (upper + val) * 0.5f ? upperPivot : pivot;
        }
        return x < (lower + val) * 0.5f ? lowerPivot : pivot;
    }

    /** max |x[i]| over [start, end): a block's absmax (0 for an all-zero block). */
    static float absmax(float[] x, int start, int end) {
        float amax = 0f;
        for (int i = start; i < end; i++) {
            amax = Math.max(amax, Math.abs(x[i]));
        }
        return amax;
    }

    /**
     * Naive blockwise quantizer, blocks [fromBlock, toBlock): absmax[b] = max |x| of the block,
     * q = index(code, x·(1/absmax)) (a zero block: 1/max(absmax, 1e-38), as torch-native bitsandbytes).
     *
     * @param q      (n) out, indices 0..255 stored as signed bytes
     * @param absmax (ceil(n / blocksize)) out
     */
    public static void quantize(byte[] q, float[] absmax, float[] x, float[] code, int n, int blocksize, int fromBlock, int toBlock) {
        for (@Parallel int b = fromBlock; b < toBlock; b++) {
            int start = b * blocksize;
            int end = Math.min(start + blocksize, n);
            float amax = absmax(x, start, end);
            absmax[b] = amax;
            float inv = 1f / Math.max(amax, 1e-38f);
            for (int i = start; i < end; i++) {
                q[i] = (byte) index(code, x[i] * inv);
            }
        }
    }

    /**
     * Naive dequantization (TornadoVM subset: the index is made unsigned by adding 256, not by
     * {@code & 0xff}): out[i] = code[q[i]]·absmax[i / blocksize] + offset.
     */
    public static void dequantize(float[] out, byte[] q, float[] absmax, float[] code, float offset, int n, int blocksize) {
        for (@Parallel int i = 0; i < n; i++) {
            int k = q[i];
            if (k < 0) {
                k += 256;
            }
            out[i] = code[k] * absmax[i / blocksize] + offset;
        }
    }
}

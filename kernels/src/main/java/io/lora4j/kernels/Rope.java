package io.lora4j.kernels;

/**
 * Rotary position embedding, in place. Token t sits at position {@code pos0 + t} (the naive oracles take
 * an array of positions); pair i of every
 * head turns by angle {@code pos · freqs[i]}. Pairs are adjacent {@code (2i, 2i+1)} (GGUF and
 * llama2.c weights, llama.cpp's NORM rope) or halves {@code (i, i + HS/2)} (HF weights, NEOX rope).
 * Glossary: T tokens, NH heads in x, HS head size.
 */
public final class Rope {
    private Rope() {
    }

    /**
     * Base frequencies {@code theta^(-2i/HS)} for i in [0, HS/2), as llama2.c computes them in float.
     * Llama-3 scaling is applied by the caller ({@link #applyLlama3Scaling}).
     */
    public static float[] frequencies(int HS, float theta) {
        float[] f = new float[HS / 2];
        for (int i = 0; i < HS / 2; i++) {
            f[i] = (float) (1.0 / Math.pow(theta, (2 * i) / (float) HS));
        }
        return f;
    }

    /** Llama-3 ({@code rope_type: llama3}) frequency scaling, in place, as in Meta's reference code. */
    public static void applyLlama3Scaling(float[] freqs, float factor, float lowFreqFactor, float highFreqFactor,
                                          int originalContext) {
        double lowFreqWavelen = originalContext / lowFreqFactor;
        double highFreqWavelen = originalContext / highFreqFactor;
        for (int i = 0; i < freqs.length; i++) {
            double f = freqs[i];
            double wavelen = 2 * Math.PI / f;
            if (wavelen < highFreqWavelen) {
                continue;
            }
            if (wavelen > lowFreqWavelen) {
                freqs[i] = (float) (f / factor);
            } else {
                double smooth = (originalContext / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
                freqs[i] = (float) ((1 - smooth) * f / factor + smooth * f);
            }
        }
    }

    /**
     * Naive oracle and device kernel (TornadoVM kernel subset): one work-item per (token, head, pair).
     * Token t sits at position {@code pos[t]} (an array, so a device plan can change it between
     * executions); {@code halves} is 1 for rotate-half pairs, 0 for adjacent ones (an int: TornadoVM's
     * OpenCL code generator does not compile boolean kernel parameters).
     *
     * @param x     (T, NH·HS), rotated in place
     * @param freqs (HS/2)
     * @param pos   (T) positions
     */
    public static void forwardNaive(float[] x, float[] freqs, int[] pos, int T, int NH, int HS, int halves) {
        int half = HS / 2;
        for (@Parallel int thi = 0; thi < T * NH * half; thi++) {
            int t = thi / (NH * half);
            int h = (thi / half) % NH;
            int i = thi % half;
            float angle = pos[t] * freqs[i];
            float c = (float) Math.cos(angle);
            float s = (float) Math.sin(angle);
            int j0 = t * NH * HS + h * HS + (halves == 1 ? i : 2 * i);
            int j1 = halves == 1 ? j0 + half : j0 + 1;
            float v0 = x[j0];
            float v1 = x[j1];
            x[j0] = v0 * c - v1 * s;
            x[j1] = v0 * s + v1 * c;
        }
    }

    /** Fast twin: one cos/sin per (token, pair) shared by all heads, parallel over tokens. */
    public static void forward(float[] x, float[] freqs, int T, int NH, int HS, int pos0, boolean halves) {
        Threads.parallelFor(T, (long) NH * HS * 2, (from, to) -> {
            for (int t = from; t < to; t++) {
                row(x, freqs, t, pos0 + t, NH, HS, halves);
            }
        });
    }

    /** Rotates row t (all heads) to position {@code position}: one cos/sin per pair, shared by the heads. */
    private static void row(float[] x, float[] freqs, int t, int position, int NH, int HS, boolean halves) {
        int half = HS / 2;
        for (int i = 0; i < half; i++) {
            float angle = position * freqs[i];
            float c = (float) Math.cos(angle);
            float s = (float) Math.sin(angle);
            int j0 = t * NH * HS + (halves ? i : 2 * i);
            int d = halves ? half : 1;
            for (int h = 0; h < NH; h++, j0 += HS) {
                float v0 = x[j0];
                float v1 = x[j0 + d];
                x[j0] = v0 * c - v1 * s;
                x[j0 + d] = v0 * s + v1 * c;
            }
        }
    }

    /**
     * Fast twin over rows at their own positions {@code pos[t]} (a batch of rows from different
     * sequences); each row is rotated exactly as {@link #forward} rotates a row at that position.
     */
    public static void forwardRows(float[] x, float[] freqs, int[] pos, int R, int NH, int HS, boolean halves) {
        Threads.parallelFor(R, (long) NH * HS * 2, (from, to) -> {
            for (int t = from; t < to; t++) {
                row(x, freqs, t, pos[t], NH, HS, halves);
            }
        });
    }

    /**
     * Backward, in place: the gradient of a rotation is the opposite rotation, so {@code dx} (the
     * upstream gradient on entry) is turned by {@code −pos[t]·freqs[i]}. Naive oracle and device
     * kernel, one work-item per (token, head, pair).
     */
    public static void backwardNaive(float[] dx, float[] freqs, int[] pos, int T, int NH, int HS, int halves) {
        int half = HS / 2;
        for (@Parallel int thi = 0; thi < T * NH * half; thi++) {
            int t = thi / (NH * half);
            int h = (thi / half) % NH;
            int i = thi % half;
            float angle = pos[t] * freqs[i];
            float c = (float) Math.cos(angle);
            float s = (float) Math.sin(angle);
            int j0 = t * NH * HS + h * HS + (halves == 1 ? i : 2 * i);
            int j1 = halves == 1 ? j0 + half : j0 + 1;
            float g0 = dx[j0];
            float g1 = dx[j1];
            dx[j0] = g0 * c + g1 * s;
            dx[j1] = -g0 * s + g1 * c;
        }
    }

    /** Fast twin of {@link #backwardNaive}: one cos/sin per (token, pair), parallel over tokens. */
    public static void backward(float[] dx, float[] freqs, int T, int NH, int HS, int pos0, boolean halves) {
        int half = HS / 2;
        Threads.parallelFor(T, (long) NH * HS * 2, (from, to) -> {
            for (int t = from; t < to; t++) {
                for (int i = 0; i < half; i++) {
                    float angle = (pos0 + t) * freqs[i];
                    float c = (float) Math.cos(angle);
                    float s = (float) Math.sin(angle);
                    int j0 = t * NH * HS + (halves ? i : 2 * i);
                    int d = halves ? half : 1;
                    for (int h = 0; h < NH; h++, j0 += HS) {
                        float g0 = dx[j0];
                        float g1 = dx[j0 + d];
                        dx[j0] = g0 * c + g1 * s;
                        dx[j0 + d] = -g0 * s + g1 * c;
                    }
                }
            }
        });
    }
}

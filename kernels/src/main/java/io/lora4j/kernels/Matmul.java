package io.lora4j.kernels;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
// TEMPORARY STUB (replaced by helper's version on merge)
public final class Matmul {
    public static void forward(float[] out, float[] x, Weight w, int T) {
        float[] row = new float[w.cols()];
        for (int r = 0; r < w.rows(); r++) {
            Dequant.row(w, r, row, 0);
            for (int t = 0; t < T; t++) {
                float s = 0; for (int c = 0; c < w.cols(); c++) s += row[c] * x[t * w.cols() + c];
                out[t * w.rows() + r] = s;
            }
        }
    }

    public static void backward(float[] dx, float[] dy, Weight w, int T, boolean accumulate) {
        float[] row = new float[w.cols()];
        if (!accumulate) java.util.Arrays.fill(dx, 0, T * w.cols(), 0f);
        for (int r = 0; r < w.rows(); r++) {
            Dequant.row(w, r, row, 0);
            for (int t = 0; t < T; t++) {
                float d = dy[t * w.rows() + r];
                for (int c = 0; c < w.cols(); c++) dx[t * w.cols() + c] += d * row[c];
            }
        }
    }
    public static void backwardWeight(float[] dw, float[] dy, float[] x, int T, int rows, int cols) {
        for (int r = 0; r < rows; r++) for (int t = 0; t < T; t++) {
            float d = dy[t * rows + r];
            for (int c = 0; c < cols; c++) dw[r * cols + c] += d * x[t * cols + c];
        }
    }
}

package io.lora4j.kernels;
import java.lang.foreign.ValueLayout;
// TEMPORARY STUB (replaced by helper's version on merge)
public final class Dequant {
    public static void row(Weight w, int row, float[] dst, int dstOff) {
        long base = row * w.rowBytes();
        for (int c = 0; c < w.cols(); c++) {
            dst[dstOff + c] = switch (w.type()) {
                case F32 -> w.data().get(ValueLayout.JAVA_FLOAT_UNALIGNED, base + 4L * c);
                case F16 -> Float.float16ToFloat(w.data().get(ValueLayout.JAVA_SHORT_UNALIGNED, base + 2L * c));
                default -> throw new IllegalArgumentException("stub");
            };
        }
    }
}

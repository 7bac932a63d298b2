package io.lora4j.model.format;

import io.lora4j.kernels.GgmlType;
import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.*;

class QuantizerTest {

    @Test
    void q8_0Reference() {
        float[] x = new float[32];
        for (int j = 0; j < 32; j++) {
            x[j] = (j - 16) * 0.1f;
        }
        MemorySegment b = MemorySegment.ofArray(new byte[34]);
        Quantizer.toQ8_0(b, 0, x, 0, 32);
        float d = 1.6f / 127f;
        assertEquals(Float.floatToFloat16(d), b.get(Mapped.I16, 0));
        assertEquals(-127, b.get(Mapped.U8, 2));
        assertEquals(0, b.get(Mapped.U8, 2 + 16));
        assertEquals(Quantizer.roundf(x[31] * (1f / d)), b.get(Mapped.U8, 2 + 31));
        assertEquals(119, b.get(Mapped.U8, 2 + 31));
    }

    @Test
    void q8_0RoundsHalfAwayFromZeroLikeRoundf() {
        float[] x = new float[32];
        x[0] = 127f; // d = 1, id = 1
        x[1] = 2.5f;
        x[2] = -2.5f;
        x[3] = -0.5f;
        MemorySegment b = MemorySegment.ofArray(new byte[34]);
        Quantizer.toQ8_0(b, 0, x, 0, 32);
        assertEquals(127, b.get(Mapped.U8, 2));
        assertEquals(3, b.get(Mapped.U8, 3));
        assertEquals(-3, b.get(Mapped.U8, 4)); // Math.round would give -2
        assertEquals(-1, b.get(Mapped.U8, 5));
        // an all-zero block has d = 0 and q = 0
        Quantizer.toQ8_0(b, 0, new float[32], 0, 32);
        assertEquals(0, b.get(Mapped.I16, 0));
    }

    @Test
    void q4_0Reference() {
        float[] x = new float[32];
        x[5] = -4f;    // largest |x| keeps its sign: d = -4 / -8 = 0.5, id = 2
        x[20] = 2f;    // 2*2 + 8.5 = 12.5 -> 12, high nibble of byte 4
        x[16] = 3.9f;  // 7.8 + 8.5 = 16.3 -> min(15, 16) = 15, high nibble of byte 0
        x[1] = -1f;    // -2 + 8.5 = 6.5 -> 6
        MemorySegment b = MemorySegment.ofArray(new byte[18]);
        Quantizer.toQ4_0(b, 0, x, 0, 32);
        assertEquals(Float.floatToFloat16(0.5f), b.get(Mapped.I16, 0));
        assertEquals(8 | (15 << 4), b.get(Mapped.U8, 2) & 0xff);       // x[0]=0 -> 8, x[16] -> 15
        assertEquals(6 | (8 << 4), b.get(Mapped.U8, 3) & 0xff);
        assertEquals(8 | (12 << 4), b.get(Mapped.U8, 2 + 4) & 0xff);
        assertEquals(0 | (8 << 4), b.get(Mapped.U8, 2 + 5) & 0xff);    // x[5] = -4 -> 0.5 -> 0
        float[] y = new float[32];
        Quantizer.dequantizeRow(GgmlType.Q4_0, y, 0, b, 0, 32);
        assertEquals(-4f, y[5]);
        assertEquals(2f, y[20]);
        assertEquals(3.5f, y[16]);
        assertEquals(-1f, y[1]);
        assertEquals(0f, y[0]);
    }

    @Test
    void bf16RoundsToNearestEven() {
        assertEquals((short) 0x3f80, Quantizer.bf16(1.0f));
        assertEquals((short) 0x3f80, Quantizer.bf16(Float.intBitsToFloat(0x3f808000))); // tie, even stays
        assertEquals((short) 0x3f82, Quantizer.bf16(Float.intBitsToFloat(0x3f818000))); // tie, odd rounds up
        assertEquals((short) 0x3f81, Quantizer.bf16(Float.intBitsToFloat(0x3f808001)));
        assertEquals((short) 0x7f80, Quantizer.bf16(Float.POSITIVE_INFINITY));
        assertTrue(Float.isNaN(Float.intBitsToFloat(Quantizer.bf16(Float.NaN) << 16)));
        assertTrue(Float.isNaN(Float.intBitsToFloat(Quantizer.bf16(Float.intBitsToFloat(0x7f800001)) << 16)));
    }

    @Test
    void roundTripErrorBounds() {
        SplittableRandom r = new SplittableRandom(1);
        int n = 256;
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * 0.02);
        }
        try (Arena a = Arena.ofConfined()) {
            for (GgmlType t : new GgmlType[]{GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0}) {
                MemorySegment m = a.allocate(t.byteSize(n));
                Quantizer.quantizeRow(t, m, 0, x, 0, n);
                float[] y = new float[n];
                Quantizer.dequantizeRow(t, y, 0, m, 0, n);
                for (int b = 0; b < n / 32; b++) {
                    float amax = 0;
                    for (int j = 0; j < 32; j++) {
                        amax = Math.max(amax, Math.abs(x[b * 32 + j]));
                    }
                    float tol = switch (t) {
                        case F32 -> 0f;
                        case F16 -> amax * 1e-3f;
                        case BF16 -> amax * 4e-3f;
                        case Q8_0 -> amax / 127f * 0.51f;
                        default -> amax / 8f * 1.01f;
                    };
                    for (int j = 0; j < 32; j++) {
                        int i = b * 32 + j;
                        assertEquals(x[i], y[i], tol, t + " element " + i);
                    }
                }
            }
        }
    }
}

package io.lora4j.kernels;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.lang.foreign.MemorySegment;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

/**
 * Element decoding checked against values computed here from the block layout (scales and quants
 * chosen by the test, expected = d·q − m written out independently), and the fast row decoder
 * against the oracle for every type.
 */
class DequantTest {

    static void putHalf(byte[] b, int o, float v) {
        short h = Float.floatToFloat16(v);
        b[o] = (byte) h;
        b[o + 1] = (byte) (h >> 8);
    }

    static float[] decode(GgmlType t, byte[] b, int n) {
        float[] out = new float[n];
        Dequant.naive(t, b, 0, out, 0, n);
        float[] fast = new float[n];
        Dequant.row(new Weight("t", t, MemorySegment.ofArray(b), 1, n), 0, fast, 0);
        for (int i = 0; i < n; i++) {
            assertEquals(out[i], fast[i], 0f, t + " fast decoder element " + i);
        }
        return out;
    }

    @Test
    void halfFloatsIncludingSubnormalsZerosAndExtremes() {
        for (int h = 0; h < 65536; h++) {
            float want = Float.float16ToFloat((short) h);
            float got = Dequant.halfToFloat(h);
            if (Float.isNaN(want)) {
                assertEquals(true, Float.isNaN(got), "half " + h);
            } else {
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(got), "half 0x" + Integer.toHexString(h));
            }
            if ((h & 0x7c00) != 0x7c00) {
                assertEquals(Float.floatToRawIntBits(want), Float.floatToRawIntBits(Dequant.finiteHalfToFloat((short) h)),
                        "device decoder, half 0x" + Integer.toHexString(h));
            }
        }
        // the vector decoder agrees on every finite half
        byte[] all = new byte[2 * 65536];
        for (int h = 0; h < 65536; h++) {
            all[2 * h] = (byte) h;
            all[2 * h + 1] = (byte) (h >> 8);
        }
        float[] fast = new float[65536];
        Dequant.row(new Weight("all", GgmlType.F16, MemorySegment.ofArray(all), 1, 65536), 0, fast, 0);
        for (int h = 0; h < 65536; h++) {
            if (((h >> 10) & 31) != 31) {
                assertEquals(Float.floatToRawIntBits(Float.float16ToFloat((short) h)), Float.floatToRawIntBits(fast[h]),
                        "vector half 0x" + Integer.toHexString(h));
            }
        }
    }

    @Test
    void bfloat16() {
        for (int b : new int[]{0x0000, 0x8000, 0x3f80, 0xbf80, 0x4049, 0x0001, 0x7f7f, 0x0080}) {
            byte[] bytes = {(byte) b, (byte) (b >> 8)};
            assertEquals(Float.intBitsToFloat(b << 16), decode(GgmlType.BF16, bytes, 1)[0], 0f, "bf16 " + b);
        }
    }

    @Test
    void q8_0() {
        byte[] b = new byte[34 * 2];
        putHalf(b, 0, 0.5f);
        putHalf(b, 34, -0.25f);
        for (int j = 0; j < 32; j++) {
            b[2 + j] = (byte) (j - 16);
            b[36 + j] = (byte) (127 - 8 * j);
        }
        float[] y = decode(GgmlType.Q8_0, b, 64);
        for (int j = 0; j < 32; j++) {
            assertEquals(0.5f * (j - 16), y[j]);
            assertEquals(-0.25f * (byte) (127 - 8 * j), y[32 + j]);
        }
    }

    @Test
    void q4_0AndQ4_1() {
        byte[] b = new byte[18];
        putHalf(b, 0, 2f);
        for (int j = 0; j < 16; j++) {
            b[2 + j] = (byte) (j | (15 - j) << 4); // low nibble j, high nibble 15-j
        }
        float[] y = decode(GgmlType.Q4_0, b, 32);
        for (int j = 0; j < 16; j++) {
            assertEquals(2f * (j - 8), y[j]);
            assertEquals(2f * (15 - j - 8), y[16 + j]);
        }
        byte[] c = new byte[20];
        putHalf(c, 0, 0.5f);
        putHalf(c, 2, -3f);
        for (int j = 0; j < 16; j++) {
            c[4 + j] = (byte) (j | (15 - j) << 4);
        }
        y = decode(GgmlType.Q4_1, c, 32);
        for (int j = 0; j < 16; j++) {
            assertEquals(0.5f * j - 3f, y[j]);
            assertEquals(0.5f * (15 - j) - 3f, y[16 + j]);
        }
    }

    @Test
    void q5_0AndQ5_1() {
        byte[] b = new byte[22];
        putHalf(b, 0, 1f);
        int qh = 0b1010_0000_1111_0000_0000_1111_0101_0011;
        for (int i = 0; i < 4; i++) {
            b[2 + i] = (byte) (qh >> (8 * i));
        }
        for (int j = 0; j < 16; j++) {
            b[6 + j] = (byte) (j | (15 - j) << 4);
        }
        float[] y = decode(GgmlType.Q5_0, b, 32);
        for (int j = 0; j < 16; j++) {
            int lo = j | ((qh >> j) & 1) << 4;
            int hi = (15 - j) | ((qh >> (j + 16)) & 1) << 4;
            assertEquals(lo - 16, y[j], "element " + j);
            assertEquals(hi - 16, y[16 + j], "element " + (16 + j));
        }
        byte[] c = new byte[24];
        putHalf(c, 0, 0.5f);
        putHalf(c, 2, 1f);
        System.arraycopy(b, 2, c, 4, 20);
        y = decode(GgmlType.Q5_1, c, 32);
        for (int j = 0; j < 16; j++) {
            int lo = j | ((qh >> j) & 1) << 4;
            assertEquals(0.5f * lo + 1f, y[j]);
        }
    }

    /** The 6-bit scales and mins of the 8 sub-blocks, packed as ggml's get_scale_min_k4 reads them. */
    static byte[] packScales(int[] sc, int[] mn) {
        byte[] q = new byte[12];
        for (int j = 0; j < 4; j++) {
            q[j] = (byte) ((sc[j] & 63) | ((sc[j + 4] >> 4) << 6));
            q[j + 4] = (byte) ((mn[j] & 63) | ((mn[j + 4] >> 4) << 6));
            q[j + 8] = (byte) ((sc[j + 4] & 15) | ((mn[j + 4] & 15) << 4));
        }
        return q;
    }

    @Test
    void q4_kAndQ5_k() {
        int[] sc = {1, 7, 63, 32, 17, 50, 9, 44};
        int[] mn = {0, 5, 2, 63, 40, 3, 33, 21};
        byte[] scales = packScales(sc, mn);
        SplittableRandom r = new SplittableRandom(1);
        int[] q = new int[256];
        int[] high = new int[256];
        for (int i = 0; i < 256; i++) {
            q[i] = r.nextInt(16);
            high[i] = r.nextInt(2);
        }
        // Q4_K: qs[32·j + l] holds element 64j + l (low nibble) and 64j + 32 + l (high nibble)
        byte[] b4 = new byte[144];
        putHalf(b4, 0, 0.25f);
        putHalf(b4, 2, 0.125f);
        System.arraycopy(scales, 0, b4, 4, 12);
        byte[] b5 = new byte[176];
        putHalf(b5, 0, 0.25f);
        putHalf(b5, 2, 0.125f);
        System.arraycopy(scales, 0, b5, 4, 12);
        for (int j = 0; j < 4; j++) {
            for (int l = 0; l < 32; l++) {
                int lo = 64 * j + l, hi = 64 * j + 32 + l;
                b4[16 + 32 * j + l] = (byte) (q[lo] | q[hi] << 4);
                b5[48 + 32 * j + l] = (byte) (q[lo] | q[hi] << 4);
                b5[16 + l] |= (byte) (high[lo] << (2 * j) | high[hi] << (2 * j + 1));
            }
        }
        float[] y4 = decode(GgmlType.Q4_K, b4, 256);
        float[] y5 = decode(GgmlType.Q5_K, b5, 256);
        for (int i = 0; i < 256; i++) {
            int sub = i / 32;
            assertEquals(0.25f * sc[sub] * q[i] - 0.125f * mn[sub], y4[i], 1e-6f, "Q4_K element " + i);
            assertEquals(0.25f * sc[sub] * (q[i] + 16 * high[i]) - 0.125f * mn[sub], y5[i], 1e-6f, "Q5_K element " + i);
        }
    }

    @Test
    void q6_k() {
        SplittableRandom r = new SplittableRandom(2);
        int[] q = new int[256];
        byte[] scales = new byte[16];
        for (int i = 0; i < 256; i++) {
            q[i] = r.nextInt(64);
        }
        for (int i = 0; i < 16; i++) {
            scales[i] = (byte) (r.nextInt(256) - 128);
        }
        byte[] b = new byte[210];
        // element e = 128n + 32k + l: low 4 bits in ql[64n + l + 32·(k&1)] (k<2 low nibble, else high),
        // high 2 bits in qh[32n + l] at bit 2k
        for (int n = 0; n < 2; n++) {
            for (int k = 0; k < 4; k++) {
                for (int l = 0; l < 32; l++) {
                    int e = 128 * n + 32 * k + l;
                    int qlIdx = 64 * n + l + 32 * (k & 1);
                    b[qlIdx] |= (byte) (k < 2 ? (q[e] & 15) : (q[e] & 15) << 4);
                    b[128 + 32 * n + l] |= (byte) ((q[e] >> 4) << (2 * k));
                }
            }
        }
        System.arraycopy(scales, 0, b, 192, 16);
        putHalf(b, 208, 0.5f);
        float[] y = decode(GgmlType.Q6_K, b, 256);
        for (int e = 0; e < 256; e++) {
            int scale = scales[e / 16];
            assertEquals(0.5f * scale * (q[e] - 32), y[e], 1e-5f, "Q6_K element " + e);
        }
    }

    @ParameterizedTest
    @EnumSource(value = GgmlType.class, names = {"I8", "Q8_1", "Q2_K"})
    void unsupportedTypesAreNamed(GgmlType t) {
        byte[] b = new byte[(int) t.byteSize(t.blockSize)];
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> Dequant.row(new Weight("blk.0.x", t, MemorySegment.ofArray(b), 1, t.blockSize), 0, new float[t.blockSize], 0));
        assertEquals(true, e.getMessage().contains("blk.0.x") && e.getMessage().contains(t.name()), e.getMessage());
    }
}

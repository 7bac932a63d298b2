package io.lora4j.tests;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.lora4j.kernels.Dequant;
import io.lora4j.kernels.Weight;
import io.lora4j.model.format.SafetensorsFile;
import io.lora4j.model.format.TensorInfo;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.URISyntaxException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import java.util.TreeMap;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The outputs of real PEFT 0.21 / torch 2.13 in {@code src/test/resources/peft-reference}, made by
 * {@code make_reference.py} there (see its docstring), and comparisons against them.
 */
final class PeftReference {
    private PeftReference() {
    }

    static Path dir() {
        try {
            return Path.of(PeftReference.class.getResource("/peft-reference").toURI());
        } catch (URISyntaxException e) {
            throw new IllegalStateException(e);
        }
    }

    /** Every tensor of a safetensors file, decoded to float, by name. */
    static Map<String, float[]> tensors(Path file) {
        Map<String, float[]> out = new TreeMap<>();
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            for (Map.Entry<String, TensorInfo> e : st.tensors().entrySet()) {
                int n = (int) e.getValue().elementCount();
                float[] v = new float[n];
                Dequant.row(new Weight(e.getKey(), e.getValue().type(), e.getValue().data(), 1, n), 0, v, 0);
                out.put(e.getKey(), v);
            }
        }
        return out;
    }

    /** The shape of one tensor as the file stores it. */
    static long[] shape(Path file, String key) {
        try (SafetensorsFile st = SafetensorsFile.open(file)) {
            return st.fileShape(key);
        }
    }

    static JsonNode json(Path file) {
        try {
            return new ObjectMapper().readTree(Files.readAllBytes(file));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static int[] ints(JsonNode array) {
        int[] v = new int[array.size()];
        for (int i = 0; i < v.length; i++) {
            v[i] = array.get(i).asInt();
        }
        return v;
    }

    /** Largest |a − b| over max(1, |b|)-scaled elements, with the name in the message. */
    static void assertClose(float[] want, float[] got, double tol, String what) {
        assertEquals(want.length, got.length, what + ": length");
        double worst = 0;
        int at = -1;
        for (int i = 0; i < want.length; i++) {
            double d = Math.abs(want[i] - got[i]) / Math.max(1, Math.abs(want[i]));
            if (!(d <= worst)) {
                worst = d;
                at = i;
            }
        }
        assertTrue(worst <= tol, what + ": max difference " + worst + " at " + at + " (want " + (at < 0 ? "" : want[at])
                + ", got " + (at < 0 ? "" : got[at]) + "), tolerance " + tol);
    }

    /**
     * A (r, in) and B (out, r) against the reference's up to the sign of each rank (a singular pair's sign
     * is arbitrary): row j of A and column j of B flipped together where lora4j's sign differs.
     */
    static void assertCloseUpToSign(float[] wantA, float[] wantB, float[] gotA, float[] gotB, int r, double tol, String what) {
        int in = wantA.length / r, out = wantB.length / r;
        float[] a = gotA.clone(), b = gotB.clone();
        double[] norms = new double[r];
        double top = 0;
        for (int j = 0; j < r; j++) {
            for (int o = 0; o < out; o++) {
                norms[j] += (double) wantB[o * r + j] * wantB[o * r + j];
            }
            top = Math.max(top, norms[j]);
        }
        float[] wa = wantA.clone();
        for (int j = 0; j < r; j++) {
            if (norms[j] <= 1e-10 * top) { // a zero singular value: its vectors are arbitrary (B's column is zero either way)
                for (int i = 0; i < in; i++) {
                    wa[j * in + i] = a[j * in + i] = 0;
                }
            }
        }
        wantA = wa;
        for (int j = 0; j < r; j++) {
            double dot = 0;
            for (int i = 0; i < in; i++) {
                dot += (double) wantA[j * in + i] * gotA[j * in + i];
            }
            if (dot < 0) {
                for (int i = 0; i < in; i++) {
                    a[j * in + i] = -a[j * in + i];
                }
                for (int o = 0; o < out; o++) {
                    b[o * r + j] = -b[o * r + j];
                }
            }
        }
        assertClose(wantA, a, tol, what + ".lora_A");
        assertClose(wantB, b, tol, what + ".lora_B");
    }

    /** B·A (out, in) of factors (r, in) and (out, r). */
    static float[] product(float[] a, float[] b, int r) {
        int in = a.length / r, out = b.length / r;
        float[] p = new float[out * in];
        for (int o = 0; o < out; o++) {
            for (int i = 0; i < in; i++) {
                double s = 0;
                for (int j = 0; j < r; j++) {
                    s += (double) b[o * r + j] * a[j * in + i];
                }
                p[o * in + i] = (float) s;
            }
        }
        return p;
    }
}

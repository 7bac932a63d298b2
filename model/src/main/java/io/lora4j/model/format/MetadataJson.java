package io.lora4j.model.format;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;

import java.math.BigInteger;
import java.nio.file.Path;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Model metadata (the Java values of {@link WeightSource#metadata()}) as two JSON objects that any
 * JSON reader understands: {@code values} maps each key to a plain JSON value (number, string,
 * bool, array), {@code types} maps it to its GGUF type name ({@code u32}, {@code f32},
 * {@code string}, {@code array<f32>}, …), so that decoding gives back the same Java types and
 * exact values (floats are written in their shortest round-trip form and parsed back as floats).
 * Floats a JSON number cannot carry are written as the strings "NaN", "Infinity", "-Infinity", "-0.0".
 */
final class MetadataJson {
    static final ObjectMapper JSON = new ObjectMapper().enable(DeserializationFeature.USE_BIG_DECIMAL_FOR_FLOATS);
    private static final JsonNodeFactory NODES = JsonNodeFactory.withExactBigDecimals(true);
    private static final String[] GGUF_NAMES = {"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};

    private MetadataJson() {
    }

    /** Values and types of {@code metadata}, both as JSON text. */
    record Encoded(String values, String types) {
    }

    /** The GGUF name of value type id {@code t} (GgufFile.UINT8 … FLOAT64). */
    static String ggufName(int t) {
        if (t < 0 || t >= GGUF_NAMES.length) {
            throw new IllegalArgumentException("unknown GGUF value type " + t);
        }
        return GGUF_NAMES[t];
    }

    /** The GGUF value type id (GgufFile.UINT8 … FLOAT64) of type name {@code name} (u8 … f64, array). */
    static int ggufType(String name) {
        for (int t = 0; t < GGUF_NAMES.length; t++) {
            if (GGUF_NAMES[t].equals(name)) {
                return t;
            }
        }
        throw new IllegalArgumentException("unknown GGUF type name " + name);
    }

    /** The type of metadata {@code key} of {@code src}: exact for GGUF and Arrow sources, else implied by the Java type. */
    static String typeOf(WeightSource src, String key, Object v) {
        if (src instanceof GgufFile g && g.valueType(key) >= 0) {
            int t = g.valueType(key);
            return t == GgufFile.ARRAY ? "array<" + ggufName(g.arrayElementType(key)) + ">" : ggufName(t);
        }
        if (src instanceof ArrowModel a && a.metadataType(key) != null) {
            return a.metadataType(key);
        }
        return javaType(v);
    }

    /** The GGUF type a Java value maps to when nothing says otherwise (Long → i64, Float → f32, …). */
    static String javaType(Object v) {
        return switch (v) {
            case Long l -> "i64";
            case Integer i -> "i32";
            case Short s -> "i16";
            case Byte b -> "i8";
            case Float f -> "f32";
            case Double d -> "f64";
            case Boolean b -> "bool";
            case String s -> "string";
            case String[] a -> "array<string>";
            case float[] a -> "array<f32>";
            case int[] a -> "array<i32>";
            case long[] a -> "array<i64>";
            case short[] a -> "array<i16>";
            case byte[] a -> "array<u8>";
            case boolean[] a -> "array<bool>";
            case double[] a -> "array<f64>";
            case Object[] a -> "array<array>";
            case null -> throw new IllegalArgumentException("null metadata value");
            default -> throw new IllegalArgumentException("unsupported metadata value type " + v.getClass().getName());
        };
    }

    static Encoded encode(Map<String, Object> metadata, Map<String, String> types) {
        ObjectNode values = NODES.objectNode();
        ObjectNode typeNode = NODES.objectNode();
        for (Map.Entry<String, Object> e : metadata.entrySet()) {
            String type = types.get(e.getKey());
            values.set(e.getKey(), toJson(e.getKey(), type, e.getValue()));
            typeNode.put(e.getKey(), type);
        }
        try {
            return new Encoded(JSON.writeValueAsString(values), JSON.writeValueAsString(typeNode));
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }

    private static JsonNode toJson(String key, String type, Object v) {
        boolean unsigned = type.startsWith("u") || type.startsWith("array<u");
        return switch (v) {
            case Long l -> unsigned && l < 0 ? NODES.numberNode(new BigInteger(Long.toUnsignedString(l))) : NODES.numberNode(l);
            case Integer i -> NODES.numberNode(i);
            case Short s -> NODES.numberNode(s);
            case Byte b -> NODES.numberNode(b);
            case Float f -> f32Node(f);
            case Double d -> f64Node(d);
            case Boolean b -> NODES.booleanNode(b);
            case String s -> NODES.textNode(s);
            case String[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (String s : a) {
                    n.add(s);
                }
                yield n;
            }
            case float[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (float x : a) {
                    n.add(f32Node(x));
                }
                yield n;
            }
            case double[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (double x : a) {
                    n.add(f64Node(x));
                }
                yield n;
            }
            case int[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (int x : a) {
                    n.add(unsigned ? Integer.toUnsignedLong(x) : x);
                }
                yield n;
            }
            case long[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (long x : a) {
                    n.add(unsigned && x < 0 ? NODES.numberNode(new BigInteger(Long.toUnsignedString(x))) : NODES.numberNode(x));
                }
                yield n;
            }
            case short[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (short x : a) {
                    n.add(unsigned ? x & 0xffff : x);
                }
                yield n;
            }
            case byte[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (byte x : a) {
                    n.add(unsigned ? x & 0xff : x);
                }
                yield n;
            }
            case boolean[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (boolean x : a) {
                    n.add(x);
                }
                yield n;
            }
            case Object[] a -> {
                ArrayNode n = NODES.arrayNode(a.length);
                for (Object x : a) {
                    n.add(toJson(key, javaType(x), x));
                }
                yield n;
            }
            default -> throw new IllegalArgumentException("metadata " + key + ": unsupported value type " + v.getClass().getName());
        };
    }

    /** A JSON number, or a string for the values a JSON number cannot carry exactly (NaN, ±Infinity, -0.0). */
    private static JsonNode f32Node(float x) {
        return Float.isFinite(x) && Float.floatToRawIntBits(x) != Integer.MIN_VALUE ? NODES.numberNode(x) : NODES.textNode(Float.toString(x));
    }

    private static JsonNode f64Node(double x) {
        return Double.isFinite(x) && Double.doubleToRawLongBits(x) != Long.MIN_VALUE ? NODES.numberNode(x) : NODES.textNode(Double.toString(x));
    }

    /** Parses {@code text} as a JSON object; a ModelFormatException naming {@code file} and {@code what} otherwise. */
    static ObjectNode parseObject(Path file, String what, String text) {
        try {
            JsonNode n = JSON.readTree(text);
            if (!(n instanceof ObjectNode o)) {
                throw new ModelFormatException(file, what + " is not a JSON object");
            }
            return o;
        } catch (JsonProcessingException e) {
            throw new ModelFormatException(file, what + " is not valid JSON: " + e.getOriginalMessage());
        }
    }

    /** The metadata map, with the Java types GgufFile gives (integers Long, f32 Float, arrays typed). */
    static Map<String, Object> decode(Path file, ObjectNode values, ObjectNode types) {
        Map<String, Object> out = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = values.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            String key = e.getKey();
            JsonNode t = types.get(key);
            if (t == null || !t.isTextual()) {
                throw new ModelFormatException(file, "metadata key " + key + " has no type in lora4j.metadata_types");
            }
            try {
                out.put(key, value(t.asText(), e.getValue()));
            } catch (IllegalArgumentException | ArithmeticException ex) {
                throw new ModelFormatException(file, "metadata key " + key + " is not a valid " + t.asText() + ": " + ex.getMessage());
            }
        }
        return out;
    }

    private static Object value(String type, JsonNode v) {
        if (type.startsWith("array<") && type.endsWith(">")) {
            if (!v.isArray()) {
                throw new IllegalArgumentException("expected a JSON array");
            }
            return array(type.substring(6, type.length() - 1), v);
        }
        return switch (type) {
            case "u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64" -> integer(v);
            case "f32" -> f32(v);
            case "f64" -> f64(v);
            case "bool" -> {
                if (!v.isBoolean()) {
                    throw new IllegalArgumentException("expected true or false");
                }
                yield v.booleanValue();
            }
            case "string" -> {
                if (!v.isTextual()) {
                    throw new IllegalArgumentException("expected a string");
                }
                yield v.textValue();
            }
            default -> throw new IllegalArgumentException("unknown type name");
        };
    }

    private static Object array(String elem, JsonNode v) {
        int n = v.size();
        switch (elem) {
            case "u8", "i8" -> {
                byte[] a = new byte[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (byte) integer(v.get(i));
                }
                return a;
            }
            case "u16", "i16" -> {
                short[] a = new short[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (short) integer(v.get(i));
                }
                return a;
            }
            case "u32", "i32" -> {
                int[] a = new int[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (int) integer(v.get(i));
                }
                return a;
            }
            case "u64", "i64" -> {
                long[] a = new long[n];
                for (int i = 0; i < n; i++) {
                    a[i] = integer(v.get(i));
                }
                return a;
            }
            case "f32" -> {
                float[] a = new float[n];
                for (int i = 0; i < n; i++) {
                    a[i] = f32(v.get(i));
                }
                return a;
            }
            case "f64" -> {
                double[] a = new double[n];
                for (int i = 0; i < n; i++) {
                    a[i] = f64(v.get(i));
                }
                return a;
            }
            case "bool" -> {
                boolean[] a = new boolean[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (Boolean) value("bool", v.get(i));
                }
                return a;
            }
            case "string" -> {
                String[] a = new String[n];
                for (int i = 0; i < n; i++) {
                    a[i] = (String) value("string", v.get(i));
                }
                return a;
            }
            case "array" -> {
                Object[] a = new Object[n];
                for (int i = 0; i < n; i++) {
                    a[i] = array(inferElement(v.get(i)), v.get(i));
                }
                return a;
            }
            default -> throw new IllegalArgumentException("unknown array element type " + elem);
        }
    }

    /** Element type of an inner array of a nested array (GGUF does not record it): strings, integers, reals, bools or arrays. */
    private static String inferElement(JsonNode a) {
        if (!a.isArray()) {
            throw new IllegalArgumentException("expected a nested JSON array");
        }
        if (a.isEmpty() || a.get(0).isIntegralNumber()) {
            return "i64";
        }
        JsonNode x = a.get(0);
        return x.isTextual() ? "string" : x.isBoolean() ? "bool" : x.isArray() ? "array" : "f64";
    }

    private static long integer(JsonNode v) {
        if (!v.isIntegralNumber()) {
            throw new IllegalArgumentException("expected an integer, found " + v);
        }
        BigInteger b = v.bigIntegerValue();
        if (b.bitLength() > 64 || b.signum() < 0 && b.bitLength() > 63) {
            throw new ArithmeticException(b + " does not fit in 64 bits");
        }
        return b.longValue();
    }

    private static float f32(JsonNode v) {
        if (v.isTextual() || v.isNumber()) {
            return Float.parseFloat(v.asText()); // the exact decimal text, rounded once
        }
        throw new IllegalArgumentException("expected a number, found " + v);
    }

    private static double f64(JsonNode v) {
        if (v.isTextual() || v.isNumber()) {
            return Double.parseDouble(v.asText());
        }
        throw new IllegalArgumentException("expected a number, found " + v);
    }
}

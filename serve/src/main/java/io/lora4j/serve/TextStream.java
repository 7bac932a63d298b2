package io.lora4j.serve;

import io.lora4j.model.tokenizer.Tokenizer;

import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * A completion's text as its tokens arrive: token bytes are decoded as UTF-8 once a character is
 * whole, and OpenAI's {@code stop} strings end the text before they start (the stop string itself is
 * not returned). Text that could still be the start of a stop string is held back until the next token
 * decides.
 */
final class TextStream {
    private final Tokenizer tok;
    private final List<String> stops;
    private final ByteArrayOutputStream pendingBytes = new ByteArrayOutputStream();
    private final StringBuilder held = new StringBuilder(); // decoded, not yet released
    private final StringBuilder all = new StringBuilder();   // released so far
    private boolean stopped;

    TextStream(Tokenizer tok, List<String> stops) {
        this.tok = tok;
        this.stops = stops;
    }

    /** Adds a token; returns the text it releases (possibly empty). After a stop string, {@link #stopped} is true. */
    String add(int token) {
        pendingBytes.writeBytes(tok.tokenBytes(token));
        byte[] b = pendingBytes.toByteArray();
        int whole = wholeUtf8(b);
        held.append(new String(b, 0, whole, StandardCharsets.UTF_8));
        pendingBytes.reset();
        pendingBytes.write(b, whole, b.length - whole);
        return release(false);
    }

    /** The end of the sequence: whatever is held back (and any incomplete bytes) is released. */
    String flush() {
        if (pendingBytes.size() > 0) {
            held.append(pendingBytes.toString(StandardCharsets.UTF_8));
            pendingBytes.reset();
        }
        return release(true);
    }

    boolean stopped() {
        return stopped;
    }

    /** All text released so far. */
    String text() {
        return all.toString();
    }

    private String release(boolean end) {
        if (stopped) {
            return "";
        }
        int cut = -1;
        for (String s : stops) {
            int at = held.indexOf(s);
            if (at >= 0 && (cut < 0 || at < cut)) {
                cut = at;
            }
        }
        String out;
        if (cut >= 0) {
            stopped = true;
            out = held.substring(0, cut);
            held.setLength(0);
        } else {
            int keep = end ? 0 : heldBack();
            out = held.substring(0, held.length() - keep);
            held.delete(0, held.length() - keep);
        }
        all.append(out);
        return out;
    }

    /** Characters at the end of the held text that are a proper prefix of some stop string. */
    private int heldBack() {
        int most = 0;
        for (String s : stops) {
            for (int k = Math.min(s.length() - 1, held.length()); k > most; k--) {
                if (held.substring(held.length() - k).equals(s.substring(0, k))) {
                    most = k;
                    break;
                }
            }
        }
        return most;
    }

    /** Bytes of b that form whole UTF-8 characters (an incomplete trailing sequence is left out). */
    static int wholeUtf8(byte[] b) {
        int n = b.length;
        for (int back = 1; back <= Math.min(3, n); back++) {
            int c = b[n - back] & 0xff;
            if ((c & 0xC0) == 0x80) {
                continue; // continuation byte: look further back for the lead
            }
            int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return len > back ? n - back : n;
        }
        return n;
    }
}

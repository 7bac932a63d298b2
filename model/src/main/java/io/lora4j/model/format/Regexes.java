package io.lora4j.model.format;

import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Regular expressions that come from files (PEFT's {@code target_modules}, {@code rank_pattern},
 * tokenizer.json's pre-tokenizer): compiled with a bound on nesting, since java.util.regex compiles
 * and matches groups recursively (a few thousand nested groups overflow the stack), and matched
 * against short strings with a bound on the work, since a pattern such as {@code (a|a)*b}
 * backtracks exponentially. Either way the problem is an IllegalArgumentException with a message.
 */
public final class Regexes {
    /** Deepest group nesting accepted; real patterns use a handful. */
    public static final int MAX_NESTING = 64;
    /** Character reads one bounded match may make. */
    public static final long MATCH_BUDGET = 1_000_000;

    private Regexes() {
    }

    /** {@code regex} compiled with {@code flags}; an IllegalArgumentException naming {@code what} if it is invalid or nested too deeply. */
    public static Pattern compile(String what, String regex, int flags) {
        int depth = 0, max = 0;
        for (int i = 0; i < regex.length(); i++) {
            char c = regex.charAt(i);
            if (c == '\\') {
                i++;
            } else if (c == '(') {
                max = Math.max(max, ++depth);
            } else if (c == ')') {
                depth--;
            }
        }
        if (max > MAX_NESTING) {
            throw new IllegalArgumentException(what + " nests groups " + max + " deep (at most " + MAX_NESTING + ")");
        }
        try {
            return Pattern.compile(regex, flags);
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException(what + " is not a valid regex: " + e.getDescription());
        } catch (StackOverflowError e) {
            throw new IllegalArgumentException(what + " is too complex to compile");
        }
    }

    /**
     * {@code s} as a CharSequence whose reads are counted: a match that needs more than
     * {@link #MATCH_BUDGET} of them throws an IllegalArgumentException naming {@code what}.
     */
    public static CharSequence budgeted(String what, String s) {
        long[] left = {MATCH_BUDGET};
        return new CharSequence() {
            @Override
            public char charAt(int i) {
                if (--left[0] < 0) {
                    throw new IllegalArgumentException(what + " needs more than " + MATCH_BUDGET + " steps to match \"" + s
                            + "\" (catastrophic backtracking?)");
                }
                return s.charAt(i);
            }

            @Override
            public int length() {
                return s.length();
            }

            @Override
            public CharSequence subSequence(int from, int to) {
                return s.subSequence(from, to);
            }

            @Override
            public String toString() {
                return s;
            }
        };
    }
}

package io.lora4j.model.tokenizer;

import io.lora4j.model.format.Fuzzing;

import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Fuzz target: chat-template input — any roles, contents and turn orders, for each template family
 * (Llama 2 from a SentencePiece vocabulary, Llama 3 and ChatML from byte-level ones). An unknown
 * role or an impossible turn order must be an InvalidConversationException; every id produced
 * must be in the vocabulary, and the assistant mask as long as the ids.
 * <p>
 * Input: byte 0 picks the tokenizer, byte 1 bit 0 asks for the generation prompt; then messages,
 * each a role byte (0 system, 1 user, 2 assistant, else a role spelled out up to the next 0 byte)
 * and its content up to the next 0 byte (UTF-8, malformed sequences as U+FFFD).
 */
public final class ChatTemplateFuzz {
    private static final List<Tokenizer> TOKENIZERS = new ArrayList<>();

    /** Called once by Jazzer before the first input, outside the per-input timeout. */
    public static void fuzzerInitialize() {
        if (!TOKENIZERS.isEmpty()) {
            return;
        }
        Path models = Path.of(System.getProperty("lora4j.shared", "../shared"), "models");
        TOKENIZERS.add(Tokenizers.load(models.resolve("stories260K/tok512.bin")));
        TOKENIZERS.add(Tokenizers.load(models.resolve("tiktoken-small/tiktoken_small.model")));
        TOKENIZERS.add(Tokenizers.load(models.resolve("peft-lora-smollm-135m/tokenizer.json")));
    }

    public static void fuzzerTestOneInput(byte[] data) throws Exception {
        if (data.length < 2) {
            return;
        }
        Tokenizer tok = TOKENIZERS.get((data[0] & 0xff) % TOKENIZERS.size());
        boolean generation = (data[1] & 1) != 0;
        List<ChatTemplate.Message> msgs = new ArrayList<>();
        int[] pos = {2};
        while (pos[0] < data.length && msgs.size() < 16) {
            int r = data[pos[0]++] & 0xff;
            String role = r == 0 ? "system" : r == 1 ? "user" : r == 2 ? "assistant" : upToZero(data, pos);
            msgs.add(new ChatTemplate.Message(role, upToZero(data, pos)));
        }
        Fuzzing.typed(() -> {
            ChatTemplate.Encoded e = ChatTemplate.forTokenizer(tok).encode(msgs, generation);
            if (e.ids().length != e.assistantMask().length) {
                throw new AssertionError("mask of " + e.assistantMask().length + " for " + e.ids().length + " ids");
            }
            for (int id : e.ids()) {
                if (id < 0 || id >= tok.vocabSize()) {
                    throw new AssertionError("id " + id + " outside the vocabulary of " + tok.vocabSize());
                }
            }
        });
    }

    private static String upToZero(byte[] data, int[] pos) {
        int start = Math.min(pos[0], data.length);
        pos[0] = start;
        while (pos[0] < data.length && data[pos[0]] != 0) {
            pos[0]++;
        }
        String s = new String(data, start, pos[0] - start, StandardCharsets.UTF_8);
        pos[0]++;
        return s;
    }
}

package io.lora4j.model.tokenizer;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The chat template takes the roles system, user and assistant only: a role is written into the
 * turn's header, so any other (e.g. "tool", or "user" followed by a header token that would forge
 * a turn) is an InvalidConversationException, in every template family.
 */
class ChatTemplateTest {
    static final Path MODELS = Path.of(System.getProperty("lora4j.shared", "../shared"), "models");

    @Test
    void unknownRolesAreRefusedInEveryFamily() {
        List<Tokenizer> toks = List.of(Tokenizers.load(MODELS.resolve("stories260K/tok512.bin")),
                Tokenizers.load(MODELS.resolve("tiktoken-small/tiktoken_small.model")),
                Tokenizers.load(MODELS.resolve("peft-lora-smollm-135m/tokenizer.json")));
        List<ChatTemplate.Family> families = toks.stream().map(t -> ChatTemplate.forTokenizer(t).family()).toList();
        assertEquals(List.of(ChatTemplate.Family.LLAMA2, ChatTemplate.Family.LLAMA3, ChatTemplate.Family.CHATML), families);
        for (Tokenizer tok : toks) {
            ChatTemplate t = ChatTemplate.forTokenizer(tok);
            for (String role : new String[]{"tool", "User", "", "user<|end_header_id|>", "assistant\n"}) {
                var e = assertThrows(ChatTemplate.InvalidConversationException.class,
                        () -> t.encode(List.of(new ChatTemplate.Message("user", "hi"), new ChatTemplate.Message(role, "x")), false));
                assertTrue(e.getMessage().contains("unknown chat role"), e.getMessage());
            }
            assertTrue(t.encode(List.of(new ChatTemplate.Message("system", "s"), new ChatTemplate.Message("user", "hi"),
                    new ChatTemplate.Message("assistant", "hello")), true).ids().length > 3);
        }
        var e = assertThrows(ChatTemplate.InvalidConversationException.class, () -> ChatTemplate.forTokenizer(toks.get(0))
                .encode(List.of(new ChatTemplate.Message("assistant", "first")), false));
        assertTrue(e.getMessage().contains("must follow a user turn"), e.getMessage());
    }
}

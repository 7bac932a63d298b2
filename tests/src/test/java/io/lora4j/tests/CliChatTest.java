package io.lora4j.tests;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.tokenizer.ChatTemplate;
import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * lora4j chat: turns from standard input; each reply is what the library generates, from a fresh
 * state, for the whole conversation so far in the chat template (so the KV cache kept between
 * turns changes nothing), and the first one is generate --chat's.
 */
class CliChatTest {
    static final int N = 64;

    @Test
    void repliesEqualTheLibrarysForTheConversationSoFar() {
        InputStream old = System.in;
        Shared.Run chat;
        try {
            System.setIn(new ByteArrayInputStream("Tell me about Lily\nAnd then?\n/exit\nnot read\n".getBytes(StandardCharsets.UTF_8)));
            chat = Shared.cli("chat", "--model", Shared.stories().toString(), "--temperature", "0", "-n", Integer.toString(N));
        } finally {
            System.setIn(old);
        }
        assertEquals(0, chat.code(), chat.err());
        Shared.Run gen = Shared.cli("generate", "--model", Shared.stories().toString(), "--chat", "--prompt", "Tell me about Lily",
                "--temperature", "0", "--max-tokens", Integer.toString(N));
        assertEquals(0, gen.code(), gen.err());

        try (LoadedModel lm = LoadedModel.open(Shared.stories(), null)) {
            ChatTemplate template = ChatTemplate.forTokenizer(lm.tokenizer());
            List<ChatTemplate.Message> conversation = new ArrayList<>();
            List<String> replies = new ArrayList<>();
            for (String turn : new String[]{"Tell me about Lily", "And then?"}) {
                conversation.add(new ChatTemplate.Message("user", turn));
                int[] tokens = Shared.apiTokens(lm, template.encode(conversation, true).ids(), Sampler.Params.greedy(), N);
                assertTrue(tokens.length > 0, "the reference reply is not empty");
                String reply = lm.tokenizer().decode(tokens);
                if (replies.isEmpty()) {
                    assertEquals(reply + "\n", gen.out(), "generate --chat = Generator on the templated message");
                }
                replies.add(reply);
                conversation.add(new ChatTemplate.Message("assistant", reply));
            }
            assertEquals(replies.get(0) + "\n" + replies.get(1) + "\n", chat.out(), "two replies, then /exit ends the chat");
            assertNotEquals(replies.get(0), replies.get(1), "the second turn is answered, not the first repeated");
        }
    }
}

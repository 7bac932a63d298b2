package io.lora4j.tests;

import org.junit.jupiter.api.Test;

import java.io.ByteArrayInputStream;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** lora4j chat: turns from standard input, the first reply equal to generate --chat's. */
class CliChatTest {
    @Test
    void firstTurnMatchesGenerateChatAndLaterTurnsContinue() {
        InputStream old = System.in;
        try {
            System.setIn(new ByteArrayInputStream("Tell me about Lily\nAnd then?\n/exit\nnot read\n".getBytes(StandardCharsets.UTF_8)));
            Shared.Run chat = Shared.cli("chat", "--model", Shared.stories().toString(), "--temperature", "0", "-n", "24");
            assertEquals(0, chat.code(), chat.err());
            String[] replies = chat.out().split("\n");
            assertEquals(2, replies.length, chat.out());
            Shared.Run gen = Shared.cli("generate", "--model", Shared.stories().toString(), "--chat", "--prompt", "Tell me about Lily",
                    "--temperature", "0", "--max-tokens", "24");
            assertEquals(0, gen.code(), gen.err());
            assertEquals(gen.out().strip(), replies[0].strip());
            assertTrue(!replies[1].isBlank(), chat.out());
        } finally {
            System.setIn(old);
        }
    }
}

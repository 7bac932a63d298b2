package io.lora4j.model.tokenizer;

import java.util.ArrayList;
import java.util.List;

/**
 * Chat formatting at the token level, for the three families lora4j knows, chosen from the
 * tokenizer's special tokens:
 * <ul>
 *   <li>Llama 3: {@code <|begin_of_text|><|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>…};</li>
 *   <li>ChatML (SmolLM, Qwen): {@code <|im_start|>role\ncontent<|im_end|>\n…};</li>
 *   <li>Llama 2: {@code <s>[INST] <<SYS>>\nsystem\n<</SYS>>\n\nuser [/INST] answer </s>…} as in Meta's reference code.</li>
 * </ul>
 * {@link Encoded#assistantMask} marks the tokens of assistant replies (with their end-of-turn
 * token): the ones a fine-tune learns.
 */
public final class ChatTemplate {
    public record Message(String role, String content) {
    }

    public record Encoded(int[] ids, boolean[] assistantMask) {
    }

    /** A conversation the template cannot format: an unknown role, or turns in an order the family does not allow. */
    public static final class InvalidConversationException extends IllegalArgumentException {
        public InvalidConversationException(String message) {
            super(message);
        }
    }

    public enum Family { LLAMA3, CHATML, LLAMA2 }

    private final Tokenizer tok;
    private final Family family;

    private ChatTemplate(Tokenizer tok, Family family) {
        this.tok = tok;
        this.family = family;
    }

    public static ChatTemplate forTokenizer(Tokenizer tok) {
        Family f = tok.tokenId("<|start_header_id|>") >= 0 ? Family.LLAMA3
                : tok.tokenId("<|im_start|>") >= 0 ? Family.CHATML : Family.LLAMA2;
        return new ChatTemplate(tok, f);
    }

    public Family family() {
        return family;
    }

    /**
     * The conversation's tokens; with {@code addGenerationPrompt} they end with the opening of an
     * assistant turn, ready for generation. Roles are system, user and assistant; any other is an
     * {@link InvalidConversationException} (a role is written into the prompt's header, so an
     * unchecked one could forge turns).
     */
    public Encoded encode(List<Message> messages, boolean addGenerationPrompt) {
        List<Integer> ids = new ArrayList<>();
        List<Boolean> mask = new ArrayList<>();
        for (Message m : messages) {
            if (!List.of("system", "user", "assistant").contains(m.role())) {
                throw new InvalidConversationException("unknown chat role '" + m.role() + "' (system, user, assistant)");
            }
        }
        switch (family) {
            case LLAMA3 -> {
                add(ids, mask, tok.encodeWithSpecial("<|begin_of_text|>"), false);
                for (Message m : messages) {
                    add(ids, mask, tok.encodeWithSpecial("<|start_header_id|>" + m.role() + "<|end_header_id|>\n\n"), false);
                    boolean a = m.role().equals("assistant");
                    add(ids, mask, tok.encode(m.content().strip()), a);
                    add(ids, mask, tok.encodeWithSpecial("<|eot_id|>"), a);
                }
                if (addGenerationPrompt) {
                    add(ids, mask, tok.encodeWithSpecial("<|start_header_id|>assistant<|end_header_id|>\n\n"), false);
                }
            }
            case CHATML -> {
                for (Message m : messages) {
                    add(ids, mask, tok.encodeWithSpecial("<|im_start|>" + m.role() + "\n"), false);
                    boolean a = m.role().equals("assistant");
                    add(ids, mask, tok.encode(m.content()), a);
                    add(ids, mask, tok.encodeWithSpecial("<|im_end|>"), a);
                    add(ids, mask, tok.encode("\n"), false);
                }
                if (addGenerationPrompt) {
                    add(ids, mask, tok.encodeWithSpecial("<|im_start|>assistant\n"), false);
                }
            }
            case LLAMA2 -> {
                String system = null;
                String pendingUser = null;
                for (Message m : messages) {
                    switch (m.role()) {
                        case "system" -> system = m.content().strip();
                        case "user" -> {
                            if (pendingUser != null) {
                                inst(ids, mask, pendingUser);
                            }
                            String u = m.content().strip();
                            if (system != null) {
                                u = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + u;
                                system = null;
                            }
                            pendingUser = u;
                        }
                        default -> {
                            if (pendingUser == null) {
                                throw new InvalidConversationException("Llama 2 chat: an assistant turn must follow a user turn");
                            }
                            inst(ids, mask, pendingUser);
                            pendingUser = null;
                            add(ids, mask, tok.encode(m.content().strip() + " "), true);
                            add(ids, mask, new int[]{tok.eos()}, true);
                        }
                    }
                }
                if (pendingUser != null) {
                    inst(ids, mask, pendingUser);
                }
            }
        }
        int[] out = new int[ids.size()];
        boolean[] am = new boolean[ids.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = ids.get(i);
            am[i] = mask.get(i);
        }
        return new Encoded(out, am);
    }

    /** {@code <s>[INST] user [/INST]} */
    private void inst(List<Integer> ids, List<Boolean> mask, String user) {
        if (tok.bos() >= 0) {
            add(ids, mask, new int[]{tok.bos()}, false);
        }
        add(ids, mask, tok.encode("[INST] " + user + " [/INST]"), false);
    }

    private static void add(List<Integer> ids, List<Boolean> mask, int[] toks, boolean assistant) {
        for (int t : toks) {
            ids.add(t);
            mask.add(assistant);
        }
    }
}

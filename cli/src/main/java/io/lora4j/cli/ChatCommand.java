package io.lora4j.cli;

import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.State;
import io.lora4j.model.tokenizer.ChatTemplate;
import io.lora4j.model.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.Callable;

/**
 * {@code lora4j chat}: an interactive conversation in the model's chat template. Each line on
 * standard input is a user turn; the reply streams to standard output. The KV cache is kept
 * between turns: only the tokens that differ from what the cache already holds are processed.
 * {@code /reset} starts over, {@code /exit} or end of input quits.
 */
@Command(name = "chat", mixinStandardHelpOptions = true, description = "Chat interactively (one user turn per input line).")
final class ChatCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;
    @Mixin
    QuantizeOptions quantize;
    @Mixin
    InferenceOptions inference;
    @Mixin
    SamplingOptions sampling;

    @Option(names = "--system", description = "System message.")
    String system;

    @Option(names = {"-n", "--max-tokens"}, defaultValue = "256", description = "Longest reply in tokens (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--adapter", paramLabel = "DIR[:NAME[:SCALE]]", description = "LoRA adapter(s) to apply, as for generate.")
    List<String> adapterSpecs;

    @Override
    public Integer call() throws IOException {
        inference.validate();
        Sampler.Params params = sampling.params();
        try (LoadedModel lm = modelOptions.open(quantize); Backend backend = modelOptions.backend()) {
            AdapterSpec.applyAll(adapterSpecs, lm.llama());
            Tokenizer tok = lm.tokenizer();
            ChatTemplate template = ChatTemplate.forTokenizer(tok);
            State state = lm.llama().newState(inference.batchSize, inference.ctxSize);
            Sampler sampler = new Sampler(params, lm.llama().config().vocabSize());
            PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
            List<ChatTemplate.Message> messages = new ArrayList<>();
            if (system != null) {
                messages.add(new ChatTemplate.Message("system", system));
            }
            int[] cached = new int[0];
            System.err.println("chat (" + template.family() + " template); /reset to start over, /exit to quit");
            for (String line; (line = in.readLine()) != null; ) {
                if (line.equals("/exit")) {
                    break;
                }
                if (line.equals("/reset")) {
                    messages.subList(system != null ? 1 : 0, messages.size()).clear();
                    cached = new int[0];
                    continue;
                }
                messages.add(new ChatTemplate.Message("user", line));
                int[] ids = template.encode(messages, true).ids();
                int keep = 0; // tokens the KV cache already holds
                while (keep < cached.length && keep < ids.length - 1 && cached[keep] == ids[keep]) {
                    keep++;
                }
                if (ids.length - keep + maxTokens > state.contextLength - keep) {
                    throw new IllegalArgumentException("the conversation no longer fits the context of "
                            + state.contextLength + " tokens; /reset or raise --ctx-size");
                }
                int[] fresh = Arrays.copyOfRange(ids, keep, ids.length);
                Generator.Result r = Generator.generate(lm.llama(), backend, state, fresh, keep, maxTokens, sampler,
                        tok.stopTokens(), t -> out.write(tok.tokenBytes(t), 0, tok.tokenBytes(t).length));
                out.println();
                String reply = tok.decode(r.tokens());
                messages.add(new ChatTemplate.Message("assistant", reply));
                cached = new int[ids.length + r.tokens().length];
                System.arraycopy(ids, 0, cached, 0, ids.length);
                System.arraycopy(r.tokens(), 0, cached, ids.length, r.tokens().length);
            }
        }
        return 0;
    }
}

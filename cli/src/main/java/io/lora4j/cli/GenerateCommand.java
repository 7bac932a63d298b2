package io.lora4j.cli;

import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.State;
import io.lora4j.model.tokenizer.ChatTemplate;
import io.lora4j.model.tokenizer.SentencePieceTokenizer;
import io.lora4j.model.tokenizer.Tokenizer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.Callable;

/** {@code lora4j generate}: the prompt, then the generated text, on standard output; statistics on standard error. */
@Command(name = "generate", mixinStandardHelpOptions = true,
        description = "Generate text from a prompt (or a chat message with --chat).")
final class GenerateCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;
    @Mixin
    QuantizeOptions quantize;
    @Mixin
    InferenceOptions inference;
    @Mixin
    SamplingOptions sampling;

    @Option(names = {"-p", "--prompt"}, defaultValue = "", description = "Prompt text (default: empty, i.e. BOS alone).")
    String prompt;

    @Option(names = {"-n", "--max-tokens"}, defaultValue = "256", description = "Tokens to generate (default ${DEFAULT-VALUE}).")
    int maxTokens;

    @Option(names = "--chat", description = "Wrap the prompt as a user message in the model's chat template.")
    boolean chat;

    @Option(names = "--system", description = "System message for --chat.")
    String system;

    @Option(names = "--no-bos", description = "Do not prepend BOS to a plain prompt.")
    boolean noBos;

    @Option(names = "--adapter", paramLabel = "DIR[:NAME[:SCALE]]", description = "Apply a LoRA adapter (PEFT directory: "
            + "adapter_config.json + adapter_model.safetensors), unmerged; repeatable, several add up with their scales.")
    List<String> adapterSpecs;

    @Override
    public Integer call() throws IOException {
        if (maxTokens < 0) {
            throw new IllegalArgumentException("--max-tokens must be >= 0");
        }
        inference.validate();
        Sampler.Params params = sampling.params();
        try (LoadedModel lm = modelOptions.open(quantize); Backend backend = modelOptions.backend()) {
            Tokenizer tok = lm.tokenizer();
            AdapterSpec.applyAll(adapterSpecs, lm.llama());
            int[] ids = encode(tok);
            State state = lm.llama().newState(inference.batchSize, inference.ctxSize);
            if (ids.length > state.contextLength || ids.length == state.contextLength && maxTokens > 0) {
                int model = lm.llama().config().contextLength();
                throw new IllegalArgumentException("the prompt is " + ids.length + " tokens but the context holds "
                        + state.contextLength + " (--ctx-size " + inference.ctxSize + (model < inference.ctxSize
                        ? ", capped by the model's context length " + model : "") + ")" + (ids.length == state.contextLength
                        ? ", which leaves no room to generate" : "") + "; raise --ctx-size or shorten the prompt");
            }
            Sampler sampler = new Sampler(params, lm.llama().config().vocabSize());
            PrintStream out = new PrintStream(System.out, false, StandardCharsets.UTF_8);
            if (!chat) {
                out.print(prompt);
                out.flush();
            }
            boolean stripSpace = tok instanceof SentencePieceTokenizer;
            int[] last = {ids[ids.length - 1]};
            Generator.Result r = Generator.generate(lm.llama(), backend, state, ids, 0, maxTokens, sampler,
                    tok.stopTokens(), t -> {
                        byte[] b = tok.tokenBytes(t);
                        int from = stripSpace && last[0] == tok.bos() && b.length > 0 && b[0] == ' ' ? 1 : 0;
                        out.write(b, from, b.length - from);
                        out.flush();
                        last[0] = t;
                    });
            out.println();
            out.flush();
            System.err.printf(java.util.Locale.ROOT, "%nprompt: %d tokens, %.2f tok/s | generated: %d tokens, %.2f tok/s | backend %s (%s)%n",
                    r.promptTokens(), r.prefillTokensPerSecond(), r.tokens().length, r.decodeTokensPerSecond(),
                    backend.name(), backend.device());
        }
        return 0;
    }

    private int[] encode(Tokenizer tok) {
        if (chat) {
            List<ChatTemplate.Message> msgs = new ArrayList<>();
            if (system != null) {
                msgs.add(new ChatTemplate.Message("system", system));
            }
            msgs.add(new ChatTemplate.Message("user", prompt));
            return ChatTemplate.forTokenizer(tok).encode(msgs, true).ids();
        }
        int[] body = tok.encode(prompt);
        boolean bos = !noBos && tok.addBos() && tok.bos() >= 0;
        if (!bos && body.length == 0) {
            throw new IllegalArgumentException("empty prompt and no BOS: nothing to start from");
        }
        int[] ids = new int[body.length + (bos ? 1 : 0)];
        if (bos) {
            ids[0] = tok.bos();
        }
        System.arraycopy(body, 0, ids, bos ? 1 : 0, body.length);
        return ids;
    }
}

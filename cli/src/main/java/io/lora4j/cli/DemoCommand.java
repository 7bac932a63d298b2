package io.lora4j.cli;

import io.lora4j.model.Backend;
import io.lora4j.model.Generator;
import io.lora4j.model.LoadedModel;
import io.lora4j.model.Sampler;
import io.lora4j.model.lora.LoraAdapter;
import io.lora4j.model.lora.LoraConfig;
import io.lora4j.model.lora.PeftAdapters;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.train.Datasets;
import io.lora4j.model.train.TrainConfig;
import io.lora4j.model.train.Trainer;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.Callable;

/**
 * {@code lora4j demo}: the main job in one command. A short LoRA fine-tune (r 8 on q, k, v, o) of
 * the default model on the built-in stories about a dragon called Spark, then greedy generation of
 * the same prompt without and with the adapter.
 */
@Command(name = "demo", mixinStandardHelpOptions = true,
        description = "Fine-tune LoRA on the built-in stories, then generate without and with the adapter.")
final class DemoCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Option(names = "--steps", defaultValue = "150", description = "Training steps (default ${DEFAULT-VALUE}).")
    int steps;

    @Option(names = "--lr", defaultValue = "3e-3", description = "Learning rate (default ${DEFAULT-VALUE}).")
    float lr;

    @Option(names = {"-p", "--prompt"}, defaultValue = "Once upon a time, there was a little", description = "Prompt for the comparison.")
    String prompt;

    @Option(names = {"-o", "--output"}, defaultValue = "lora-demo", description = "Where the adapter is saved (default ${DEFAULT-VALUE}).")
    Path output;

    @Override
    public Integer call() throws IOException {
        try (LoadedModel lm = modelOptions.open(); Backend backend = modelOptions.backend()) {
            Tokenizer tok = lm.tokenizer();
            TrainConfig tc = new TrainConfig("adamw", lr, 0f, 0.9f, 0.999f, 1e-8f, "cosine", 10, steps, 2, 1, 1f, 64,
                    42, true, false, 0, 0f);
            Datasets.Split split = Datasets.split(Datasets.load(TrainCommand.demoData(), tok, tc.seqLen()).examples(), 0.2, 42);
            LoraConfig lc = new LoraConfig(8, 16f, 0.1f, List.of("q_proj", "k_proj", "v_proj", "o_proj"), null, "none",
                    false, "true", List.of(), Map.of(), Map.of(), List.of());
            LoraAdapter adapter = new LoraAdapter("default", lc, lm.llama(), 42);
            System.out.println("model: " + modelOptions.modelPath());
            System.out.println(adapter.trainableParametersLine(lm.llama().parameterCount()));
            Trainer t = new Trainer(lm.llama(), adapter, tc, split.train(), split.eval(), backend);
            double before = t.evalLoss();
            long t0 = System.nanoTime();
            ProgressBar bar = new ProgressBar(System.err, steps);
            t.run(new Trainer.Listener() {
                @Override
                public void step(Trainer.StepStats s) {
                    bar.step(s);
                }
            });
            double after = t.evalLoss();
            System.out.printf(Locale.ROOT, "trained %d steps in %.1f s: held-out loss %.4f -> %.4f (perplexity %.2f -> %.2f)%n",
                    steps, (System.nanoTime() - t0) / 1e9, before, after, Math.exp(before), Math.exp(after));
            PeftAdapters.save(adapter, lm.llama(), output);
            System.out.println("adapter saved to " + output);
            System.out.println();
            System.out.println("without the adapter: " + greedy(lm, backend, 60));
            lm.llama().adapters().set(adapter);
            System.out.println("with the adapter:    " + greedy(lm, backend, 60));
            lm.llama().adapters().set(null);
        }
        return 0;
    }

    private String greedy(LoadedModel lm, Backend backend, int n) {
        Tokenizer tok = lm.tokenizer();
        int[] body = tok.encode(prompt);
        int[] ids = new int[body.length + 1];
        ids[0] = tok.bos();
        System.arraycopy(body, 0, ids, 1, body.length);
        Generator.Result r = Generator.generate(lm.llama(), backend, lm.llama().newState(64, 256), ids, 0, n,
                new Sampler(Sampler.Params.greedy(), lm.llama().config().vocabSize()), tok.stopTokens(), x -> { });
        return prompt + tok.decode(r.tokens()).replace('\n', ' ');
    }
}

package io.lora4j.cli;

import io.lora4j.model.LoadedModel;
import io.lora4j.model.tokenizer.Tokenizer;
import io.lora4j.model.tokenizer.Tokenizers;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;
import picocli.CommandLine.Parameters;

import java.util.Arrays;
import java.util.concurrent.Callable;

/** {@code lora4j tokenize}: text → ids (with pieces), or ids → text with --decode. */
@Command(name = "tokenize", mixinStandardHelpOptions = true,
        description = "Encode text to token ids (one 'id<TAB>piece' per line with --pieces), or decode ids with --decode. "
                + "Only the tokenizer is loaded: --tokenizer FILE alone, or the one of --model (a vocabulary-only GGUF will do).")
final class TokenizeCommand implements Callable<Integer> {
    @Mixin
    ModelOptions modelOptions;

    @Parameters(arity = "1", paramLabel = "TEXT", description = "Text to encode, or ids separated by spaces/commas with --decode.")
    String text;

    @Option(names = "--decode", description = "Decode ids instead of encoding text.")
    boolean decode;

    @Option(names = "--bos", description = "Prepend BOS when encoding.")
    boolean bos;

    @Option(names = "--special", description = "Parse special tokens (e.g. <|eot_id|>) in the text.")
    boolean special;

    @Option(names = "--pieces", description = "Print each id with its vocabulary piece.")
    boolean pieces;

    @Override
    public Integer call() {
        Tokenizer tok = modelOptions.tokenizer != null ? Tokenizers.load(modelOptions.tokenizer)
                : LoadedModel.tokenizerOf(modelOptions.modelPath());
        if (decode) {
            int[] ids = Arrays.stream(text.trim().split("[\\s,\\[\\]]+")).filter(s -> !s.isEmpty()).mapToInt(s -> {
                try {
                    return Integer.parseInt(s);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("not a token id: '" + s + "'");
                }
            }).toArray();
            for (int id : ids) {
                if (id < 0 || id >= tok.vocabSize()) {
                    throw new IllegalArgumentException("token id " + id + " outside [0, " + tok.vocabSize() + ")");
                }
            }
            System.out.println(tok.decode(ids));
            return 0;
        }
        int[] body = special ? tok.encodeWithSpecial(text) : tok.encode(text);
        int[] ids = body;
        if (bos && tok.bos() >= 0) {
            ids = new int[body.length + 1];
            ids[0] = tok.bos();
            System.arraycopy(body, 0, ids, 1, body.length);
        }
        if (pieces) {
            for (int id : ids) {
                System.out.println(id + "\t" + tok.tokenText(id));
            }
        } else {
            System.out.println(Arrays.toString(ids));
        }
        System.err.println(ids.length + " tokens");
        return 0;
    }
}

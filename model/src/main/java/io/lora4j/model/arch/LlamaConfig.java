package io.lora4j.model.arch;

/**
 * Hyper-parameters of a Llama 2/3 model, whatever file they came from.
 *
 * @param dim            model width C
 * @param hiddenDim      SwiGLU inner width
 * @param nLayers        transformer blocks L
 * @param nHeads         query heads NH
 * @param nKvHeads       key/value heads (GQA when < nHeads)
 * @param headSize       HS, usually dim / nHeads
 * @param vocabSize      V
 * @param contextLength  maximum positions
 * @param rmsEps         RMSNorm epsilon
 * @param ropeTheta      RoPE base frequency
 * @param ropeScaling    Llama-3 frequency scaling, or null
 * @param ropeStyle      which pairs RoPE rotates: adjacent (GGUF, llama2.c) or halves (HF)
 * @param tiedEmbeddings whether the output projection is the token embedding
 */
public record LlamaConfig(int dim, int hiddenDim, int nLayers, int nHeads, int nKvHeads, int headSize,
                          int vocabSize, int contextLength, float rmsEps, float ropeTheta,
                          RopeScaling ropeScaling, RopeStyle ropeStyle, boolean tiedEmbeddings) {

    /** Adjacent pairs (x0,x1),(x2,x3)… as llama.cpp's NORM rope; halves (x_i, x_{i+HS/2}) as HF / NEOX. */
    public enum RopeStyle { ADJACENT, HALVES }

    /** Llama-3 rope scaling ({@code rope_type: "llama3"}). */
    public record RopeScaling(float factor, float lowFreqFactor, float highFreqFactor, int originalContextLength) {
    }

    public int kvDim() {
        return nKvHeads * headSize;
    }

    public int qDim() {
        return nHeads * headSize;
    }
}

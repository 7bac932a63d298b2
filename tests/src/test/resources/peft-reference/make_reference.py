"""Reference outputs of real PEFT for lora4j's LoRA+, PiSSA/OLoRA and add_weighted_adapter tests.

Run from the repository root (torch 2.13 CPU, transformers 5.17, peft 0.21; see ../shared/tools/README.md):

    python3 -m venv /tmp/peftenv2
    /tmp/peftenv2/bin/pip install torch==2.13.0+cpu peft==0.21.0 transformers==5.17.0
    /tmp/peftenv2/bin/python tests/src/test/resources/peft-reference/make_reference.py ../shared/models/stories260K/stories260K.bin

With a second argument `dora` it rebuilds dora/ only. It rebuilds every file beside it but dora/lora4j_saved/, the adapter lora4j writes, which it reads; lora4j
writes it with (from the repository root, after `mvn -B -o test-compile`):

    java -cp "tests/target/test-classes:$(cat /tmp/cp.txt)" io.lora4j.tests.PeftDoraReferenceTest \
        tests/src/test/resources/peft-reference/dora/lora4j_saved
    # /tmp/cp.txt from: mvn -B -o -q -pl tests dependency:build-classpath -Dmdep.outputFile=/tmp/cp.txt

The base is stories260K (llama2.c's .bin, its Q and K rows permuted
from llama2.c's adjacent RoPE pairs to Hugging Face's halves), loaded into transformers' LlamaForCausalLM;
lora4j loads the same weights from stories260K.gguf. Nothing here is used at run time.

Files (tensor names are lora4j's: module path + ".lora_A" / ".lora_B" / ".lora_B.bias", "lm_head"):
  rng.safetensors              torch's CPU generator after torch.manual_seed(7): uniform_, randn (vectorised and
                               scalar paths), bernoulli
  loraplus.json                create_loraplus_optimizer's parameter groups (lr, weight_decay per tensor)
  loraplus.safetensors         values before, gradients and values after two AdamW steps of those groups
                               (the adapter tensors; lm_head's group is in the JSON only)
  init/<kind>/initial/         the adapter PiSSA / OLoRA initialised (saved before training, as PEFT's docs do)
  init/<kind>/converted/       the "trained" adapter saved with path_initial_model_for_weight_conversion
  init/<kind>/residual.safetensors  base weights PEFT left in two modules (the residual W - s*B0*A0)
  init/<kind>/greedy.json      greedy tokens from BOS of the converted adapter on the original base
  combine/inputs/{x,y,z}/      the adapters combined
  combine/<name>/              what add_weighted_adapter wrote, for the cases in combine/cases.json
  dora/peft_saved/             a DoRA adapter (r 4, alpha 8, all seven projections, A and B random, magnitudes
                               away from the row norms) as PEFT saves it
  dora/grads.safetensors       autograd's gradients of its lora_A, lora_B and lora_magnitude_vector for the mean
                               loss of dora/reference.json's tokens (Hugging Face row order)
  dora/logits.safetensors      the logits of those tokens, unmerged and after merge_and_unload
  dora/reference.json          the tokens, the loss, greedy tokens from BOS of the base, of peft_saved and of
                               lora4j_saved (loaded with PeftModel.from_pretrained, every tensor checked)
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from transformers import LlamaConfig, LlamaForCausalLM

import peft
from peft import LoraConfig, PeftModel, get_peft_model
from peft.optimizers import create_loraplus_optimizer

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "base_model.model."


def stories260k(path):
    """LlamaForCausalLM with the weights of llama2.c's stories260K.bin (output layer untied, equal to the embedding)."""
    with open(path, "rb") as f:
        dim, hidden, layers, heads, kv_heads, vocab, seq = struct.unpack("7i", f.read(28))
        data = np.frombuffer(f.read(), dtype=np.float32)
    shared = vocab > 0
    vocab = abs(vocab)
    hs = dim // heads
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.from_numpy(data[off:off + n].copy()).reshape(shape)
        off += n
        return t

    emb = take(vocab, dim)
    att_norm = take(layers, dim)
    wq = take(layers, dim, dim)
    wk = take(layers, kv_heads * hs, dim)
    wv = take(layers, kv_heads * hs, dim)
    wo = take(layers, dim, dim)
    ffn_norm = take(layers, dim)
    w1 = take(layers, hidden, dim)
    w2 = take(layers, dim, hidden)
    w3 = take(layers, hidden, dim)
    final_norm = take(dim)
    take(seq, hs // 2)
    take(seq, hs // 2)
    cls = emb if shared else take(vocab, dim)

    def to_hf(w, n_heads):  # llama2.c row h*HS + 2i + e  ->  HF row h*HS + e*HS/2 + i
        return w.view(n_heads, hs // 2, 2, w.shape[1]).transpose(1, 2).reshape(w.shape)

    cfg = LlamaConfig(vocab_size=vocab, hidden_size=dim, intermediate_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=seq,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1,
                      eos_token_id=2, attention_bias=False, mlp_bias=False)
    model = LlamaForCausalLM(cfg)
    sd = {"model.embed_tokens.weight": emb, "model.norm.weight": final_norm, "lm_head.weight": cls.clone()}
    for i in range(layers):
        p = f"model.layers.{i}."
        sd[p + "input_layernorm.weight"] = att_norm[i]
        sd[p + "post_attention_layernorm.weight"] = ffn_norm[i]
        sd[p + "self_attn.q_proj.weight"] = to_hf(wq[i], heads)
        sd[p + "self_attn.k_proj.weight"] = to_hf(wk[i], kv_heads)
        sd[p + "self_attn.v_proj.weight"] = wv[i]
        sd[p + "self_attn.o_proj.weight"] = wo[i]
        sd[p + "mlp.gate_proj.weight"] = w1[i]
        sd[p + "mlp.down_proj.weight"] = w2[i]
        sd[p + "mlp.up_proj.weight"] = w3[i]
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all("rotary" in k for k in missing), (missing, unexpected)
    return model.eval()


def lora4j_name(peft_name):
    """base_model.model.model.layers.0.self_attn.q_proj.lora_A.default.weight -> model.layers.0.self_attn.q_proj.lora_A"""
    n = peft_name[len(PREFIX):] if peft_name.startswith(PREFIX) else peft_name
    n = n.replace(".default", "")
    if ".modules_to_save" in n:
        return n.split(".modules_to_save")[0].split(".")[-1]  # lm_head / embed_tokens
    return n[:-len(".weight")] if n.endswith(".weight") else n


def fresh(path):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    return path


def rng():
    torch.manual_seed(7)
    t = {"uniform": torch.empty(20).uniform_(-1, 1),
         "randn_vector": torch.randn(37),  # normal_fill: 16 at a time, the tail recomputed from fresh draws
         "randn_scalar": torch.randn(5),  # under 16 elements: one double Box-Muller pair per two values
         "randn_scalar2": torch.randn(3),  # ... the cached second value used first
         "bernoulli": torch.bernoulli(torch.full((64,), 0.3))}
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(HERE, "rng.safetensors"))


def loraplus(base):
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], lora_bias=True,
                                            modules_to_save=["lm_head"], init_lora_weights=False))
    opt = create_loraplus_optimizer(model, torch.optim.AdamW, lr=2e-3, loraplus_lr_ratio=16.0,
                                    loraplus_weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8)
    group_of = {}
    for gi, g in enumerate(opt.param_groups):
        for p in g["params"]:
            group_of[id(p)] = (gi, g["lr"], g["weight_decay"])
    groups, tensors = {}, {}
    torch.manual_seed(0)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    for n, p in named:
        gi, lr, wd = group_of[id(p)]
        groups[lora4j_name(n)] = {"peft_name": n, "group": ["groupA", "embedding", "groupB", "groupB_no_decay"][gi],
                                  "lr": lr, "weight_decay": wd}
        with torch.no_grad():
            if "lora" in n:
                p.copy_(torch.randn_like(p) * 0.1)
        tensors[lora4j_name(n) + ".before"] = p.detach().clone()
    for step in (1, 2):
        for n, p in named:
            p.grad = torch.randn_like(p)
            tensors[lora4j_name(n) + f".grad{step}"] = p.grad.clone()
        opt.step()
        for n, p in named:
            tensors[lora4j_name(n) + f".after{step}"] = p.detach().clone()
    tensors = {k: v for k, v in tensors.items() if not k.startswith("lm_head.")}  # 128 KiB each; its group is in the JSON
    with open(os.path.join(HERE, "loraplus.json"), "w") as f:
        json.dump({"lr": 2e-3, "loraplus_lr_ratio": 16.0, "loraplus_weight_decay": 0.1, "betas": [0.9, 0.999],
                   "eps": 1e-8, "params": groups}, f, indent=1, sort_keys=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(HERE, "loraplus.safetensors"))


def greedy(model, n=24):
    with torch.no_grad():
        out = model.generate(torch.tensor([[1]]), max_new_tokens=n, do_sample=False, pad_token_id=0)
    return out[0].tolist()


INIT_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def inits(bin_path):
    for kind in ["pissa", "pissa_niter_2", "olora"]:
        d = fresh(os.path.join(HERE, "init", kind))
        base = stories260k(bin_path)
        torch.manual_seed(1234)
        cfg = LoraConfig(r=4, lora_alpha=8, target_modules=INIT_TARGETS, layers_to_transform=[0, 3],
                         init_lora_weights=kind)
        model = get_peft_model(base, cfg)
        model.save_pretrained(os.path.join(d, "initial"))
        residual = {}
        for name in ["model.layers.0.self_attn.k_proj", "model.layers.3.mlp.down_proj"]:
            residual[name] = model.base_model.model.get_submodule(name).base_layer.weight.detach().clone()
        save_file(residual, os.path.join(d, "residual.safetensors"))
        # "training": a fixed perturbation of every A and B, a fifth of each tensor's spread
        torch.manual_seed(99)
        with torch.no_grad():
            for n, p in model.named_parameters():
                if "lora_" in n:
                    p.add_(torch.randn_like(p) * 0.2 * p.std())
        model.save_pretrained(os.path.join(d, "converted"),
                              path_initial_model_for_weight_conversion=os.path.join(d, "initial"))
        plain = PeftModel.from_pretrained(stories260k(bin_path), os.path.join(d, "converted"))
        with open(os.path.join(d, "greedy.json"), "w") as f:
            json.dump({"tokens": greedy(plain), "pissa_on_residual": greedy(model)}, f)


def combine(bin_path):
    root = fresh(os.path.join(HERE, "combine"))
    base = stories260k(bin_path)
    torch.manual_seed(5)
    common = dict(layers_to_transform=[0, 2])
    # x keeps PEFT's default init_lora_weights=True (so a combination led by x re-initialises its new layers
    # with kaiming_uniform_, which moves torch's generator before DARE's masks) and gets a random B by hand
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], **common),
                           adapter_name="x")
    with torch.no_grad():
        for n, p in model.named_parameters():
            if ".lora_B.x." in n:
                p.copy_(torch.randn_like(p) * 0.1)
    model.add_adapter("y", LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj", "down_proj"],
                                      init_lora_weights=False, **common))
    model.add_adapter("z", LoraConfig(r=2, lora_alpha=2, target_modules=["q_proj", "k_proj", "v_proj", "down_proj"],
                                      init_lora_weights=False, **common))
    model.save_pretrained(os.path.join(root, "inputs"))  # inputs/x, inputs/y, inputs/z
    cases = [
        dict(name="linear", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="linear"),
        dict(name="linear_one", adapters=["z"], weights=[1.5], combination_type="svd"),  # one adapter: linear
        dict(name="cat", adapters=["x", "y", "z"], weights=[0.7, -0.4, 1.3], combination_type="cat"),
        dict(name="svd", adapters=["x", "y", "z"], weights=[0.7, -0.4, 1.3], combination_type="svd"),
        dict(name="svd_r3", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="svd", svd_rank=3),
        dict(name="svd_r3_clamp", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="svd", svd_rank=3,
             svd_clamp=0.9),
        dict(name="ties", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="ties", density=0.5),
        dict(name="ties_frequency", adapters=["x", "y"], weights=[0.7, 0.4], combination_type="ties", density=0.3,
             majority_sign_method="frequency"),
        dict(name="magnitude_prune", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="magnitude_prune",
             density=0.5),
        dict(name="dare_linear", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="dare_linear",
             density=0.6, seed=11),
        dict(name="dare_ties", adapters=["y", "x"], weights=[0.4, 0.7], combination_type="dare_ties", density=0.6,
             seed=12),
        dict(name="ties_svd", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="ties_svd", density=0.5),
        dict(name="dare_linear_svd", adapters=["x", "y"], weights=[0.7, -0.4], combination_type="dare_linear_svd",
             density=0.6, seed=13),
        dict(name="magnitude_prune_svd", adapters=["x", "y"], weights=[0.7, -0.4],
             combination_type="magnitude_prune_svd", density=0.5, svd_rank=2),
        dict(name="dare_ties_svd", adapters=["x", "y", "z"], weights=[0.7, -0.4, 1.3], combination_type="dare_ties_svd",
             density=0.5, svd_rank=3, seed=14),
    ]
    for c in cases:
        kw = {k: v for k, v in c.items() if k not in ("name", "seed")}
        if "seed" in c:
            torch.manual_seed(c["seed"])
        model.add_weighted_adapter(adapter_name=c["name"], **kw)
        model.save_pretrained(root, selected_adapters=[c["name"]])
    with open(os.path.join(root, "cases.json"), "w") as f:
        json.dump({"peft": peft.__version__, "torch": torch.__version__, "cases": cases}, f, indent=1)


def dora(bin_path):
    d = os.path.join(HERE, "dora")
    lora4j_saved = os.path.join(d, "lora4j_saved")
    if not os.path.exists(os.path.join(lora4j_saved, "adapter_model.safetensors")):
        sys.exit(lora4j_saved + " is missing: write it with lora4j first (see the docstring)")
    for f in ["peft_saved", "grads.safetensors", "logits.safetensors", "reference.json"]:
        p = os.path.join(d, f)
        if os.path.isdir(p):
            shutil.rmtree(p)
        elif os.path.exists(p):
            os.remove(p)
    out = {"greedy_base": greedy(stories260k(bin_path))}
    torch.manual_seed(21)
    cfg = LoraConfig(r=4, lora_alpha=8, target_modules=INIT_TARGETS, use_dora=True, init_lora_weights=False)
    model = get_peft_model(stories260k(bin_path), cfg)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.mul_(0.05)  # nn.Linear's init of a rank-4 input is U(-1/2, 1/2): keep the update moderate
            elif "lora_magnitude_vector" in n:
                p.mul_(1 + 0.05 * torch.randn_like(p))  # m away from ||W + s*B*A||, so that m / norm != 1
    model.save_pretrained(os.path.join(d, "peft_saved"))
    tokens = [1] + torch.randint(3, 512, (31,)).tolist()
    ids = torch.tensor([tokens])
    model.train()  # lora_dropout 0: the forward is eval's; the norm is detached as in any training step
    loss = model(ids, labels=ids).loss
    loss.backward()
    grads = {lora4j_name(n): p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    assert len(grads) == 3 * 7 * 5, len(grads)
    save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(d, "grads.safetensors"))
    out.update(tokens=tokens, loss=loss.item())
    model.eval()
    with torch.no_grad():
        unmerged = model(ids).logits[0]
    out["greedy_peft_saved"] = greedy(model)
    merged_model = model.merge_and_unload()
    with torch.no_grad():
        merged = merged_model(ids).logits[0]
    save_file({"unmerged": unmerged.contiguous(), "merged": merged.contiguous()}, os.path.join(d, "logits.safetensors"))
    # lora4j's adapter in PEFT: every tensor of the file is what the model holds
    theirs = PeftModel.from_pretrained(stories260k(bin_path), lora4j_saved)
    held = peft.get_peft_model_state_dict(theirs)
    want = load_file(os.path.join(lora4j_saved, "adapter_model.safetensors"))
    assert sorted(held) == sorted(want), (sorted(held)[:3], sorted(want)[:3])
    for k, v in want.items():
        assert torch.equal(held[k], v), k
    assert any(k.endswith("lora_magnitude_vector") for k in held)
    out["greedy_lora4j_saved"] = greedy(theirs)
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(out, f, indent=1)


def main():
    bin_path = sys.argv[1]
    if sys.argv[2:] == ["dora"]:
        dora(bin_path)
    else:
        rng()
        loraplus(stories260k(bin_path))
        inits(bin_path)
        combine(bin_path)
        dora(bin_path)
    for dirpath, _, files in os.walk(HERE):
        for f in files:
            if f == "README.md":
                os.remove(os.path.join(dirpath, f))  # PEFT's model cards: not needed


if __name__ == "__main__":
    main()

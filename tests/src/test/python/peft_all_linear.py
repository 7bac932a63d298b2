"""Interop of all-linear LoRA adapters with real PEFT (run by PeftInteropTest, tag slow).

usage: peft_all_linear.py BASE_HF_DIR LORA4J_ADAPTER_DIR PEFT_OUT_DIR N

Prints one JSON object: the N greedy tokens after BOS of the base with lora4j's adapter loaded by
PeftModel.from_pretrained ("lora4j_in_peft"), and of the base with an adapter PEFT itself makes with
target_modules="all-linear" (random A and B, saved to PEFT_OUT_DIR) ("peft"), with PEFT's saved
target_modules."""
import json, sys
import torch
from transformers import LlamaForCausalLM
from peft import LoraConfig, PeftModel, get_peft_model

base_dir, lora4j_dir, peft_dir, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
torch.manual_seed(0)


def greedy(model):
    ids = torch.tensor([[1]])
    with torch.no_grad():
        for _ in range(n):
            nxt = model(ids).logits[0, -1].argmax()
            ids = torch.cat([ids, nxt.view(1, 1)], dim=1)
    return ids[0, 1:].tolist()


def base():
    return LlamaForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32).eval()


ours = PeftModel.from_pretrained(base(), lora4j_dir).eval()
out = {"lora4j_in_peft": greedy(ours)}
theirs = get_peft_model(base(), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False))
theirs.eval()
out["peft"] = greedy(theirs)
theirs.save_pretrained(peft_dir)
out["peft_target_modules"] = sorted(json.load(open(peft_dir + "/adapter_config.json"))["target_modules"])
print(json.dumps(out))

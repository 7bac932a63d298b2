"""Writes the adapter_config.json that PEFT saves for target_modules="all-linear" on a random Llama of
1, 2 and 3 layers (7, 14 and 21 linear modules: PEFT shortens the list to suffixes from 20 on).
Run with the environment of ../shared/tools/README.md (torch 2.13 CPU, transformers 5.17, peft 0.21):
    /tmp/peftenv/bin/python make.py"""
import json, os
from transformers import LlamaConfig, LlamaForCausalLM
from peft import LoraConfig, get_peft_model

for layers in (1, 2, 3):
    cfg = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=layers, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=64)
    model = get_peft_model(LlamaForCausalLM(cfg), LoraConfig(r=2, target_modules="all-linear"))
    out = f"layers-{layers}"
    model.save_pretrained(out)
    os.remove(os.path.join(out, "adapter_model.safetensors"))
    os.remove(os.path.join(out, "README.md"))
    print(out, json.load(open(os.path.join(out, "adapter_config.json")))["target_modules"])

#!/usr/bin/env python3
"""embedc's CUDA backend beside sentence-transformers (torch, same GPU, same
corpus, same precision) in one run, with a correctness check of both against
each other. Every engine's time includes tokenization; token counts come from
one tokenizer so tokens/s are comparable.

    bench/peers_gpu.py [--model DIR] [--random-bert minilm|base|large] [--random-family gemma3|qwen3]
                       [--dtype f16|bf16] [--write-model DIR]
                       [--limit DOCS] [--batch 256] [--embedc build/host/embedc]

The model defaults to $EMBEDC_MODEL, else models/all-MiniLM-L6-v2.
--random-bert writes a randomly initialised BERT-base (or -large) with the
default model's tokenizer (or MiniLM's committed one in tests/data/tokenizer
where the default model is absent) into a temporary directory and benchmarks
that instead: MiniLM's 384-wide layers are too small to load a large GPU, a
BERT-base/large shows what the kernels do at the shapes of bge-base/large or
e5-large; `minilm` is all-MiniLM-L6-v2's shape (max length 256), the same
work per token as the real model where its weights cannot be brought.
--write-model DIR writes the random model to DIR and stops there.
--random-family writes a randomly initialised model of the shape of
EmbeddingGemma-300M (gemma3: 24 layers, hidden 768, 3 heads / 1 KV head of 256,
sliding window 512, mean pooling, Dense 768->3072->768, Normalize) or of
Qwen3-Embedding-0.6B (qwen3: 28 layers, hidden 1024, 16 / 8 heads of 128, q/k
norm, last-token pooling), with the small committed tokenizer of that family
(tests/data/tokenizer/): only the embedding table is smaller than the real
model's, which changes no FLOP per token. The check embeds the first 512 documents with both engines and
reports the worst per-vector cosine (embedc at --dtype vs torch in fp32).

Needs torch, sentence-transformers, transformers, numpy. Prints Markdown for
bench/RESULTS.md.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from peers import load_texts  # noqa: E402  (same corpus reader as the CPU peers)


def write_jsonl(path, texts):
    with open(path, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")


def make_random_bert(size, tokenizer_dir, out_dir, dtype):
    import torch
    from transformers import BertConfig, BertModel
    shapes = {"minilm": (384, 6, 12, 1536), "base": (768, 12, 12, 3072), "large": (1024, 24, 16, 4096)}
    h, layers, heads, ffn = shapes[size]
    if not os.path.exists(os.path.join(tokenizer_dir, "tokenizer.json")):
        tokenizer_dir = os.path.join(ROOT, "tests", "data", "tokenizer", "minilm")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=h, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=ffn, max_position_embeddings=512)
    model = BertModel(cfg, add_pooling_layer=False).eval()
    model.to(torch.float16 if dtype == "f16" else torch.bfloat16)
    model.save_pretrained(out_dir)  # safetensors
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if os.path.exists(os.path.join(tokenizer_dir, f)):
            shutil.copy(os.path.join(tokenizer_dir, f), out_dir)
    os.makedirs(os.path.join(out_dir, "1_Pooling"), exist_ok=True)
    os.makedirs(os.path.join(out_dir, "2_Normalize"), exist_ok=True)
    with open(os.path.join(out_dir, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": h, "pooling_mode_mean_tokens": True}, f)
    with open(os.path.join(out_dir, "modules.json"), "w") as f:
        json.dump([{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                   {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
                   {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}],
                  f)
    with open(os.path.join(out_dir, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": 256 if size == "minilm" else 512, "do_lower_case": False}, f)
    return "random BERT-%s (hidden %d, %d layers, %d heads)" % (size, h, layers, heads)


def st_modules(out_dir, h, pooling, dense=(), normalize=True, max_len=512):
    """sentence-transformers module files: Pooling, optional Dense chain, Normalize."""
    mods = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    os.makedirs(os.path.join(out_dir, "1_Pooling"), exist_ok=True)
    with open(os.path.join(out_dir, "1_Pooling", "config.json"), "w") as f:
        json.dump({"word_embedding_dimension": h, "pooling_mode_mean_tokens": pooling == "mean",
                   "pooling_mode_lasttoken": pooling == "lasttoken"}, f)
    for d in dense:
        path = "%d_Dense" % (len(mods))
        os.makedirs(os.path.join(out_dir, path), exist_ok=True)
        d.save(os.path.join(out_dir, path))
        mods.append({"idx": len(mods), "name": str(len(mods)), "path": path,
                     "type": "sentence_transformers.models.Dense"})
    if normalize:
        path = "%d_Normalize" % len(mods)
        os.makedirs(os.path.join(out_dir, path), exist_ok=True)
        mods.append({"idx": len(mods), "name": str(len(mods)), "path": path,
                     "type": "sentence_transformers.models.Normalize"})
    with open(os.path.join(out_dir, "modules.json"), "w") as f:
        json.dump(mods, f)
    with open(os.path.join(out_dir, "sentence_bert_config.json"), "w") as f:
        json.dump({"max_seq_length": max_len, "do_lower_case": False}, f)


def make_random_family(family, out_dir, dtype):
    import torch
    import transformers as tf
    from sentence_transformers import models
    torch.manual_seed(0)
    tok_dir = os.path.join(ROOT, "tests", "data", "tokenizer", {"gemma3": "gemma"}.get(family, family))
    tok = tf.PreTrainedTokenizerFast(tokenizer_file=os.path.join(tok_dir, "tokenizer.json"))
    vocab = len(tok)
    if family == "gemma3":
        tok.add_special_tokens({"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>"})
        h = 768
        cfg = tf.Gemma3TextConfig(vocab_size=vocab, hidden_size=h, intermediate_size=1152, num_hidden_layers=24,
                                  num_attention_heads=3, num_key_value_heads=1, head_dim=256,
                                  query_pre_attn_scalar=256, sliding_window=512, max_position_embeddings=2048,
                                  use_bidirectional_attention=True, rope_theta=1e6, rope_local_base_freq=1e4,
                                  pad_token_id=0, eos_token_id=1, bos_token_id=2)
        model = tf.Gemma3TextModel(cfg).eval()
        dense = [models.Dense(h, 4 * h, bias=False, activation_function=torch.nn.Identity()),
                 models.Dense(4 * h, h, bias=False, activation_function=torch.nn.Identity())]
        pooling, label = "mean", "random EmbeddingGemma-300M shape (gemma3_text, 24 layers, hidden 768, 3/1 heads of 256)"
    else:
        tok.add_special_tokens({"pad_token": "<|endoftext|>", "eos_token": "<|endoftext|>"})
        tok.padding_side = "left"
        h = 1024
        cfg = tf.Qwen3Config(vocab_size=vocab, hidden_size=h, intermediate_size=3072, num_hidden_layers=28,
                             num_attention_heads=16, num_key_value_heads=8, head_dim=128, rope_theta=1e6,
                             max_position_embeddings=32768, pad_token_id=vocab - 1)
        model = tf.Qwen3Model(cfg).eval()
        dense, pooling = [], "lasttoken"
        label = "random Qwen3-Embedding-0.6B shape (qwen3, 28 layers, hidden 1024, 16/8 heads of 128)"
    model.to(torch.float16 if dtype == "f16" else torch.bfloat16)
    model.save_pretrained(out_dir)
    tok.model_max_length = 512
    tok.save_pretrained(out_dir)
    st_modules(out_dir, h, pooling, dense)
    return label


def run_embedc(args, model, inp, tmp, fixed="none"):
    summary = os.path.join(tmp, "embedc.json")
    cmd = [args.embedc, "bench", "-m", model, "-i", inp, "--device", "cuda", "--dtype", args.dtype,
           "--fixed-lengths", fixed, "--corpus-copies", "1", "--summary-json", summary, "-q"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(summary) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.environ.get("EMBEDC_MODEL") or os.path.join(ROOT, "models", "all-MiniLM-L6-v2"))
    ap.add_argument("--random-bert", choices=["minilm", "base", "large"])
    ap.add_argument("--random-family", choices=["gemma3", "qwen3"])
    ap.add_argument("--input", default=os.path.join(ROOT, "tests", "data", "corpus", "texts.jsonl"))
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dtype", choices=["f16", "bf16"], default="f16")
    ap.add_argument("--fixed", default="128,512", help="fixed lengths also timed (comma list, or none)")
    ap.add_argument("--embedc", default=os.path.join(ROOT, "build", "host", "embedc"))
    ap.add_argument("--write-model", metavar="DIR", help="write the random model to DIR and stop")
    args = ap.parse_args()
    if args.write_model:
        if args.random_bert:
            print(make_random_bert(args.random_bert, args.model, args.write_model, args.dtype))
        elif args.random_family:
            print(make_random_family(args.random_family, args.write_model, args.dtype))
        else:
            ap.error("--write-model needs --random-bert or --random-family")
        return 0

    import numpy as np
    import torch
    from sentence_transformers import SentenceTransformer

    tmp = tempfile.mkdtemp(prefix="peers_gpu_")
    try:
        model_dir, label = args.model, os.path.basename(os.path.normpath(args.model))
        if args.random_bert:
            model_dir = os.path.join(tmp, "model")
            label = make_random_bert(args.random_bert, args.model, model_dir, args.dtype)
        elif args.random_family:
            model_dir = os.path.join(tmp, "model")
            label = make_random_family(args.random_family, model_dir, args.dtype)
        texts = load_texts(args.input, args.limit)
        inp = os.path.join(tmp, "input.jsonl")
        write_jsonl(inp, texts)
        tdt = torch.float16 if args.dtype == "f16" else torch.bfloat16

        st = SentenceTransformer(model_dir, device="cuda")
        max_len = st.max_seq_length
        ntok = sum(len(x) for x in st.tokenizer(texts, truncation=True, max_length=max_len)["input_ids"])

        # Correctness: embedc (args.dtype) against torch fp32 on the first 512 documents.
        check = texts[:512]
        cin = os.path.join(tmp, "check.jsonl")
        write_jsonl(cin, check)
        cout = os.path.join(tmp, "check.npy")
        subprocess.run([args.embedc, "encode", "-m", model_dir, "-i", cin, "-o", cout, "--device", "cuda",
                        "--dtype", args.dtype, "-q"], check=True)
        got = np.load(cout).astype(np.float64)
        st.float()
        want = st.encode(check, batch_size=64, convert_to_numpy=True).astype(np.float64)
        cos = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
        worst = float(cos.min())

        # Throughput: the corpus mix, then fixed lengths.
        st.to(tdt)
        rows = []
        workloads = [("corpus mix", texts, ntok)]
        for L in ([] if args.fixed == "none" else [int(x) for x in args.fixed.split(",")]):
            doc = " ".join(["hello"] * (L - 2))
            n = max(8, (1 << 21) // L)
            workloads.append(("fixed %d" % L, [doc] * n, n * min(L, max_len)))
        for name, wtexts, wtok in workloads:
            st.encode(wtexts[:args.batch * 2], batch_size=args.batch)
            torch.cuda.synchronize()
            best = float("inf")
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                st.encode(wtexts, batch_size=args.batch, show_progress_bar=False)
                torch.cuda.synchronize()
                best = min(best, time.perf_counter() - t0)
            if name == "corpus mix":
                ej = run_embedc(args, model_dir, inp, tmp)["workloads"][0]
            else:
                ej = run_embedc(args, model_dir, inp, tmp, fixed=name.split()[1])["workloads"][1]
            e_tps = ej["tokens_per_second"]
            rows.append((name, len(wtexts), wtok, ej["seconds"], e_tps, ej["mfu"], best, wtok / best))

        gpu = torch.cuda.get_device_name(0)
        print("model: %s; GPU: %s; dtype %s; torch %s, sentence-transformers batch %d; %s, %d cores"
              % (label, gpu, args.dtype, torch.__version__, args.batch, platform.machine(), os.cpu_count()))
        print("check: first %d documents, embedc %s vs sentence-transformers fp32 on the GPU: worst cos %.6f"
              % (len(check), args.dtype, worst))
        print()
        print("| workload | docs | tokens | embedc s | embedc tok/s | embedc MFU | s-t s | s-t tok/s | embedc / s-t |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name, n, wtok, es, etps, mfu, ss, stps in rows:
            print("| %s | %d | %d | %.3f | %s | %.1f%% | %.3f | %s | %.2fx |"
                  % (name, n, wtok, es, f"{etps:,.0f}", 100 * mfu, ss, f"{stps:,.0f}", etps / stps))
        return 0 if worst >= 0.999 else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

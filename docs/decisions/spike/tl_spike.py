"""Spike: TransformerLens 3.9 HookedTransformer vs 4.x TransformerBridge on this book's workload.

Run in a venv with one TransformerLens version installed:  python tl_spike.py
Workload: a 2-layer attention-only model (d_model 128, 4 heads, vocab 2048, n_ctx 256), as the
induction chapter uses it: training steps (batch 16 x 128 tokens, forward+backward), and the
chapter's analysis calls (run_with_cache on batch 10 x 101 tokens, hooks on all patterns).
"""
import statistics
import time

import torch
import transformer_lens as tl

torch.manual_seed(0)
torch.set_num_threads(2)
CFG = dict(n_layers=2, d_model=128, n_heads=4, d_head=32, d_vocab=2048, n_ctx=256,
           attn_only=True, normalization_type=None, act_fn="gelu", seed=0)

from importlib.metadata import version as _v
if int(_v("transformer-lens").split(".")[0]) < 4:
    version = "3.x HookedTransformer"
    model = tl.HookedTransformer(tl.HookedTransformerConfig(**CFG))
else:
    version = "4.x TransformerBridge (boot_native)"
    model = tl.TransformerBridge.boot_native(dict(CFG))


def median_ms(fn, reps=20):
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


train_tokens = torch.randint(0, 2048, (16, 128))
def train_step():
    loss = model(train_tokens, return_type="loss"); loss.backward()

rep_tokens = torch.randint(0, 2048, (10, 101))
def cache_call():
    with torch.no_grad():
        model.run_with_cache(rep_tokens)

def hook_call():
    store = []
    with torch.no_grad():
        model.run_with_hooks(rep_tokens, return_type=None, fwd_hooks=[
            (lambda n: n.endswith("pattern"), lambda p, hook: store.append(p.mean()))])

print(version)
print(f"train step fwd+bwd b16x128: {median_ms(train_step):.1f} ms")
print(f"run_with_cache b10x101:     {median_ms(cache_call):.1f} ms")
print(f"run_with_hooks b10x101:     {median_ms(hook_call):.1f} ms")
_, cache = model.run_with_cache(rep_tokens)
print("cache keys sample:", list(cache.keys())[:6])
print("W_Q shape", tuple(model.W_Q.shape), "OV type", type(model.OV).__name__)

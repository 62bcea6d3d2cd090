#!/usr/bin/env python3
"""train_peer.py - the PyTorch peer of smoe's trainer: the same Mixtral-style MoE model,
optimizer, schedule, initialisation and batches, for speed and loss-curve comparisons.

A benchmark/reference tool only (bench/), never part of smoe. Run it with the Python
that has torch (Debian: /usr/bin/python3 with python3-torch; see bench/README.md).

Model (as src/train/tforward.c):
  h = token_embd[tokens]
  per layer:  h += Wo . Attn(RoPE(Wq x), RoPE(Wk x), Wv x)     x = RMSNorm(h) * attn_norm
              h += MoE(x)                                       x = RMSNorm(h) * ffn_norm
  logits = output . (RMSNorm(h) * output_norm);  loss = mean cross-entropy
Attention: H query heads, Hkv kv heads, query head h reads kv head h // (H / Hkv), RoPE on
adjacent pairs (2i, 2i+1) by angle pos * base^(-2i/Dh), causal, scale 1/sqrt(Dh).
MoE (Mixtral): logits = W_r x (E rows, no bias), the top-k logits, softmax over those k,
y = sum_j w_j down_e(silu(gate_e x) * up_e x). Experts run grouped: the N*k assignments are
sorted by expert, gathered with index_select, each expert is one matmul over its tokens,
and the weighted outputs go back with index_add (HF Mixtral's per-expert loop, without
its per-expert torch.where).
Optimizer (as src/train/optim.c): torch.optim.AdamW(lr(s), (b1, b2), eps, weight_decay) on
every parameter, gradient-norm clipping (scale max/norm when norm > max), lr warm-up then
cosine to min_lr. Init (as src/train/trainer.c): N(0, std) matrices, attn_output and
ffn_down N(0, std/sqrt(2L)), norms 1; `--init smoe` (the default) draws exactly smoe's
numbers (splitmix64 + Box-Muller in the parameter order of src/train/tmodel.c), so with
the same seed both tools start from the same weights; `--init torch` uses torch's RNG.
Batches (as src/train/data.c, docs/training.md "Tokenizer and data"): window starts from
the counter-based splitmix64 stream of (seed, step, split).

Modes:
  --bench            random tokens; one warm-up step, then the median of -r full steps;
                     prints one JSON line (tokens/s, peak RSS).
  --train DATA.bin   train on a smoe token file; JSON lines per step like `smoe train`
                     (to stdout and to --log FILE), "val_loss" on eval steps.
  --batches DATA.bin print the window starts (and a token hash) of --steps training
                     batches and --eval-batches validation batches, for checking the
                     sampler against smoe_data_batch.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time


def parse_args(argv):
    p = argparse.ArgumentParser(description="PyTorch peer of smoe's trainer (bench/README.md)")
    m = p.add_mutually_exclusive_group(required=True)
    m.add_argument("--bench", action="store_true", help="measure training tokens/s on random tokens")
    m.add_argument("--train", metavar="DATA", help="train on a smoe token file (smoe prepare-data)")
    m.add_argument("--batches", metavar="DATA", help="print the batch windows of a token file (sampler check)")
    # model (defaults: the "train-s")
    p.add_argument("--vocab", type=int, default=4096, help="vocabulary (bench; --train takes the file's)")
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=8)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--ffn", type=int, default=512, help="hidden size of each expert")
    p.add_argument("--experts", type=int, default=8)
    p.add_argument("--top-k", type=int, default=2)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--rope-base", type=float, default=10000.0)
    p.add_argument("--norm-eps", type=float, default=1e-5)
    p.add_argument("--init-std", type=float, default=0.02)
    p.add_argument("--init", choices=["smoe", "torch"], default="smoe",
                   help="smoe: smoe's exact initial weights for --seed; torch: torch's RNG")
    # run
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-r", "--runs", type=int, default=5, help="timed steps of --bench")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=None, help="default lr/10, as smoe train")
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--beta1", type=float, default=0.9)
    p.add_argument("--beta2", type=float, default=0.95)
    p.add_argument("--eps", type=float, default=1e-8)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clip, 0 = off")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=8)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--log", metavar="FILE", help="--train: also write the JSON lines here")
    p.add_argument("--foreach", choices=["auto", "on", "off"], default="on",
                   help="AdamW's multi-tensor implementation (on: torch's foreach kernels)")
    p.add_argument("--blas", choices=["auto", "system"], default="auto",
                   help="auto: Debian's OpenMP build of OpenBLAS when installed; "
                        "system: whatever libblas.so.3 resolves to")
    p.add_argument("-q", "--quiet", action="store_true")
    a = p.parse_args(argv)
    return a


ARGS = parse_args(sys.argv[1:])
# the BLAS threads: OpenBLAS reads these when it loads, before torch is imported
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = str(ARGS.threads)


def openblas_openmp_dir():
    """Debian's OpenMP build of OpenBLAS (package libopenblas0-openmp), if installed."""
    for d in ("/usr/lib/x86_64-linux-gnu/openblas-openmp", "/usr/lib/aarch64-linux-gnu/openblas-openmp"):
        if os.path.exists(os.path.join(d, "libblas.so.3")):
            return d
    return None


# Debian's torch links the libblas.so.3 alternative, OpenBLAS's pthread build by default.
# Its worker threads and torch's OpenMP threads (which spin after each parallel region)
# then fight over the cores: with 2 threads on 2 cores a step runs several times slower
# than with one thread. The OpenMP build of the same OpenBLAS shares torch's thread pool,
# so --blas auto re-runs this script with it first on the library path when it is there.
if ARGS.blas == "auto" and os.environ.get("SMOE_PEER_BLAS_SET") != "1":
    d = openblas_openmp_dir()
    if d:
        os.environ["SMOE_PEER_BLAS_SET"] = "1"
        os.environ["LD_LIBRARY_PATH"] = d + (":" + os.environ["LD_LIBRARY_PATH"] if os.environ.get("LD_LIBRARY_PATH")
                                             else "")
        os.execv(sys.executable, [sys.executable] + sys.argv)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

M64 = (1 << 64) - 1
GOLD = 0x9E3779B97F4A7C15


# ---------------------------------------------------------------- smoe's RNGs (data.c, trainer.c)

def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class DataRng:
    """smoe_data_rng: splitmix64 whose state starts at mix64(seed ^ mix64(2 step + val))."""

    def __init__(self, seed, step, val):
        self.state = mix64((seed & M64) ^ mix64((2 * step + (1 if val else 0)) & M64))

    def next(self):
        self.state = (self.state + GOLD) & M64
        return mix64(self.state)

    def below(self, n):
        threshold = (1 << 64) % n  # (0 - n) % n in uint64
        while True:
            x = self.next()
            if x >= threshold:
                return x % n


def smoe_normals(seed, first_call, n, std):
    """float32(std * normal) for n draws of smoe's init stream (trainer.c: normal()), where
    the stream has made first_call splitmix calls already; each normal uses two calls."""
    k = np.arange(first_call + 1, first_call + 2 * n + 1, dtype=np.uint64)
    z = np.uint64(seed & M64) + k * np.uint64(GOLD)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    z = (z >> np.uint64(11)).reshape(n, 2)
    u1 = (z[:, 0] + np.uint64(1)).astype(np.float64) * 2.0 ** -53
    u2 = z[:, 1].astype(np.float64) * 2.0 ** -53
    return (std * (np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * math.pi * u2))).astype(np.float32)


# ---------------------------------------------------------------- token files (data.c)

class TokenFile:
    """A smoe token file: 64-byte header, then uint16/uint32 tokens; [0, n_train) is the
    training split, the rest validation."""

    def __init__(self, path):
        with open(path, "rb") as f:
            head = f.read(64)
        if len(head) < 64 or head[:8] != b"SMOETOKS":
            raise SystemExit(f"{path}: not a smoe token file")
        (self.version, self.token_bytes, self.n_vocab, self.flags, self.n_tokens, self.n_train, self.checksum,
         self.fingerprint, self.split_seed) = struct.unpack("<IIIIQQQQQ", head[8:64])
        if self.version != 1 or self.token_bytes not in (2, 4):
            raise SystemExit(f"{path}: unsupported version {self.version} / {self.token_bytes} bytes per token")
        size = os.path.getsize(path)
        if size != 64 + self.n_tokens * self.token_bytes or self.n_train > self.n_tokens:
            raise SystemExit(f"{path}: size {size} does not match the header (truncated or damaged)")
        dt = np.dtype("<u2") if self.token_bytes == 2 else np.dtype("<u4")
        self.tok = np.memmap(path, dtype=dt, mode="r", offset=64, shape=(self.n_tokens,))
        self.n_val = self.n_tokens - self.n_train

    def starts(self, val, seed, step, batch, seq):
        n = self.n_val if val else self.n_train
        if n < seq + 1:
            raise SystemExit(f"the {'validation' if val else 'training'} split has {n} tokens, "
                             f"fewer than seq + 1 = {seq + 1}")
        r = DataRng(seed, step, val)
        return [r.below(n - seq) for _ in range(batch)]

    def batch(self, val, seed, step, batch, seq):
        """(tokens, targets) as int64 [batch][seq], the windows smoe_data_batch draws."""
        base = self.n_train if val else 0
        st = self.starts(val, seed, step, batch, seq)
        w = np.stack([np.asarray(self.tok[base + s: base + s + seq + 1], dtype=np.int64) for s in st])
        return torch.from_numpy(w[:, :-1].copy()), torch.from_numpy(w[:, 1:].copy()), st


# ---------------------------------------------------------------- the model

class Peer(torch.nn.Module):
    """Parameters keep smoe's shapes (row-major [out][in]); q/k/v are one [Dq+2Dkv][D]
    matrix and each expert's gate and up one [2F][D] matrix, so each is one matmul."""

    def __init__(self, a, vocab):
        super().__init__()
        self.V, self.D, self.L, self.H, self.Hkv = vocab, a.dim, a.layers, a.heads, a.kv_heads
        self.Dh, self.F, self.E, self.K = a.dim // a.heads, a.ffn, a.experts, a.top_k
        if a.dim % a.heads or a.heads % a.kv_heads or self.Dh % 2 or not 1 <= a.top_k <= a.experts:
            raise SystemExit("bad shape: dim % heads, heads % kv-heads, head size even, 1 <= top-k <= experts")
        self.eps = a.norm_eps
        D, Dq, Dkv, F_, E = self.D, self.H * self.Dh, self.Hkv * self.Dh, self.F, self.E
        P = torch.nn.Parameter
        self.tok_embd = P(torch.empty(vocab, D))
        self.attn_norm = torch.nn.ParameterList([P(torch.ones(D)) for _ in range(self.L)])
        self.wqkv = torch.nn.ParameterList([P(torch.empty(Dq + 2 * Dkv, D)) for _ in range(self.L)])
        self.wo = torch.nn.ParameterList([P(torch.empty(D, Dq)) for _ in range(self.L)])
        self.ffn_norm = torch.nn.ParameterList([P(torch.ones(D)) for _ in range(self.L)])
        self.router = torch.nn.ParameterList([P(torch.empty(E, D)) for _ in range(self.L)])
        self.w13 = torch.nn.ParameterList([P(torch.empty(E, 2 * F_, D)) for _ in range(self.L)])
        self.w2 = torch.nn.ParameterList([P(torch.empty(E, D, F_)) for _ in range(self.L)])
        self.output_norm = P(torch.ones(D))
        self.output = P(torch.empty(vocab, D))
        self.rope_base = a.rope_base
        self._rope = {}

    # -- initialisation

    def views_in_smoe_order(self):
        """(tensor view, is_norm, is_residual_out) in the order of smoe's parameter block."""
        Dq, Dkv, F_ = self.H * self.Dh, self.Hkv * self.Dh, self.F
        out = [(self.tok_embd, False, False)]
        for l in range(self.L):
            qkv, w13 = self.wqkv[l], self.w13[l]
            out += [(self.attn_norm[l], True, False), (qkv[:Dq], False, False), (qkv[Dq:Dq + Dkv], False, False),
                    (qkv[Dq + Dkv:], False, False), (self.wo[l], False, True), (self.ffn_norm[l], True, False),
                    (self.router[l], False, False), (w13[:, :F_], False, False), (w13[:, F_:], False, False),
                    (self.w2[l], False, True)]
        out += [(self.output_norm, True, False), (self.output, False, False)]
        return out

    @torch.no_grad()
    def init_weights(self, how, seed, init_std):
        std0 = float(np.float32(init_std))  # smoe keeps init_std as a float
        calls = 0
        if how == "torch":
            torch.manual_seed(seed)
        for t, is_norm, resid in self.views_in_smoe_order():
            std = std0 / math.sqrt(2.0 * self.L) if resid else std0
            if is_norm:
                t.fill_(1.0)
            elif how == "torch":
                t.normal_(0.0, std)
            else:
                n = t.numel()
                t.copy_(torch.from_numpy(smoe_normals(seed, calls, n, std)).view(t.shape))
                calls += 2 * n

    # -- forward

    def rope(self, T):
        r = self._rope.get(T)
        if r is None:  # as tops_rope_table: angles in double, cos/sin rounded to float
            i = np.arange(self.Dh // 2, dtype=np.float64)
            ang = np.arange(T, dtype=np.float64)[:, None] * np.power(float(np.float32(self.rope_base)),
                                                                       -2.0 * i / self.Dh)[None, :]
            r = torch.complex(torch.from_numpy(np.cos(ang).astype(np.float32)),
                              torch.from_numpy(np.sin(ang).astype(np.float32)))  # [T][Dh/2]
            self._rope[T] = r
        return r

    def rmsnorm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * w

    def attention(self, x, l, mask, freqs):
        B, T, _ = x.shape
        H, Hkv, Dh = self.H, self.Hkv, self.Dh
        qkv = F.linear(x, self.wqkv[l])
        q, k, v = qkv.split([H * Dh, Hkv * Dh, Hkv * Dh], dim=-1)
        # RoPE on adjacent pairs = multiplication by e^(i angle) of (x[2i] + i x[2i+1])
        q = torch.view_as_real(torch.view_as_complex(q.reshape(B, T, H, Dh // 2, 2)) * freqs).reshape(B, T, H, Dh)
        k = torch.view_as_real(torch.view_as_complex(k.reshape(B, T, Hkv, Dh // 2, 2)) * freqs).reshape(B, T, Hkv, Dh)
        # grouped-query attention without copying k and v: the G = H/Hkv query heads of kv
        # head g are rows g*G .. g*G+G-1, stacked as [B][Hkv][G*T][Dh]
        G = H // Hkv
        q = (q * (1.0 / math.sqrt(Dh))).permute(0, 2, 1, 3).reshape(B * Hkv, G * T, Dh)
        k = k.permute(0, 2, 3, 1).reshape(B * Hkv, Dh, T)
        v = v.reshape(B, T, Hkv, Dh).permute(0, 2, 1, 3).reshape(B * Hkv, T, Dh)
        # causal mask as an additive -inf bias (baddbmm): unlike masked_fill, no backward pass
        s = torch.baddbmm(mask, q, k)                                        # [B*Hkv][G*T][T]
        o = torch.bmm(torch.softmax(s, dim=-1), v)                           # [B*Hkv][G*T][Dh]
        o = o.view(B, H, T, Dh).permute(0, 2, 1, 3).reshape(B, T, H * Dh)
        return F.linear(o, self.wo[l])

    def moe(self, x, l):
        N, D, F_, E, K = x.shape[0], self.D, self.F, self.E, self.K
        logits = F.linear(x, self.router[l])                                 # [N][E]
        top_v, top_i = torch.topk(logits, K, dim=-1)                         # [N][K]
        gate = torch.softmax(top_v, dim=-1).reshape(-1)                      # [N*K]
        ids, order = torch.sort(top_i.reshape(-1), stable=True)              # assignments by expert
        counts = torch.bincount(ids, minlength=E).tolist()
        tok = torch.div(order, K, rounding_mode="floor")                     # token of each assignment
        xs = x.index_select(0, tok).split(counts)                            # [N*K][D] by expert
        ys = []
        w13, w2 = self.w13[l].unbind(0), self.w2[l].unbind(0)  # (indexing's backward: a full-size zero tensor each)
        for e in range(E):  # split, not slicing: a slice's backward would fill a full-size zero tensor
            if counts[e] == 0:
                continue
            g, u = F.linear(xs[e], w13[e]).split(F_, dim=-1)                 # [m][F] each
            ys.append(F.linear(F.silu(g) * u, w2[e]))                         # [m][D]
        y = torch.cat(ys) * gate.index_select(0, order).unsqueeze(1)
        return torch.zeros(N, D, dtype=x.dtype).index_add(0, tok, y)

    def forward(self, tokens, targets):
        B, T = tokens.shape
        mask = torch.full((T, T), float("-inf")).triu(1).repeat(self.H // self.Hkv, 1)  # [G*T][T]
        freqs = self.rope(T).view(1, T, 1, self.Dh // 2)
        h = F.embedding(tokens, self.tok_embd)                               # [B][T][D]
        for l in range(self.L):
            h = h + self.attention(self.rmsnorm(h, self.attn_norm[l]), l, mask, freqs)
            x = self.rmsnorm(h, self.ffn_norm[l]).reshape(B * T, self.D)
            h = h + self.moe(x, l).view(B, T, self.D)
        logits = F.linear(self.rmsnorm(h, self.output_norm), self.output)    # [B][T][V]
        return F.cross_entropy(logits.view(B * T, self.V), targets.reshape(B * T))


# ---------------------------------------------------------------- optimizer step

def lr_at(a, s):
    """src/train/optim.c smoe_lr_at (s is 1-based), rounded to float32 as smoe's is."""
    f32 = np.float32
    lr, min_lr = f32(a.lr), f32(a.min_lr)
    if a.warmup > 0 and s <= a.warmup:
        return float(lr * f32(s) / f32(a.warmup))
    if a.steps <= a.warmup:
        return float(lr)
    t = min(1.0, (s - a.warmup) / (a.steps - a.warmup))
    return float(f32(float(min_lr) + 0.5 * (float(lr) - float(min_lr)) * (1.0 + math.cos(math.pi * t))))


class Trainer:
    def __init__(self, a, vocab):
        self.a = a
        self.model = Peer(a, vocab)
        self.model.init_weights(a.init, a.seed, a.init_std)
        self.params = list(self.model.parameters())
        kw = {} if a.foreach == "auto" else {"foreach": a.foreach == "on"}
        self.opt = torch.optim.AdamW(self.params, lr=a.lr, betas=(a.beta1, a.beta2), eps=a.eps,
                                     weight_decay=a.weight_decay, **kw)
        self.step_count = 0

    def n_params(self):
        return sum(p.numel() for p in self.params)

    def step(self, tokens, targets):
        """One optimizer step; returns (loss, lr, grad norm before clipping)."""
        self.opt.zero_grad(set_to_none=True)
        loss = self.model(tokens, targets)
        loss.backward()
        grads = [p.grad for p in self.params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])).item()
        if not math.isfinite(norm):
            raise SystemExit(f"step {self.step_count + 1}: the gradient is not finite")
        if self.a.clip > 0 and norm > self.a.clip:  # as smoe_grad_clip: scale max/norm
            torch._foreach_mul_(grads, self.a.clip / norm)
        self.step_count += 1
        lr = lr_at(self.a, self.step_count)
        for g in self.opt.param_groups:
            g["lr"] = lr
        self.opt.step()
        return loss.item(), lr, norm

    @torch.no_grad()
    def eval(self, tokens, targets):
        return self.model(tokens, targets).item()


# ---------------------------------------------------------------- modes

def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def torch_version():
    """The Debian package's version when torch comes from it (its __version__ says 1.13.0a0)."""
    try:
        import subprocess
        v = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "python3-torch"], capture_output=True, text=True,
                           timeout=10).stdout.strip()
        if v and torch.__file__.startswith("/usr/lib/python3/"):
            return v
    except (OSError, subprocess.SubprocessError):
        pass
    return torch.__version__


def blas_info():
    """The BLAS library this process loaded, with OpenBLAS's own description."""
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if len(line.split()) >= 6 else ""
            name = os.path.basename(path)
            if name.startswith(("libblas.so", "libopenblas", "libmkl_rt", "libblis")):
                libs.add(os.path.realpath(path))
    info = {"blas_lib": " ".join(sorted(libs)) or "none"}
    try:
        import ctypes
        lib = ctypes.CDLL(sorted(libs)[0])
        lib.openblas_get_config.restype = ctypes.c_char_p
        info["blas"] = lib.openblas_get_config().decode().strip()
        info["blas_threads"] = lib.openblas_get_num_threads()
    except (OSError, AttributeError, IndexError):
        pass
    return info


def flop_per_token(a, vocab):
    """Training FLOPs per token: 6 x the matmul weights one token uses (q, k, v, o, router,
    k experts' gate/up/down, the output head; the embedding is a lookup) + attention,
    12 L T Dq (QK^T and PV, 2 T Dq each forward, x3 for training, the causal half not
    subtracted), as in the PaLM paper's appendix B."""
    D, Dh = a.dim, a.dim // a.heads
    Dq, Dkv = a.heads * Dh, a.kv_heads * Dh
    per_layer = D * Dq + 2 * D * Dkv + Dq * D + D * a.experts + a.top_k * 3 * D * a.ffn
    return 6 * (a.layers * per_layer + vocab * D) + 12 * a.layers * a.seq * Dq


def run_bench(a):
    tr = Trainer(a, a.vocab)
    BT = a.batch * a.seq
    # random ids as bench_train.c draws them (an LCG), tokens = ids[0:BT], targets = ids[1:BT+1]
    s, ids = 42, []
    for _ in range(BT + 1):
        s = (s * 6364136223846793005 + 1442695040888963407) & M64
        ids.append((s >> 33) % a.vocab)
    ids = torch.tensor(ids, dtype=torch.int64)
    tokens, targets = ids[:BT].view(a.batch, a.seq), ids[1:].view(a.batch, a.seq)
    times = []
    for r in range(-1, a.runs):
        t0 = time.perf_counter()
        loss, _, _ = tr.step(tokens, targets)
        if r >= 0:
            times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    out = {"peer": "pytorch", "torch": torch_version(), "threads": torch.get_num_threads(), "params": tr.n_params(),
           "tokens_per_step": BT, "step_s": round(med, 4), "tokens_per_s": round(BT / med, 1),
           "peak_rss_mib": round(peak_rss_mib(), 1), "loss": round(loss, 4),
           "flop_per_token": flop_per_token(a, a.vocab), "gflop_per_s": round(flop_per_token(a, a.vocab) * BT / med / 1e9, 2)}
    out.update(blas_info())
    print(json.dumps(out), flush=True)


def run_train(a):
    data = TokenFile(a.train)
    tr = Trainer(a, data.n_vocab)
    BT = a.batch * a.seq
    logf = open(a.log, "w") if a.log else None
    if not a.quiet:
        print(f"train_peer: {tr.n_params()} parameters, torch {torch.__version__}, {torch.get_num_threads()} threads, "
              f"{a.batch} x {a.seq} tokens per step, {data.n_train} train / {data.n_val} validation tokens",
              file=sys.stderr)
    t_start = time.perf_counter()
    for step in range(1, a.steps + 1):
        tokens, targets, _ = data.batch(False, a.seed, step, a.batch, a.seq)
        t0 = time.perf_counter()
        loss, lr, norm = tr.step(tokens, targets)
        tps = BT / (time.perf_counter() - t0)
        if not math.isfinite(loss):
            raise SystemExit(f"step {step}: the loss is not finite (training diverged; lower --lr)")
        line = (f'{{"step": {step}, "loss": {loss:.6f}, "ce": {loss:.6f}, "lr": {lr:.6g}, '
                f'"grad_norm": {norm:.4f}, "tokens_per_s": {tps:.1f}')
        if step % a.eval_every == 0 or step == a.steps:
            val = sum(tr.eval(*data.batch(True, a.seed, b, a.batch, a.seq)[:2]) for b in range(a.eval_batches))
            line += f', "val_loss": {val / a.eval_batches:.6f}'
        line += "}"
        print(line, flush=True)
        if logf:
            logf.write(line + "\n")
            logf.flush()
    if logf:
        logf.close()
    if not a.quiet:
        print(f"train_peer: done in {time.perf_counter() - t_start:.1f} s", file=sys.stderr)


def run_batches(a):
    """Window starts and an FNV-1a 64 hash of (tokens, targets) as little-endian int32, per
    batch: steps 1..--steps of the training split, then 0..--eval-batches-1 of validation."""
    data = TokenFile(a.batches)

    def fnv(arr):
        h = 0xCBF29CE484222325
        for b in arr.astype("<i4").tobytes():
            h = ((h ^ b) * 0x100000001B3) & M64
        return h

    for val, steps in ((False, range(1, a.steps + 1)), (True, range(a.eval_batches))):
        for s in steps:
            x, y, st = data.batch(val, a.seed, s, a.batch, a.seq)
            h = fnv(np.concatenate([x.numpy().ravel(), y.numpy().ravel()]))
            print(f"{'val' if val else 'train'} {s} {' '.join(map(str, st))} {h:016x}")


def main(a):
    torch.set_num_threads(a.threads)
    if a.min_lr is None:  # as smoe train: lr / 10 in float
        a.min_lr = float(np.float32(np.float32(a.lr) / np.float32(10)))
    if a.bench:
        run_bench(a)
    elif a.train:
        run_train(a)
    else:
        run_batches(a)


if __name__ == "__main__":
    main(ARGS)

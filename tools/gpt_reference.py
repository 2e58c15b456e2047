#!/usr/bin/python3
"""Writes tests/fixtures/gpt_reference.json: golden values for one training step of a tiny GPT in
PyTorch 1.13 (float64), so lathe's GPT (include/lathe/gpt.h, src/nn/gpt.cpp) is checked against an
independent implementation without needing PyTorch at test time.

  /usr/bin/python3 tools/gpt_reference.py tests/fixtures/gpt_reference.json
  (Debian python3-torch: scripts/setup.sh --torch; the path defaults to the one shown)

The model is exactly the architecture of ../shared/reference/torch_gpt.py (Block and GPT copied
below; forward also returns the logits): pre-LayerNorm blocks (LayerNorm eps 1e-5), qkv = Linear(C,
3C) split into q, k, v in that order, heads = view(B, T, H, C/H).transpose(1, 2), causal mask cropped
to T, softmax(q k^T / sqrt(C/H)), proj, an MLP fc (C -> 4C), GELU (tanh approximation), fcproj
(4C -> C), the final LayerNorm lnf, logits = lnf(x) @ wte.weight^T (head tied to the token
embedding), mean cross-entropy over all B*T positions. Parameter names are that module's
named_parameters() (wte.weight, wpe.weight, blocks.{i}.ln1.weight, blocks.{i}.qkv.bias, ...,
lnf.bias; the causal-mask buffer is left out), the same names lathe's GPT registers.

Weights are not the N(0, 0.02) training init (its gradients are nearly uniform): every Linear and
Embedding weight is N(0, 0.3), biases N(0, 0.1), LayerNorm weights 1 + N(0, 0.1) and LayerNorm
biases N(0, 0.1), so attention is far from uniform and every gradient is non-trivial.

JSON: {"generator", "torch_version", "cases": [{"name", "config": {n_layer, n_head, n_embd,
block_size, vocab_size, bias, dropout}, "tokens" [B][T], "targets" [B][T], "parameters": {name:
{"shape", "values"}}, "logits": {"shape": [B, T, V], "values"}, "loss", "gradients": {name:
{"shape", "values"}}}]}; values are flat, row-major. Gradients are those of the mean loss.

Before writing, a central finite difference of the loss at 3 random parameter entries per case is
asserted to match the autograd gradient to 1e-6 relative, and printed.
"""
import json, math, pathlib, sys
import torch, torch.nn as nn, torch.nn.functional as F

torch.set_default_dtype(torch.float64)


class Block(nn.Module):
    def __init__(s, C, H, T):
        super().__init__()
        s.ln1, s.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        s.qkv, s.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        s.fc, s.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        s.H = H
        s.register_buffer('mask', torch.tril(torch.ones(T, T, dtype=torch.bool)))
    def forward(s, x):
        B, T, C = x.shape
        q, k, v = s.qkv(s.ln1(x)).split(C, dim=2)
        q, k, v = (t.view(B, T, s.H, C // s.H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // s.H)
        att = att.masked_fill(~s.mask[:T, :T], float('-inf')).softmax(-1)
        x = x + s.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + s.fcproj(F.gelu(s.fc(s.ln2(x)), approximate='tanh'))


class GPT(nn.Module):
    def __init__(s, V, T, L, H, C):
        super().__init__()
        s.wte, s.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        s.blocks = nn.ModuleList(Block(C, H, T) for _ in range(L))
        s.lnf = nn.LayerNorm(C)
        s.apply(s._init)
    def _init(s, m):  # the golden init (see the docstring), not torch_gpt.py's N(0, 0.02)
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.3)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.normal_(m.bias, std=0.1)
        if isinstance(m, nn.LayerNorm):
            nn.init.normal_(m.weight, mean=1.0, std=0.1)
            nn.init.normal_(m.bias, std=0.1)
    def forward(s, idx, targets):
        x = s.wte(idx) + s.wpe(torch.arange(idx.shape[1]))
        for b in s.blocks:
            x = b(x)
        logits = s.lnf(x) @ s.wte.weight.t()
        return logits, F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def tensor_json(t):
    return {'shape': list(t.shape), 'values': t.detach().flatten().tolist()}


def finite_difference_check(model, tokens, targets, generator, count=3, h=1e-5, rtol=1e-6):
    """Central differences of the loss at `count` random parameter entries whose gradient is not
    negligible (|g| > 1e-3), against autograd (model's .grad must be filled)."""
    params = list(model.named_parameters())
    sizes = torch.tensor([p.numel() for _, p in params], dtype=torch.float64)
    checked = 0
    with torch.no_grad():
        while checked < count:
            i = int(torch.multinomial(sizes, 1, generator=generator))
            name, p = params[i]
            j = int(torch.randint(p.numel(), (1,), generator=generator))
            g = p.grad.view(-1)[j].item()
            if abs(g) <= 1e-3:
                continue
            flat, orig = p.view(-1), p.view(-1)[j].item()
            flat[j] = orig + h
            up = model(tokens, targets)[1].item()
            flat[j] = orig - h
            down = model(tokens, targets)[1].item()
            flat[j] = orig
            fd = (up - down) / (2 * h)
            rel = abs(fd - g) / abs(g)
            print(f'  finite difference {name}[{j}]: autograd {g:.12e} numeric {fd:.12e} rel {rel:.2e}')
            assert rel <= rtol, f'{name}[{j}]: finite difference {fd} vs autograd {g} (rel {rel})'
            checked += 1


def make_case(name, n_layer, n_head, n_embd, block_size, vocab_size, batch, T, check_generator):
    model = GPT(vocab_size, block_size, n_layer, n_head, n_embd)
    tokens = torch.randint(vocab_size, (batch, T))
    targets = torch.randint(vocab_size, (batch, T))
    logits, loss = model(tokens, targets)
    loss.backward()
    params = dict(model.named_parameters())
    assert 'blocks.0.mask' not in params
    for pname, p in params.items():  # every gradient non-trivial (wpe rows >= T are zero by design)
        g = p.grad[:T] if pname == 'wpe.weight' else p.grad
        assert g.abs().min() > 0 if g.dim() == 1 else g.abs().sum(-1).min() > 1e-6, pname
    if T < block_size:
        assert torch.all(params['wpe.weight'].grad[T:] == 0)
    print(f'{name}: loss {loss.item():.15g}, {sum(p.numel() for p in params.values())} parameters')
    finite_difference_check(model, tokens, targets, check_generator)
    return {
        'name': name,
        'config': {'n_layer': n_layer, 'n_head': n_head, 'n_embd': n_embd, 'block_size': block_size,
                   'vocab_size': vocab_size, 'bias': True, 'dropout': 0},
        'tokens': tokens.tolist(),
        'targets': targets.tolist(),
        'parameters': {k: tensor_json(p) for k, p in params.items()},
        'logits': tensor_json(logits),
        'loss': loss.item(),
        'gradients': {k: tensor_json(p.grad) for k, p in params.items()},
    }


def main():
    out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else \
        pathlib.Path(__file__).resolve().parent.parent / 'tests' / 'fixtures' / 'gpt_reference.json'
    torch.manual_seed(1337)
    check_generator = torch.Generator().manual_seed(7)  # FD picks do not disturb the golden draws
    cases = [
        make_case('tiny', n_layer=2, n_head=2, n_embd=16, block_size=8, vocab_size=11, batch=2, T=8,
                  check_generator=check_generator),
        make_case('short_context', n_layer=1, n_head=4, n_embd=16, block_size=8, vocab_size=7, batch=3,
                  T=5, check_generator=check_generator),
    ]
    out.write_text(json.dumps({'generator': 'tools/gpt_reference.py', 'torch_version': torch.__version__,
                               'cases': cases}) + '\n')
    print(f'{out}: {len(cases)} cases, {out.stat().st_size} bytes')


if __name__ == '__main__':
    main()

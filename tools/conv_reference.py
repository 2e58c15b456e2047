#!/usr/bin/python3
"""Writes tests/fixtures/conv_reference.json: PyTorch 1.13's outputs for conv2d (stride, padding,
dilation, groups), max/avg pooling and batch norm (training, with running statistics, then eval)
on small fixed inputs, so tests/test_conv.cpp checks lathe's forward ops against an independent
implementation without needing PyTorch at test time.

  /usr/bin/python3 tools/conv_reference.py    (Debian python3-torch: scripts/setup.sh --torch)
"""
import json, pathlib
import torch
import torch.nn.functional as F

torch.manual_seed(0)
cases = []

def t(*shape):
    return torch.randn(*shape, dtype=torch.float64)

def add(name, op, inputs, params, output, extra=None):
    case = {'name': name, 'op': op, 'params': params,
            'inputs': {k: {'shape': list(v.shape), 'values': v.flatten().tolist()} for k, v in inputs.items()},
            'output': {'shape': list(output.shape), 'values': output.flatten().tolist()}}
    if extra:
        case.update({k: v.flatten().tolist() for k, v in extra.items()})
    cases.append(case)

for name, shape, wshape, p in [
        ('plain', (2, 3, 5, 6), (4, 3, 3, 3), dict(stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups=1)),
        ('stride_padding', (2, 2, 7, 6), (3, 2, 3, 2), dict(stride=(2, 1), padding=(1, 2), dilation=(1, 1), groups=1)),
        ('dilation', (1, 2, 7, 7), (2, 2, 3, 3), dict(stride=(1, 1), padding=(2, 1), dilation=(2, 2), groups=1)),
        ('groups', (2, 4, 5, 5), (6, 2, 3, 3), dict(stride=(2, 2), padding=(1, 1), dilation=(1, 1), groups=2))]:
    x, w, b = t(*shape), t(*wshape), t(wshape[0])
    add('conv2d_' + name, 'conv2d', {'input': x, 'weight': w, 'bias': b},
        {k: list(v) if isinstance(v, tuple) else v for k, v in p.items()}, F.conv2d(x, w, b, **p))

x = t(2, 3, 5, 7)
for op, fn in [('max_pool2d', F.max_pool2d), ('avg_pool2d', F.avg_pool2d)]:
    for k, s, pad in [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))]:
        add(f'{op}_k{k[0]}x{k[1]}_s{s[0]}x{s[1]}_p{pad[0]}x{pad[1]}', op, {'input': x},
            {'kernel': list(k), 'stride': list(s), 'padding': list(pad)}, fn(x, k, s, pad))

x, w, b = t(4, 3, 2, 5), t(3), t(3)
rm, rv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
train_out = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5)
add('batch_norm_training', 'batch_norm', {'input': x, 'weight': w, 'bias': b},
    {'training': True, 'momentum': 0.1, 'eps': 1e-5}, train_out,
    {'running_mean_after': rm.clone(), 'running_var_after': rv.clone()})
x2 = t(3, 3, 2, 5)
add('batch_norm_eval', 'batch_norm', {'input': x2, 'weight': w, 'bias': b, 'running_mean': rm, 'running_var': rv},
    {'training': False, 'momentum': 0.1, 'eps': 1e-5}, F.batch_norm(x2, rm, rv, w, b, training=False, eps=1e-5))

out = pathlib.Path(__file__).resolve().parent.parent / 'tests' / 'fixtures' / 'conv_reference.json'
out.write_text(json.dumps({'generator': 'tools/conv_reference.py', 'torch': torch.__version__, 'cases': cases}) + '\n')
print(f'{out}: {len(cases)} cases')

#!/usr/bin/env python3
"""The network part of a Julep kernel step in PyTorch, for comparison with bench_kernel.

The same E(n)-equivariant network as src/network/egnn.cpp (3 layers x 64 hidden, rank 2,
float32, fully connected, anchor at the origin, first edge layer split into per-node products)
at the same sizes (batch 100; DW-4 and LJ-13 at T = 100, LJ-55 at T = 10), timed the way
bench_kernel counts work, in trajectory-steps per second (batch x T per second):

  sampling  T + 1 network evaluations per trajectory, each a forward pass and the gradient of
            Util with respect to the positions (grad_y U needs it);
  training  the sampling pass with the path kept, then one log-variance gradient pass: every
            grid point once, forward, grad_y Util with create_graph, and the backward of a
            loss built from b, H and grad_y Util to the parameters (the double backward), grid
            points batched through the network in chunks of 10, at most 2^15 / N^2
            configurations per pass (bench_kernel's chunk_steps and chunk_edges).

The prior, the target energy and the path-weight arithmetic are left out: this measures what
the network costs in PyTorch. Positions are frozen random configurations (the network's cost
does not depend on where the particles are).

  /usr/bin/python3 bench/python_kernel_twin.py [--threads 1] [--systems dw4,lj13,lj55]
"""
import argparse
import math
import resource
import time

import torch
from torch import nn

SYSTEMS = {  # name: (particles, dimension, T, length scale)
    "dw4": (4, 2, 100, 2.0),
    "lj13": (13, 3, 100, 1.5),
    "lj55": (55, 3, 10, 2.5),
}


class Layer(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.edge_left = nn.Linear(hidden, hidden)
        self.edge_right = nn.Linear(hidden, hidden, bias=False)
        self.edge_distance = nn.Linear(1, hidden, bias=False)
        self.edge_rest = nn.Sequential(nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
        self.coordinate = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1, bias=False))
        self.node = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh(), nn.Linear(hidden, hidden))

    def forward(self, x, h):
        b, n, hidden = x.shape[0], x.shape[1], h.shape[-1]
        diff = x.unsqueeze(2) - x.unsqueeze(1)
        d2 = diff.pow(2).sum(-1, keepdim=True)
        pre = torch.addcmul(self.edge_left(h).unsqueeze(2) + self.edge_right(h).unsqueeze(1), d2,
                            self.edge_distance.weight.view(-1))
        m_flat = self.edge_rest(pre.view(-1, hidden))  # 2-D: Linear is one addmm, bias fused
        c = self.coordinate(m_flat).view(b, n, n, 1)
        m = m_flat.view(b, n, n, hidden)
        x_new = x + (diff * c).sum(2) / (n - 1)
        m_sum = m.sum(2) - m.diagonal(0, 1, 2).transpose(1, 2)  # no self-edges
        h_new = h + self.node(torch.cat([h, m_sum], -1))
        return x_new, h_new


class Egnn(nn.Module):
    def __init__(self, n_particles, hidden=64, layers=3, rank=2, frequencies=3, length_scale=1.0):
        super().__init__()
        self.n, self.frequencies, self.length_scale = n_particles, frequencies, length_scale
        self.embedding = nn.Embedding(1, min(hidden, 8))
        self.input = nn.Linear(min(hidden, 8) + 3 + 2 * frequencies, hidden)
        self.layers = nn.ModuleList(Layer(hidden) for _ in range(layers))
        self.util_out = nn.Linear(hidden, 1, bias=False)
        self.h_out = nn.Linear(hidden, rank, bias=False)
        flag = torch.zeros(n_particles, 1)
        flag[0, 0] = 1.0
        self.register_buffer("flag", flag)
        with torch.no_grad():
            self.util_out.weight.normal_(0, 0.1)  # non-zero, so grad_y Util is a real computation
            for layer in self.layers:
                layer.coordinate[2].weight.normal_(0, 0.1)

    def forward(self, y, times):
        """y stacks len(times) equal blocks of configurations, block k at times[k]."""
        b = y.shape[0]
        x = torch.cat([torch.zeros(b, 1, y.shape[2], dtype=y.dtype), y], 1) / self.length_scale
        enc = [[t] + [f(2 * math.pi * k * t) for k in range(1, self.frequencies + 1) for f in (math.sin, math.cos)]
               for t in times]
        time_features = torch.tensor(enc, dtype=y.dtype).view(len(times), 1, 1, -1)
        time_features = time_features.expand(-1, b // len(times), self.n, -1).reshape(b, self.n, -1)
        radius = x.pow(2).sum(-1, keepdim=True).add(1e-12).sqrt()
        types = self.embedding.weight[torch.zeros(self.n, dtype=torch.long)].unsqueeze(0).expand(b, -1, -1)
        h = self.input(torch.cat([types, radius, self.flag.unsqueeze(0).expand(b, -1, -1), time_features], -1))
        x_out = x
        for layer in self.layers:
            x_out, h = layer(x_out, h)
        drift = (x_out - x)[:, 1:] * self.length_scale
        return drift, self.util_out(h).sum((1, 2)), self.h_out(h)[:, 1:]


def sampling_pass(net, y, steps, keep_path):
    path = []
    for j in range(steps + 1):
        t = j / steps
        yi = y.detach().requires_grad_(True)
        b, util, h = net(yi, [t])
        (g,) = torch.autograd.grad((t * (1 - t) * util).sum(), yi)
        with torch.no_grad():  # a stand-in for the kernel's mean: cheap next to the network
            y = yi + 1e-3 * (b - g) + 1e-3 * torch.randn_like(yi)
        if keep_path:
            path.append(yi.detach())
    return torch.stack(path, 1) if keep_path else None


def gradient_pass(net, path, steps, chunk_steps, max_configurations):
    """As accumulate_kernel_gradient: every grid point once, points batched through the network,
    at most max_configurations configurations per backward pass."""
    params = list(net.parameters())
    batch = path.shape[0]
    coefficient = torch.randn(batch)
    points = max(1, min(chunk_steps, max_configurations // batch))
    rows = min(batch, max(1, max_configurations // points))
    for k0 in range(0, steps + 1, points):
        k1 = min(steps + 1, k0 + points)
        times = [k / steps for k in range(k0, k1)]
        for s0 in range(0, batch, rows):
            part = path[s0:s0 + rows, k0:k1]
            n_rows = part.shape[0]
            y = part.transpose(0, 1).reshape(-1, *path.shape[2:]).requires_grad_(True)
            b, util, h = net(y, times)
            w = torch.tensor([t * (1 - t) for t in times]).repeat_interleave(n_rows)
            (g,) = torch.autograd.grad((w * util).sum(), y, create_graph=True)
            mean = y + 1e-2 * (b - g) + 1e-2 * h @ (h.transpose(1, 2) @ y)
            c = coefficient[s0:s0 + rows].repeat(k1 - k0)
            loss = (c * (mean - y.detach()).pow(2).sum((1, 2))).sum()
            torch.autograd.backward(loss, inputs=params)


def run(name, batch, threads, repeats):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n, dim, steps, length = SYSTEMS[name]
    net = Egnn(n, length_scale=length)
    y0 = torch.randn(batch, n - 1, dim) * length
    max_configurations = max(1, (1 << 15) // (n * n))  # bench_kernel: chunk_steps 10, chunk_edges 2^15
    best = {"sample": (math.inf, math.inf), "train": (math.inf, math.inf)}  # (wall, cpu) seconds
    for _ in range(repeats):
        for mode in ("sample", "train"):
            wall, cpu = time.perf_counter(), time.process_time()
            if mode == "sample":
                sampling_pass(net, y0, steps, keep_path=False)
            else:
                gradient_pass(net, sampling_pass(net, y0, steps, keep_path=True), steps, 10, max_configurations)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            best[mode] = min(best[mode], (wall, cpu))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {mode: (batch * steps / w, batch * steps / c) for mode, (w, c) in best.items()}, rss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--systems", default="dw4,lj13,lj55")
    parser.add_argument("--format", choices=["table", "rows"], default="table",
                        help="rows: 'python <system> <sample|train> <per wall s> <per CPU s>' lines")
    args = parser.parse_args()
    if args.format == "table":
        print(f"# PyTorch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, float32 3 x 64 EGNN")
        print("system     T   sampling traj-steps/s (per CPU s)   training traj-steps/s (per CPU s)   peak RSS MB")
    for name in args.systems.split(","):
        rates, rss = run(name, args.batch, args.threads, args.repeats)
        if args.format == "rows":
            for mode, (wall, cpu) in rates.items():
                print(f"python {name} {mode} {wall:.1f} {cpu:.1f}", flush=True)
        else:
            (sw, sc), (tw, tc) = rates["sample"], rates["train"]
            print(f"{name:6s} {SYSTEMS[name][2]:5d}   {sw:12.1f} ({sc:8.1f})           {tw:12.1f} ({tc:8.1f})"
                  f"          {rss:8.0f}", flush=True)


if __name__ == "__main__":
    main()

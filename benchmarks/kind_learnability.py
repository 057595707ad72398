"""How learnable each synthesizable kind is on this machine in a time budget: a reference, not a synartifact model.

    python benchmarks/kind_learnability.py --dataset outputs/ds10-all-kinds [--seconds 420] [--batch-size 64]
        [--seed 0] [--json PATH]

The demo's classifier must name all ten synthesizable kinds from 64 px images within its share of a 15-minute
demo on 2 CPU cores (issue 19: macro-F1 >= 0.80, no kind under 0.5). This script trains the cheapest model that has
the inductive bias those kinds call for, a small convolutional network (7 conv-BN-GELU layers, 32-128 channels,
mean- and max-pooled into a multi-label head; no language model, no boxes, no captions) on the dataset's training
split for a wall-clock budget, and scores the held-out split every ``--eval-every`` steps: per-kind F1 at
threshold 0.5, macro-F1 over the kinds the split holds, and the kinds at F1 >= 0.5. What it reaches in a budget
bounds what a from-scratch tiny VLM (which must also learn the answer's text) can be expected to reach in the same
budget; the kinds it cannot learn either are a matter of the data (artifact strength at 64 px), not of the VLM.

Figures go to a result file (``--json``, default ``benchmarks/results/``) that ``python benchmarks/report.py``
renders into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time

from _record import add_json_flag, write_result


def _arrays(split, kinds: list[str], names: list[str]):
    import numpy as np
    import torch

    images = np.stack([np.asarray(row.convert("RGB"), np.float32) / 255.0 for row in split["image"]])
    labels = np.zeros((len(images), len(kinds)), np.float32)
    for i, artifacts in enumerate(split["artifacts"]):
        for artifact in artifacts:
            label = artifact["label"]
            if label is not None and 0 <= label < len(names) and names[label] in kinds:
                labels[i, kinds.index(names[label])] = 1.0
    return torch.tensor(images).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels)


def _network(num_kinds: int):
    from torch import nn

    def block(cin: int, cout: int, stride: int):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.BatchNorm2d(cout), nn.GELU())

    channels = [(3, 32, 1), (32, 48, 2), (48, 64, 1), (64, 96, 2), (96, 96, 1), (96, 128, 2), (128, 128, 1)]
    trunk = nn.Sequential(*(block(*c) for c in channels))
    head = nn.Linear(256, num_kinds)
    return trunk, head


def _f1(pred, truth) -> list[float]:
    f1 = []
    for k in range(truth.shape[1]):
        p, t = pred[:, k], truth[:, k] > 0
        tp, fp, fn = int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum())
        f1.append(2 * tp / max(1, 2 * tp + fp + fn))
    return f1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", required=True, help="an artifact dataset folder (train and test splits)")
    parser.add_argument("--seconds", type=float, default=420.0, help="wall-clock training budget")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--eval-every", type=int, default=300, help="steps between held-out evaluations")
    parser.add_argument("--seed", type=int, default=0)
    add_json_flag(parser)
    args = parser.parse_args(argv)

    import torch
    from torch.nn import functional as F

    from synartifact.data import load_artifact_dataset
    from synartifact.data.synth import SYNTH_KINDS
    from synartifact.taxonomy import SLUGS

    torch.manual_seed(args.seed)
    data = load_artifact_dataset(args.dataset)
    x_train, y_train = _arrays(data["train"], list(SYNTH_KINDS), list(SLUGS))
    x_test, y_test = _arrays(data["test"], list(SYNTH_KINDS), list(SLUGS))
    held = [k for k in range(len(SYNTH_KINDS)) if y_test[:, k].sum() > 0]
    trunk, head = _network(len(SYNTH_KINDS))
    params = list(trunk.parameters()) + list(head.parameters())
    optimizer = torch.optim.AdamW(params, args.lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(args.seed)

    def forward(x):
        features = trunk(x)
        return head(torch.cat([features.mean((2, 3)), features.amax((2, 3))], 1))

    def evaluate() -> list[float]:
        trunk.eval()
        with torch.no_grad():
            logits = torch.cat([forward(x_test[i : i + 256]) for i in range(0, len(x_test), 256)])
        trunk.train()
        return _f1(torch.sigmoid(logits) > 0.5, y_test)

    curve, step, started = [], 0, time.perf_counter()
    while time.perf_counter() - started < args.seconds:
        index = torch.randint(0, len(x_train), (args.batch_size,), generator=generator)
        x = x_train[index]
        if torch.rand(1, generator=generator).item() < 0.5:
            x = x.flip(3)
        loss = F.binary_cross_entropy_with_logits(forward(x), y_train[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
        if step % args.eval_every == 0:
            f1 = evaluate()
            curve.append({"step": step, "seconds": round(time.perf_counter() - started, 1),
                          "macro_f1": round(sum(f1[k] for k in held) / len(held), 4)})  # fmt: skip
            print(f"step {step}: {curve[-1]['seconds']} s, held-out macro-F1 {curve[-1]['macro_f1']:.3f}", flush=True)
    seconds = time.perf_counter() - started
    f1 = evaluate()
    per_kind = {SYNTH_KINDS[k]: round(f1[k], 4) for k in held}
    row = {
        "model": "small CNN (7 conv layers, no language model)",
        "seconds": round(seconds, 1),
        "steps": step,
        "batch_size": args.batch_size,
        "images": len(x_train),
        "image_size": int(x_train.shape[-1]),
        "macro_f1": round(sum(per_kind.values()) / len(per_kind), 4),
        "kinds_over_0_5": sum(v >= 0.5 for v in per_kind.values()),
        "kinds": len(per_kind),
        "weakest": min(per_kind, key=per_kind.get),
        "weakest_f1": min(per_kind.values()),
        "per_kind_f1": per_kind,
        "curve": curve,
    }
    print(f"{step} steps in {seconds:.0f} s: macro-F1 {row['macro_f1']:.3f}; per kind {per_kind}")
    write_result("kind_learnability", [row], args.json, argv=sys.argv[1:] if argv is None else argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

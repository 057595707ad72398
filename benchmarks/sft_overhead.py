"""SFT throughput: ``synartifact.sft`` against a bare TRL ``SFTTrainer`` on the same tiny model, data and collation.

    python benchmarks/sft_overhead.py [--n 256] [--steps 24] [--runs 3] [--json PATH]

Both sides train the same tiny LLaVA (built from configs) for the same steps on the same synthetic rows turned
into the same ``prompt``/``completion`` examples, with TRL's default collator. The bare side is what a user would
write by hand around ``SFTTrainer``; ours is ``synartifact.sft.main`` with its parsing, checks, card and run record.
Prints samples/s (train loop, from the trainer's own ``train_samples_per_second``) and end-to-end wall time, the
median of ``--runs`` runs each, and the overhead. The goal: overhead <= 10%. The figures go to a result file
(``--json``, default ``benchmarks/results/``) that ``python benchmarks/report.py`` renders.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from _record import add_json_flag, write_result

os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _training_kwargs(out: Path, steps: int) -> dict:
    return dict(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=8,
        learning_rate=1e-3,
        logging_steps=1000,
        save_strategy="no",
        eval_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=0,
        dataloader_num_workers=0,
        max_length=None,
        disable_tqdm=True,
    )


def bare_trl(model_dir: Path, data_dir: Path, out: Path, steps: int) -> float:
    """A hand-written TRL run: load, convert, SFTTrainer, train. Returns train samples/s."""
    from datasets import load_dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import SFTConfig, SFTTrainer

    from synartifact.prompts import to_sft_example

    train = load_dataset(str(data_dir), split="train")
    train = train.map(lambda r: to_sft_example(r, mode="labels", image_size=64), remove_columns=train.column_names)
    model = AutoModelForImageTextToText.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir)
    trainer = SFTTrainer(
        model=model, args=SFTConfig(**_training_kwargs(out, steps)), train_dataset=train, processing_class=processor
    )
    return trainer.train().metrics["train_samples_per_second"]


def ours(model_dir: Path, data_dir: Path, out: Path, steps: int) -> float:
    """``synartifact.sft.main`` with the same settings. Returns train samples/s."""
    from synartifact.configs import SFTModelArguments, SFTScriptArguments, SFTTrainingArguments
    from synartifact.sft import main

    script = SFTScriptArguments(dataset_name=str(data_dir), answer_mode="labels", image_size=64)
    model = SFTModelArguments(model_name_or_path=str(model_dir), use_peft=False)
    trainer = main(script, SFTTrainingArguments(**_training_kwargs(out, steps)), model)
    return trainer.state.log_history[-1]["train_samples_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256, help="training images")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--runs", type=int, default=3)
    add_json_flag(parser)
    args = parser.parse_args()

    import torch
    import transformers
    import trl

    from synartifact.data import save_hub_folder, synthesize_dataset
    from synartifact.tiny import build_tiny_vlm

    print(
        f"machine: {platform.platform()}, {os.cpu_count()} logical cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), transformers {transformers.__version__}, trl {trl.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_dir = build_tiny_vlm(tmp / "tiny-vlm", arch="llava", seed=0)
        save_hub_folder(synthesize_dataset(args.n, size=64, seed=0, test_size=0.1), tmp / "data")
        rates: dict[str, list[float]] = {"bare TRL": [], "synartifact.sft": []}
        walls: dict[str, list[float]] = {"bare TRL": [], "synartifact.sft": []}
        for run in range(args.runs):
            # alternate the order so that warm caches favour neither side
            order = [("bare TRL", bare_trl), ("synartifact.sft", ours)]
            for name, fn in order if run % 2 == 0 else order[::-1]:
                start = time.perf_counter()
                rates[name].append(fn(model_dir, tmp / "data", tmp / f"out-{name[:4]}-{run}", args.steps))
                walls[name].append(time.perf_counter() - start)
        for name in rates:
            print(
                f"{name:>16}: {statistics.median(rates[name]):.2f} train samples/s, "
                f"{statistics.median(walls[name]):.1f} s end to end (median of {args.runs})"
            )
        bare, our = statistics.median(rates["bare TRL"]), statistics.median(rates["synartifact.sft"])
        wall_over = statistics.median(walls["synartifact.sft"]) / statistics.median(walls["bare TRL"]) - 1
        print(
            f"overhead_train_loop={(bare / our - 1) * 100:+.1f}% overhead_end_to_end={wall_over * 100:+.1f}% "
            f"(goal <= 10%)"
        )
    row = {
        "bare_samples_per_s": bare,
        "ours_samples_per_s": our,
        "overhead_train_loop_pct": (bare / our - 1) * 100,
        "overhead_end_to_end_pct": wall_over * 100,
        "bare_wall_s": statistics.median(walls["bare TRL"]),
        "ours_wall_s": statistics.median(walls["synartifact.sft"]),
        "n": args.n,
        "steps": args.steps,
        "runs": args.runs,
    }
    write_result("sft_overhead", [row], args.json)


if __name__ == "__main__":
    main()

"""Run by tests/test_stack.py with each stack's Python: build the tiny VLMs into a folder, or report what a folder
loads as (token ids, pixel values, the multiset of parameter tensors), as JSON on stdout.

    python tests/stack_probe.py build DIR      # DIR/<arch> for every tiny VLM architecture
    python tests/stack_probe.py probe DIR      # {arch: {...}} for every DIR/<arch>
"""

import json
import sys
import warnings
from pathlib import Path


def probe(folder: Path) -> dict:
    import numpy as np
    import torch
    from PIL import Image

    from synartifact.classifier.loading import load_classifier_model, load_vlm_processor

    processor = load_vlm_processor(str(folder))
    model = load_classifier_model(str(folder), None)
    image = Image.fromarray((np.random.RandomState(0).rand(64, 64, 3) * 255).astype("uint8"))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Which artifacts?"}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    batch = processor(images=[image], text=[text], return_tensors="pt")
    # parameters by value, not by name: the two stacks name some of them differently
    params = sorted(
        [list(p.shape), round(float(p.detach().double().sum()), 5), round(float(p.detach().double().abs().sum()), 5)]
        for p in model.parameters()
    )
    return {
        "input_ids": batch["input_ids"].tolist(),
        "pixel_sum": round(float(batch["pixel_values"].double().sum()), 4),
        "parameters": params,
        "tokenizer_bytes": processor.tokenizer("USER: J) Abnormal Texture").input_ids,
        "torch": torch.__version__,
    }


def main() -> None:
    warnings.filterwarnings("ignore")
    command, folder = sys.argv[1], Path(sys.argv[2])
    from synartifact.tiny import VLM_ARCHS, build_tiny_vlm

    if command == "build":
        for arch in VLM_ARCHS:
            build_tiny_vlm(folder / arch, arch=arch)
        return
    result = {arch: probe(folder / arch) for arch in VLM_ARCHS}
    print("PROBE " + json.dumps(result))


if __name__ == "__main__":
    main()

"""The artifact classifier as a reward for RL fine-tuning of a generator (the paper's RLAIF step).

``reward = 1 - sum(weight[k] for k in found) / sum(weights)`` (the paper, arXiv 2402.18068): 1 for an image the
classifier finds clean, lower the more (and the heavier) artifacts it finds. Weights are per kind (slug, name,
letter-free loose spelling or index; a weight of 0 ignores a kind); kinds not given keep weight 1.

Two modes:

- ``generate``: the classifier decodes its answer (greedy) and :func:`synartifact.prompts.parse_answer` reads it.
  An answer with neither a kind nor ``None`` is *unparsable*: it gets ``unparsable_reward`` and is counted.
- ``score``: no decoding. The answer format puts one line per kind, in taxonomy order, each starting with its
  option letter (or ``None``), so the first answer token is the decision. ONE batched forward pass over the prompt
  (``use_cache=False``, and ``logits_to_keep=1`` when the model's forward takes it: only the last position's
  logits are computed) gives the distribution of that token; its probability mass is summed per group, ``None``
  and the 13 option letters (each group holds the token ids that can start the answer with that option, from
  :meth:`ArtifactReward._tables`). The label set is ``{the most probable kind}``, or empty when ``None`` wins. This
  works for ``labels`` and ``full`` answer-mode classifiers alike (a ``full`` line starts with the same letter).
  It reads only the first line: for a classifier that answers several kinds per image it finds the first one
  (the demo data has at most one artifact per image). ``follow_lines=True`` (``labels`` mode only) reads every
  line instead: each chosen kind's line (``"B) Awkward Facial Expression\\n"``) is teacher-forced in one more
  forward pass over the KV cache, which reads both "does the answer end here" and the next line's letter (only
  letters after the previous one: taxonomy order). A batch then costs 1 + (number of kinds found) forward passes,
  and the label set equals greedy decoding's whenever the model follows its format.

  ``soft=True`` turns the decision into probabilities: ``p(kind) = softmax(group log-probabilities /
  temperature)`` over ``None`` and the letters (with ``follow_lines``, the largest such probability the kind got
  at any decision), and the reward uses ``p`` in place of 0/1 (a smoother signal for RL). ``temperature > 1``
  keeps a confident classifier's probabilities off 0 and 1, so that RL sees differences between samples;
  ``temperature`` changes no label set. When the most probable token over the whole vocabulary at a decision is
  none of the allowed ones, the answer would not have parsed: it is counted as unparsable, as in ``generate`` --
  unless ``constrained=True``, which compares only the allowed tokens (constrained decoding: every answer is
  read; useful for a zero-shot classifier that does not follow the format, and for smoke tests on untrained
  models).

Speed: ``score`` costs one prefill per batch; ``generate`` costs about as much for its first token plus one decode
step per token of the batch's longest answer. The gain of ``score`` therefore grows with the answer length (a
full-format answer with box and caption is far longer than a labels line) and shrinks with the batch size on a
CPU, where a tiny model's decode step is mostly fixed overhead: ``benchmarks/reward_modes.py`` prints both
figures and the cost model.

Both modes run under ``torch.no_grad`` in batches and always return finite rewards: images with NaN/inf pixels
are cleaned (``nan_to_num``) and NaN rewards are replaced by ``unparsable_reward``; ``info`` counts both.
"""

from __future__ import annotations

import inspect
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from synartifact.images import as_image_list, to_rgb
from synartifact.taxonomy import KINDS, SLUGS, get_kind

__all__ = [
    "add_reward_arguments",
    "reward_arguments",
    "ArtifactReward",
    "REWARD_MODES",
    "REWARD_SETTINGS",
    "check_reward_options",
    "reward_config",
    "parse_weights",
    "images_to_pil",
    "reward_from_kinds",
    "reward_from_report",
    "reward_settings",
    "reward_value",
]

REWARD_MODES: tuple[str, ...] = ("score", "generate")


def parse_weights(weights: Mapping[str | int, float] | str | None) -> dict[str, float]:
    """Per-kind weights as ``{slug: weight}`` for all 13 kinds (default 1) from a dict or ``"face=2,blur=0"``."""
    table = {slug: 1.0 for slug in SLUGS}
    if weights is None or weights == "" or weights == {}:
        return table
    if isinstance(weights, str):
        items = []
        for part in weights.split(","):
            part = part.strip()
            if not part:
                continue
            if "=" not in part and ":" not in part:
                raise ValueError(f"Reward weight {part!r} is not KIND=WEIGHT (e.g. 'awkward_facial_expression=2').")
            key, value = part.replace(":", "=", 1).split("=", 1)
            items.append((key.strip(), value.strip()))
    elif isinstance(weights, Mapping):
        items = list(weights.items())
    else:
        raise ValueError(f"Reward weights must be a dict or a 'kind=weight,...' string, not {type(weights).__name__}.")
    for key, value in items:
        slug = get_kind(int(key) if isinstance(key, str) and key.isdigit() else key).slug
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"Reward weight for {key!r} must be a number, got {value!r}.") from None
        if not math.isfinite(number) or number < 0:
            raise ValueError(f"Reward weight for {key!r} must be a finite number >= 0, got {value!r}.")
        table[slug] = number
    if sum(table.values()) <= 0:
        raise ValueError("Reward weights sum to 0: at least one kind needs a positive weight.")
    return table


def reward_from_kinds(found: Mapping[str, float] | set[str] | Sequence[str], weights: Mapping[str, float]) -> float:
    """``1 - sum(weight[k] * p[k]) / sum(weights)``; ``found`` is a set of slugs (p=1) or ``{slug: p}``."""
    presence = dict(found) if isinstance(found, Mapping) else {k: 1.0 for k in found}
    total = sum(weights.values())
    return float(1.0 - sum(weights[k] * float(p) for k, p in presence.items()) / total)


def reward_value(
    presence: Mapping[str, float] | set[str] | Sequence[str],
    weights: Mapping[str, float],
    unparsable: bool,
    unparsable_reward: float,
) -> tuple[float, bool]:
    """The reward of one answer, the one rule every caller uses: :func:`reward_from_kinds` of what it found, or
    ``unparsable_reward`` for an answer that names neither a kind nor ``None`` (or whose reward is not finite).
    Returns the reward and whether it was not finite (counted by the DDPO scorer)."""
    if unparsable:
        return float(unparsable_reward), False
    value = reward_from_kinds(presence, weights)
    if not math.isfinite(value):
        return float(unparsable_reward), True
    return float(value), False


def reward_from_report(
    report: Any, mode: str, weights: Mapping[str, float] | None = None, unparsable_reward: float = 0.0
) -> float:
    """The reward of the image an :class:`~synartifact.report.ArtifactReport` describes, read from its answer as
    the reward's ``generate`` mode reads it (no second pass through the model). ``mode`` is the classifier's
    answer format; ``weights`` default to every kind weighing 1."""
    from synartifact.prompts import answer_kinds

    kinds, unparsable = answer_kinds(report.raw_text, mode, report.kinds)
    weights = parse_weights(None) if weights is None else weights
    return reward_value(kinds, weights, unparsable, unparsable_reward)[0]


def images_to_pil(images: Any) -> tuple[list[Image.Image], int]:
    """Images as RGB PIL images (through :func:`synartifact.images.to_rgb`), and how many had NaN/inf pixels.

    Accepts what :func:`~synartifact.images.to_rgb` accepts, one image or a batch: a float tensor in [0, 1] (NCHW
    or NHWC, as DDPO's ``output_type="pt"`` pipeline hands them), a list of PIL images, of CHW/HWC tensors or of
    numpy arrays, paths. NaN/inf pixels of float images are replaced (NaN and -inf by 0, +inf by 1) and counted,
    so that a broken sample still gets a reward rather than stopping the run.
    """
    out, nonfinite = [], 0
    for i, image in enumerate(as_image_list(images)):
        if isinstance(image, torch.Tensor) and image.is_floating_point() and not torch.isfinite(image).all():
            nonfinite += 1
            image = torch.nan_to_num(image.float(), nan=0.0, posinf=1.0, neginf=0.0)
        elif isinstance(image, np.ndarray) and image.dtype.kind == "f" and not np.isfinite(image).all():
            nonfinite += 1
            image = np.nan_to_num(image, nan=0.0, posinf=1.0, neginf=0.0)
        out.append(to_rgb(image, i))
    return out, nonfinite


class ArtifactReward:
    """An :class:`~synartifact.classifier.ArtifactClassifier` as a reward: ``1 - weighted share of kinds found``.

    ``ArtifactReward(classifier_or_path, mode="score"|"generate", weights=None, torch_dtype=None)`` (a dtype such as
    ``torch.bfloat16`` or ``"bfloat16"`` loads a large classifier in half the memory); call it as TRL's DDPO scorer
    (``reward(images, prompts, metadata) -> (rewards, info)``) or use :meth:`score_images` on PIL images.
    """

    def __init__(
        self,
        classifier_or_path: Any,
        mode: str = "score",
        weights: Mapping[str | int, float] | str | None = None,
        unparsable_reward: float = 0.0,
        batch_size: int = 16,
        soft: bool = False,
        constrained: bool = False,
        device: str | None = None,
        follow_lines: bool = False,
        temperature: float = 1.0,
        torch_dtype: Any = None,
    ) -> None:
        if mode not in REWARD_MODES:
            raise ValueError(f"Unknown reward mode {mode!r}: valid modes are {', '.join(REWARD_MODES)}.")
        if not math.isfinite(float(unparsable_reward)):
            raise ValueError(f"unparsable_reward must be a finite number, got {unparsable_reward!r}.")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}.")
        try:
            temperature = float(temperature)
        except (TypeError, ValueError):
            temperature = float("nan")
        if not (math.isfinite(temperature) and temperature > 0):
            raise ValueError(
                f"temperature must be a finite number > 0 (1 = the classifier's own probabilities, > 1 softer), "
                f"got {temperature!r}."
            )
        if isinstance(classifier_or_path, (str, bytes)) or hasattr(classifier_or_path, "__fspath__"):
            from synartifact.classifier import ArtifactClassifier

            classifier_or_path = ArtifactClassifier.from_pretrained(
                str(classifier_or_path), device=device, dtype=torch_dtype
            )
        elif torch_dtype is not None:
            raise ValueError(
                "torch_dtype applies when ArtifactReward loads the classifier from a path, not to a model."
            )
        answer_mode = getattr(classifier_or_path, "mode", "labels")
        if mode == "score" and answer_mode not in ("labels", "full"):
            raise ValueError(
                f"Reward mode 'score' reads the first answer token of the 'labels' or 'full' answer format, but this "
                f"classifier answers in {answer_mode!r} mode: use mode='generate'."
            )
        if follow_lines and mode != "score":
            raise ValueError(
                "follow_lines applies to reward mode 'score' only: use mode='score' or follow_lines=False."
            )
        if follow_lines and answer_mode != "labels":
            raise ValueError(
                f"follow_lines=True teacher-forces 'labels' answer lines ('X) Name'), but this classifier answers in "
                f"{answer_mode!r} mode: use follow_lines=False (single-pass score: the first line's kind) or "
                f"mode='generate' (every line)."
            )
        self.classifier = classifier_or_path
        self.mode = mode
        self.weights = parse_weights(weights)
        self.unparsable_reward = float(unparsable_reward)
        self.batch_size = int(batch_size)
        self.soft = bool(soft)
        self.constrained = bool(constrained)
        self.follow_lines = bool(follow_lines)
        self.temperature = temperature
        self._token_tables: dict | None = None
        self._keeps_logits: bool | None = None

    def __repr__(self) -> str:
        return (
            f"ArtifactReward(mode={self.mode!r}, soft={self.soft}, constrained={self.constrained}, "
            f"follow_lines={self.follow_lines}, temperature={self.temperature}, weights={self.weights})"
        )

    # ---- public API ------------------------------------------------------------------------------------------

    def __call__(self, images: Any, prompts: Sequence[str] | None = None, metadata: Any = None):
        """TRL DDPO scorer: ``(images, prompts, metadata) -> (rewards as a float tensor, info dict)``."""
        pil, nonfinite = images_to_pil(images)
        rewards, info = self._rewards(pil)
        info["nonfinite_images"] = nonfinite
        return torch.tensor(rewards, dtype=torch.float32), info

    def score_images(self, images: Any) -> list[float]:
        """Rewards for PIL images (or anything :func:`images_to_pil` accepts), one float each."""
        pil, _ = images_to_pil(images)
        return self._rewards(pil)[0]

    def details(self, images: Any) -> list[dict]:
        """Per image: ``{"reward": float, "kinds": sorted slugs found, "unparsable": bool}``."""
        pil, _ = images_to_pil(images)
        found, chosen, unparsable = self._found(pil)
        rows = []
        for presence, labels, bad in zip(found, chosen, unparsable):
            value = reward_value(presence, self.weights, bad, self.unparsable_reward)[0]
            rows.append({"reward": value, "kinds": sorted(labels) if not bad else [], "unparsable": bool(bad)})
        return rows

    def presence(self, images: Any) -> list[dict[str, float]]:
        """Per image, each kind's presence as this reward reads it: ``{slug: p}`` with the probabilities of score
        mode when ``soft``, else 1 for each kind found (kinds not listed: 0)."""
        pil, _ = images_to_pil(images)
        return [dict(p) for p in self._found(pil)[0]]

    def label_sets(self, images: Any) -> list[set[str]]:
        """The kinds found in each image under this reward's mode (for comparing the modes)."""
        pil, _ = images_to_pil(images)
        return self._found(pil)[1]

    # ---- internals -------------------------------------------------------------------------------------------

    def _rewards(self, pil: list[Image.Image]) -> tuple[list[float], dict]:
        found, chosen, unparsable = self._found(pil)
        rewards, nan_events, kinds = [], 0, Counter()
        for presence, labels, bad in zip(found, chosen, unparsable):
            value, nonfinite = reward_value(presence, self.weights, bad, self.unparsable_reward)
            nan_events += nonfinite
            rewards.append(value)
            if not bad:
                kinds.update(labels)
        info = {
            "mode": self.mode,
            "num_images": len(pil),
            "unparsable": int(sum(unparsable)),
            "nan_rewards": nan_events,
            "kinds_found": dict(kinds),
            "mean_reward": float(np.mean(rewards)) if rewards else float("nan"),
        }
        return rewards, info

    def _found(self, pil: list[Image.Image]) -> tuple[list[dict[str, float]], list[set[str]], list[bool]]:
        """Per image: the presence used by the reward ({slug: p}), the label set, and whether it was unparsable."""
        found: list[dict[str, float]] = []
        chosen: list[set[str]] = []
        unparsable: list[bool] = []
        for start in range(0, len(pil), self.batch_size):
            chunk = pil[start : start + self.batch_size]
            if self.mode == "generate":
                labels, u = self._found_generate(chunk)
                soft = [{k: 1.0 for k in s} for s in labels]
            elif self.follow_lines:
                labels, soft, u = self._found_score_lines(chunk)
            else:
                labels, soft, u = self._found_score(chunk)
            chosen += labels
            found += soft if self.soft else [{k: 1.0 for k in s} for s in labels]
            unparsable += u
        return found, chosen, unparsable

    @torch.no_grad()
    def report_reward(self, report: Any) -> float:
        """This reward of the image a classifier report describes, read from the report's answer (as ``generate``
        mode reads it: no second pass through the model)."""
        mode = getattr(self.classifier, "mode", "labels")
        return reward_from_report(report, mode, self.weights, self.unparsable_reward)

    def _found_generate(self, images: list[Image.Image]) -> tuple[list[set[str]], list[bool]]:
        from synartifact.prompts import answer_kinds

        mode = getattr(self.classifier, "mode", "labels")
        found, bad = [], []
        for report in self.classifier.predict(images, batch_size=len(images)):
            kinds, unparsable = answer_kinds(report.raw_text, mode, report.kinds)
            found.append(kinds)
            bad.append(unparsable)
        return found, bad

    # score mode ---------------------------------------------------------------------------------------------

    def _tables(self) -> dict:
        """Token ids of the answer's decision points (letters, None, end) and each kind's teacher-forced line."""
        if self._token_tables is not None:
            return self._token_tables
        from synartifact.prompts import LETTERS, NONE_ANSWER

        tokenizer = getattr(self.classifier.processor, "tokenizer", self.classifier.processor)

        def ids(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

        def after(prefix: str, text: str) -> int:
            """The first token of ``text`` when it follows ``prefix`` (a space, a newline)."""
            head, tokens = ids(prefix), ids(prefix + text)
            return tokens[len(head)] if tokens[: len(head)] == head and len(tokens) > len(head) else tokens[0]

        # A kind's decision token: the first token of its line ("B" for most tokenizers, the whole line for one
        # with a token per option) or its bare letter, as the answer's start, after a space and after a newline.
        groups = []
        for kind in KINDS:
            letter = LETTERS[kind.index]
            line = f"{letter}) {kind.name}"
            groups.append(
                {
                    f(t)
                    for t in (letter, line)
                    for f in (lambda t: ids(t)[0], lambda t: after(" ", t), lambda t: after("\n", t))
                }
            )
        none_ids = sorted({ids(NONE_ANSWER)[0], after(" ", NONE_ANSWER)})
        shared = {t for i, g in enumerate(groups) for t in g if any(t in h for j, h in enumerate(groups) if j != i)}
        letter_ids = [sorted(g - shared - set(none_ids)) for g in groups]
        if not all(letter_ids):
            raise ValueError(
                "This classifier's tokenizer gives no distinct first token to every option: use mode='generate'."
            )
        end_ids = set()
        gen_eos = getattr(getattr(self.classifier.model, "generation_config", None), "eos_token_id", None)
        for value in (gen_eos, tokenizer.eos_token_id):
            if isinstance(value, int):
                end_ids.add(value)
            elif isinstance(value, (list, tuple)):
                end_ids.update(int(v) for v in value)
        newline = ids("\n")[-1]
        lines = [ids(f"{LETTERS[k.index]}) {k.name}\n") for k in KINDS]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._token_tables = {
            "letters": letter_ids,
            "none": none_ids,
            "end": sorted(end_ids),
            "newline": newline,
            "lines": lines,
            "pad": pad,
        }
        return self._token_tables

    def _prompt_inputs(self, images: list[Image.Image]) -> tuple[Any, dict, torch.Tensor, torch.device, bool]:
        """The model, its prompt inputs on its device, their positions, the device, and whether to pass positions."""
        model = self.classifier.model
        inputs = self.classifier.prepare_inputs(images)
        device = getattr(self.classifier, "device", None) or next(model.parameters()).device
        inputs = {k: (v.to(device) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}
        position = (inputs["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
        # positions as generate() computes them for left padding; Qwen2-VL computes its own 3-D (M-RoPE) ones
        from synartifact.classifier.families import model_computes_positions

        explicit_positions = not model_computes_positions(model)
        return model, inputs, position, device, explicit_positions

    def _group_probs(self, row_logits: torch.Tensor, groups: list[list[int]]) -> tuple[list[float], int, bool]:
        """Tempered renormalized probabilities of token groups, the most probable group, and whether the
        vocabulary's top token is in one of the groups (one row of :meth:`_batch_group_probs`)."""
        probs, choices, on_format = self._batch_group_probs(row_logits[None], groups)
        return probs[0], choices[0], on_format[0]

    def _accepts_logits_to_keep(self, model: Any) -> bool:
        """Whether the model's forward names ``logits_to_keep`` (then only the last position's logits are made)."""
        if self._keeps_logits is None:
            try:
                self._keeps_logits = "logits_to_keep" in inspect.signature(model.forward).parameters
            except (TypeError, ValueError):
                self._keeps_logits = False
        return self._keeps_logits

    @torch.no_grad()
    def _found_score(self, images: list[Image.Image]) -> tuple[list[set[str]], list[dict[str, float]], list[bool]]:
        """Single pass: the first answer token's distribution over ``None`` and the 13 option letters."""
        tables = self._tables()
        model, inputs, position, _, explicit_positions = self._prompt_inputs(images)
        extra: dict[str, Any] = {"position_ids": position} if explicit_positions else {}
        if self._accepts_logits_to_keep(model):
            extra["logits_to_keep"] = 1
        out = model(**inputs, use_cache=False, **extra)
        probs, choices, on_format = self._batch_group_probs(out.logits[:, -1, :], [tables["none"]] + tables["letters"])
        presence = [{SLUGS[k]: p[k + 1] for k in range(len(KINDS))} for p in probs]
        chosen = [set() if choice == 0 else {SLUGS[choice - 1]} for choice in choices]
        bad = [not ok and not self.constrained for ok in on_format]
        return chosen, presence, bad

    def _batch_group_probs(
        self, logits: torch.Tensor, groups: list[list[int]]
    ) -> tuple[list[list[float]], list[int], list[bool]]:
        """:meth:`_group_probs` for a ``[batch, vocab]`` tensor at once (no per-row Python loop over groups)."""
        width = max(len(g) for g in groups)
        index = torch.tensor([g + [g[0]] * (width - len(g)) for g in groups], device=logits.device)
        valid = torch.tensor([[i < len(g) for i in range(width)] for g in groups], device=logits.device)
        logp = torch.log_softmax(torch.nan_to_num(logits.float(), nan=-1e4), dim=-1)
        group_logp = logp[:, index].masked_fill(~valid, float("-inf")).logsumexp(dim=-1)
        probs = torch.softmax(group_logp / self.temperature, dim=-1)
        on_format = torch.isin(logits.argmax(dim=-1), index[valid])
        return probs.tolist(), group_logp.argmax(dim=-1).tolist(), on_format.tolist()

    @torch.no_grad()
    def _found_score_lines(
        self, images: list[Image.Image]
    ) -> tuple[list[set[str]], list[dict[str, float]], list[bool]]:
        """``follow_lines``: the first decision, then each chosen line teacher-forced over the KV cache."""
        tables = self._tables()
        model, inputs, position, device, explicit_positions = self._prompt_inputs(images)
        mask = inputs["attention_mask"]
        extra = {"position_ids": position} if explicit_positions else {}
        out = model(**inputs, use_cache=True, **extra)
        cache = out.past_key_values
        batch = mask.shape[0]
        next_pos = position[:, -1] + 1
        logits = out.logits[:, -1, :].float()

        presence: list[dict[str, float]] = [{} for _ in range(batch)]
        chosen: list[set[str]] = [set() for _ in range(batch)]
        bad = [False] * batch
        active = [True] * batch
        last_kind = [-1] * batch

        # first decision: None or a letter
        for row in range(batch):
            groups = [tables["none"]] + tables["letters"]
            p, choice, on_format = self._group_probs(logits[row], groups)
            bad[row] = not on_format and not self.constrained
            for k in range(len(KINDS)):
                presence[row][SLUGS[k]] = float(p[k + 1])
            if choice == 0:
                active[row] = False
            else:
                last_kind[row] = choice - 1
                chosen[row].add(SLUGS[choice - 1])

        while any(active):
            chunks = [tables["lines"][last_kind[r]] if active[r] else [tables["pad"]] for r in range(batch)]
            width = max(len(c) for c in chunks)
            ids = torch.full((batch, width), tables["pad"], dtype=torch.long, device=device)
            new_mask = torch.zeros((batch, width), dtype=mask.dtype, device=device)
            for r, chunk in enumerate(chunks):
                ids[r, : len(chunk)] = torch.tensor(chunk, device=device)
                if active[r]:
                    new_mask[r, : len(chunk)] = 1
            pos = next_pos[:, None] + torch.arange(width, device=device)[None, :]
            mask = torch.cat([mask, new_mask], dim=1)
            extra = {"position_ids": pos} if explicit_positions else {}
            out = model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True, **extra)
            cache = out.past_key_values
            for r in range(batch):
                if not active[r]:
                    continue
                n = len(chunks[r])
                next_pos[r] += n
                # before the newline: does the answer end after this line?
                p_end, end_choice, on_end = self._group_probs(
                    out.logits[r, n - 2], [tables["end"], [tables["newline"]]]
                )
                if not on_end and not self.constrained:
                    bad[r] = True
                if end_choice == 0 or last_kind[r] == len(KINDS) - 1:
                    active[r] = False
                    continue
                allowed = list(range(last_kind[r] + 1, len(KINDS)))
                p, next_choice, on_format = self._group_probs(
                    out.logits[r, n - 1], [tables["letters"][k] for k in allowed]
                )
                if not on_format and not self.constrained:
                    bad[r] = True
                for j, k in enumerate(allowed):
                    presence[r][SLUGS[k]] = max(presence[r].get(SLUGS[k], 0.0), float(p[j]) * float(p_end[1]))
                last_kind[r] = allowed[next_choice]
                chosen[r].add(SLUGS[last_kind[r]])
        return chosen, presence, bad


# The reward settings, by their script names -> ArtifactReward keyword argument. Their defaults, help texts and
# choices live in one place, the DDPO script's fields (synartifact.configs.DDPOScriptArguments); the command-line
# flags (`add_reward_arguments`), the functions that take them (`evaluate_generator`, `run_reward_check`, through
# `check_reward_options`) and the records of a reward's settings (`reward_config`) are all derived from this table.
REWARD_SETTINGS: dict[str, str] = {
    "reward_mode": "mode",
    "reward_weights": "weights",
    "reward_soft": "soft",
    "reward_constrained": "constrained",
    "reward_temperature": "temperature",
    "reward_follow_lines": "follow_lines",
    "unparsable_reward": "unparsable_reward",
    "reward_batch_size": "batch_size",
}


def check_reward_options(options: Mapping[str, Any], where: str) -> None:
    """Refuse keyword arguments that are not reward settings, naming them and the valid ones."""
    unknown = sorted(set(options) - set(REWARD_SETTINGS))
    if unknown:
        raise TypeError(
            f"{where}() got unexpected keyword argument(s) {', '.join(unknown)}: the reward settings are "
            f"{', '.join(REWARD_SETTINGS)}."
        )


def reward_settings(*sources: Mapping[str, Any]) -> dict[str, Any]:
    """:class:`ArtifactReward` keyword arguments from script settings named as in :data:`REWARD_SETTINGS`.

    Each setting comes from the first source that gives it a value other than ``None`` (e.g. the command line's
    flags, then the DDPO run the generator was trained with); settings that no source gives keep ArtifactReward's
    defaults. Other keys are ignored.
    """
    kwargs: dict[str, Any] = {}
    for setting, name in REWARD_SETTINGS.items():
        value = next((source[setting] for source in sources if source.get(setting) is not None), None)
        if value is not None:
            kwargs[name] = value
    return kwargs


def reward_config(reward: Any) -> dict[str, Any]:
    """A reward's settings by their script names (as :data:`REWARD_SETTINGS`), for the records that describe it."""
    return {setting: getattr(reward, name, None) for setting, name in REWARD_SETTINGS.items()}


def _reward_fields() -> list:
    from dataclasses import fields

    from synartifact.configs import DDPOScriptArguments

    by_name = {f.name: f for f in fields(DDPOScriptArguments)}
    return [by_name[name] for name in REWARD_SETTINGS]


def add_reward_arguments(parser: Any, default: str = "ArtifactReward's") -> None:
    """Add a ``--reward-*`` flag per reward setting (each ``None`` when not given, for :func:`reward_settings`) to an
    argparse parser, with the DDPO script's help text and choices; ``default`` says in the help where unset
    settings come from."""
    import argparse

    for f in _reward_fields():
        kwargs: dict[str, Any] = {}
        if isinstance(f.default, bool):
            kwargs["action"] = argparse.BooleanOptionalAction
        elif isinstance(f.default, (int, float)):
            kwargs["type"] = type(f.default)
        if "choices" in f.metadata:
            kwargs["choices"] = list(f.metadata["choices"])
        help_text = f.metadata.get("help", "").replace("%", "%%")
        flag = "--" + f.name.replace("_", "-")
        parser.add_argument(flag, default=None, help=f"{help_text} (default: {default})", **kwargs)


def reward_arguments(args: Any) -> dict[str, Any]:
    """The reward settings an argparse namespace holds (those :func:`add_reward_arguments` added)."""
    return {setting: getattr(args, setting) for setting in REWARD_SETTINGS}

"""Guards against reward hacking in DDPO: several weighted reward terms, a drift penalty and best-by-judge selection.

Reward terms are named as open-r1 / TRL GRPO name their reward functions (``reward_funcs: [artifact, drift]``,
one weight each): :data:`REWARD_FUNCS_REGISTRY` maps a name to its factory. The total reward of a sample is
``sum(weight_i * term_i)``; every term is a *reward* (higher is better), so a penalty enters with its sign
already applied: the ``drift`` term is ``-distance`` (at most 0) and a positive weight makes drifting cost reward.

The drift distance is the mean squared error, in pixel space with values in [0, 1], between a sample and its
prompt's reference image: one image per training prompt sampled from the *base* model once, before training, with
a fixed seed. It is "per prompt", not "per seed": TRL 0.23.1's sampler draws its noise without a generator, so
matching each sample's own noise would mean seeding TRL's sampler and re-running the base model for every sample
(twice the sampling cost). The per-prompt reference costs one base sample per prompt, once. Its price: the
distance also holds the seed-to-seed variation of the base model, a per-prompt offset that is there from epoch
0; with per-prompt advantage normalization (``per_prompt_stat_tracking``) such an offset cancels, and what the
penalty pushes against is the *growth* of the distance as the generator moves away from the base model.

The ``contrast`` term guards against the shortcut ``benchmarks/reward_shortcuts.py`` measured: an artifact
classifier finds fewer artifacts in an image with less in it, so a flat blank of a sample's mean colour outscores the
sample itself, and blending a sample towards its mean colour raises the reward about linearly with the blend. The
term is ``-max(0, 1 - c / (floor * c_ref))``: the share of its floor a sample fell short of, where ``c`` is the
sample's RMS contrast (the standard deviation of its luminance), ``c_ref`` the mean over the base model's samples of
the prompt under :data:`REFERENCE_SEEDS` seeds and ``floor`` (:data:`CONTRAST_FLOOR`) the share of it a
sample may lose for free. It is 0 for a sample within the base model's usual range (so more contrast, or noise,
earns nothing, and the base's own samples are not pushed anywhere) and -1 for a blank; with weight ``w`` flattening
a sample entirely costs ``w``. The floor is there because a guard at the mean itself pushes every sample below the
mean upwards: measured (``benchmarks/ddpo_gain.py``), that push raised the classifier's "impractical luminosity" rate
and cost the artifact reward its gain. It is not the evaluation's content-fidelity measure (nearest-prototype recognition of 8 x 8 thumbnails,
:mod:`synartifact.generator.fidelity`): a generator that keeps its contrast but draws another scene still fails
there, so the evaluation stays an independent check of what the guard is meant to keep.

The ``noise`` term is the contrast guard's mirror image, against the other way out of the artifacts' reach that the
seed studies measured: refined samples that gain high-frequency energy (grain) the base model's samples do not have.
It is ``-min(1, max(0, e / (ceiling * e_ref) - 1))``, ``e`` the sample's Laplacian energy (:func:`laplacian_energy`:
the mean absolute 4-neighbour Laplacian of its luminance, a second-difference estimator, where the evaluation's
fine-detail ratio takes first differences of the colour channels), ``e_ref`` its prompt's mean over the base model's
samples (the same samples as the contrast guard's references: drawn once for both) and ``ceiling``
(:data:`NOISE_CEILING`) the share above it a sample may gain for free; -1 at twice the ceiling and beyond.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "REFERENCE_SEEDS",
    "REWARD_FUNCS_REGISTRY",
    "BestTracker",
    "CONTRAST_FLOOR",
    "ContrastGuard",
    "DriftPenalty",
    "NOISE_CEILING",
    "NoiseGuard",
    "MixedReward",
    "TERM_MEANINGS",
    "get_artifact_reward",
    "get_contrast_guard",
    "get_drift_penalty",
    "get_noise_guard",
    "get_reward_funcs",
    "check_reward_funcs",
    "image_array",
    "pixel_mse",
    "high_frequency",
    "laplacian_energy",
    "measure_drift",
    "rms_contrast",
]

# base-model samples per prompt whose mean statistic is the contrast and noise guards' reference
REFERENCE_SEEDS = 4
# the share of its reference contrast a sample may lose before the guard costs anything (the tiny SD's samples of one
# prompt vary by ~15 % in contrast; about 1 in 10 falls below 0.7 of its prompt's mean)
CONTRAST_FLOOR = 0.7
# the share above its reference Laplacian energy a sample may gain before the noise guard costs anything (measured on
# the demo's tiny SD, 30 prompts x 4 seeds against the mean of 4 others: about 1 sample in 14 lies above 1.3x)
NOISE_CEILING = 1.3
_LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)


# What each guard term's value is, in a few words (the reward curve's guard panel names the terms it draws with these).
TERM_MEANINGS = {
    "drift": "-pixel MSE to the base",
    "contrast": "-share of contrast lost",
    "noise": "-share of fine detail over its ceiling",
}


def image_array(image: Any) -> np.ndarray:
    """An image (PIL, HWC/CHW array or tensor, values in [0, 1] for floats, [0, 255] for integers) as a float32
    ``(H, W, C)`` array with values in [0, 1]."""
    if hasattr(image, "convert") and hasattr(image, "size"):
        return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if isinstance(image, torch.Tensor):
        image = image.detach().float().cpu().numpy()
    array = np.asarray(image)
    integer = np.issubdtype(array.dtype, np.integer)
    array = array.astype(np.float32) / (255.0 if integer else 1.0)
    if array.ndim != 3:
        raise ValueError(f"An image must have 3 dimensions (HWC or CHW), got shape {array.shape}.")
    if array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    return np.clip(np.nan_to_num(array[..., :3]), 0.0, 1.0)


def pixel_mse(a: Any, b: Any) -> float:
    """Mean squared error between two images of the same shape, pixels in [0, 1] (0: identical; two unrelated
    natural images are typically 0.05-0.15 apart)."""
    a, b = image_array(a), image_array(b)
    if a.shape != b.shape:
        raise ValueError(f"Images of shapes {a.shape} and {b.shape} cannot be compared: give the same size.")
    return float(np.mean((a - b) ** 2))


def high_frequency(image: Any) -> float:
    """Mean absolute difference between horizontally and vertically neighbouring pixels (values in [0, 1]): the
    image's fine-detail energy, which rises sharply when samples turn into noise."""
    array = image_array(image)
    return float((np.abs(np.diff(array, axis=0)).mean() + np.abs(np.diff(array, axis=1)).mean()) / 2)


def rms_contrast(image: Any) -> float:
    """RMS contrast: the standard deviation of the image's luminance (Rec. 601 weights, values in [0, 1]); 0 for a
    blank, about 0.1-0.3 for a photograph."""
    return float((image_array(image) @ _LUMINANCE).std())


def laplacian_energy(image: Any) -> float:
    """Mean absolute 4-neighbour Laplacian (``4 x centre - the 4 neighbours``) of the image's luminance (Rec. 601
    weights, values in [0, 1]) over its interior pixels: 0 for a blank or a linear ramp, high for grain."""
    lum = image_array(image) @ _LUMINANCE
    if min(lum.shape) < 3:
        raise ValueError(
            f"laplacian_energy needs an image of at least 3 x 3 pixels, got {lum.shape[1]} x {lum.shape[0]}."
        )
    centre = lum[1:-1, 1:-1]
    laplacian = 4 * centre - lum[:-2, 1:-1] - lum[2:, 1:-1] - lum[1:-1, :-2] - lum[1:-1, 2:]
    return float(np.abs(laplacian).mean())


def _base_samples(
    sd_pipeline: Any,
    prompts: Sequence[str],
    seeds: Sequence[int],
    num_inference_steps: int,
    guidance_scale: float,
    eta: float,
) -> dict[int, list]:
    """The base model's images of ``prompts`` per seed (eval mode while sampling, as it was afterwards)."""
    from synartifact.generator.sampling import sample_images

    was_training = sd_pipeline.unet.training
    sd_pipeline.unet.eval()
    try:
        return {
            seed: sample_images(
                sd_pipeline,
                prompts,
                seed,
                num_inference_steps=num_inference_steps,
                guidance_scale=guidance_scale,
                eta=eta,
            )
            for seed in seeds
        }
    finally:
        sd_pipeline.unet.train(was_training)


def _prompt_images(images: Any, prompts: Sequence[str], references: Mapping[str, Any], who: str) -> list:
    """``images`` as a list, one per prompt, every prompt one with a reference."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        images = list(images)
    images = list(images)
    if len(images) != len(prompts):
        raise ValueError(f"{who} got {len(images)} images for {len(prompts)} prompts: give one prompt each.")
    for prompt in prompts:
        if str(prompt) not in references:
            raise ValueError(
                f"{who} has no reference for prompt {prompt!r}: references exist for the training prompts only "
                f"({len(references)} of them)."
            )
    return images


def measure_drift(base: Mapping[int, Sequence[Any]], refined: Mapping[int, Sequence[Any]]) -> dict:
    """How far a refined generator's samples moved from the base generator's, and whether they turned into noise.

    ``base`` and ``refined`` map a seed to its images, image ``i`` of a seed made from the same prompt and noise on
    both sides. Returns ``mse`` (per image, base vs refined), its ``mean_mse``; ``seed_to_seed_mse``, the mean MSE
    between base images of the same prompt under different seeds (how far an *independent* sample of the prompt
    lies: the scale of the drift), ``relative_drift`` (``mean_mse / seed_to_seed_mse``: 0 unchanged, ~1 as
    different as a new sample of the prompt); ``high_frequency`` per side (:func:`high_frequency` per image and its
    mean) and ``noise_ratio`` (refined / base mean: ~1 keeps the texture of the base, >> 1 drifted into noise).
    """
    seeds = [s for s in base if s in refined]
    if not seeds:
        raise ValueError("measure_drift needs the images of at least one seed on both sides.")
    mse = [pixel_mse(b, r) for s in seeds for b, r in zip(base[s], refined[s], strict=True)]
    across = [pixel_mse(x, y) for s, t in zip(seeds, seeds[1:]) for x, y in zip(base[s], base[t], strict=True)]
    hf = {
        name: [high_frequency(im) for s in seeds for im in side[s]]
        for name, side in (("base", base), ("refined", refined))
    }
    seed_to_seed = float(np.mean(across)) if across else None
    mean_hf = {name: float(np.mean(values)) for name, values in hf.items()}
    return {
        "mean_mse": float(np.mean(mse)),
        "mse": mse,
        "seed_to_seed_mse": seed_to_seed,
        "relative_drift": float(np.mean(mse)) / seed_to_seed if seed_to_seed else None,
        "high_frequency": {name: {"mean": mean_hf[name], "per_image": hf[name]} for name in hf},
        "noise_ratio": mean_hf["refined"] / mean_hf["base"] if mean_hf["base"] > 0 else None,
        "seed_to_seed": across,
    }


class DriftPenalty:
    """The ``drift`` reward term: ``-mean squared error`` (pixels in [0, 1]) between each sample and its prompt's
    reference image from the base model (see the module docstring for why per prompt); called as TRL's DDPO
    scorer, ``(images, prompts, metadata) -> (terms, info)``."""

    def __init__(self, references: Mapping[str, Any]) -> None:
        if not references:
            raise ValueError("DriftPenalty needs at least one reference image (a prompt -> base-model image map).")
        self.references = {str(p): image_array(image) for p, image in references.items()}

    @classmethod
    def from_pipeline(
        cls,
        sd_pipeline: Any,
        prompts: Sequence[str],
        seed: int = 0,
        num_inference_steps: int = 20,
        guidance_scale: float = 5.0,
        eta: float = 1.0,
    ) -> DriftPenalty:
        """Reference images of ``prompts`` sampled from ``sd_pipeline`` (the base model) with a fixed seed."""
        prompts = list(dict.fromkeys(prompts))
        images = _base_samples(sd_pipeline, prompts, [seed], num_inference_steps, guidance_scale, eta)[seed]
        return cls(dict(zip(prompts, images)))

    def distances(self, images: Any, prompts: Sequence[str]) -> list[float]:
        """Mean squared pixel error of each image to its prompt's reference (0 for the reference itself)."""
        images = _prompt_images(images, prompts, self.references, "DriftPenalty")
        values = []
        for image, prompt in zip(images, prompts):
            reference = self.references[str(prompt)]
            array = image_array(image)
            if array.shape != reference.shape:
                raise ValueError(
                    f"Image of shape {array.shape} for prompt {prompt!r} does not match its reference's shape "
                    f"{reference.shape}: sample at the resolution the references were made at."
                )
            values.append(pixel_mse(array, reference))
        return values

    def __call__(self, images: Any, prompts: Sequence[str], metadata: Any = None) -> tuple[torch.Tensor, dict]:
        """TRL DDPO scorer: the drift terms (``-distance``) as a float tensor, with their mean distance."""
        distances = self.distances(images, prompts)
        return -torch.tensor(distances, dtype=torch.float32), {"mean_drift": float(np.mean(distances))}


class _ReferenceGuard:
    """A reward term on one image statistic relative to its prompt's mean over base-model samples, free within a band
    (the contrast and noise guards); called as TRL's DDPO scorer, ``(images, prompts, metadata) -> (terms, info)``.
    Subclasses name the ``statistic``, the ``bound``'s meaning and the ``term`` of a ratio."""

    statistic: Callable[[Any], float]
    bound_name: str
    info_key: str

    def __init__(self, references: Mapping[str, float], bound: float) -> None:
        who = type(self).__name__
        if not references:
            raise ValueError(f"{who} needs at least one reference value (a prompt -> base-model mean map).")
        bad = {p: c for p, c in references.items() if not (math.isfinite(float(c)) and float(c) >= 0)}
        if bad:
            raise ValueError(f"{who}: reference values must be finite and >= 0, got {bad}.")
        self.references = {str(p): float(c) for p, c in references.items()}
        self.bound = float(bound)

    @classmethod
    def from_samples(
        cls, samples: Mapping[int, Sequence[Any]], prompts: Sequence[str], **kwargs: Any
    ) -> _ReferenceGuard:
        """Each prompt's mean statistic over ``samples`` (seed -> one base-model image per prompt, in order)."""
        references = {
            p: float(np.mean([cls.statistic(images[i]) for images in samples.values()])) for i, p in enumerate(prompts)
        }
        return cls(references, **kwargs)

    @classmethod
    def from_pipeline(
        cls,
        sd_pipeline: Any,
        prompts: Sequence[str],
        seed: int = 0,
        num_seeds: int = REFERENCE_SEEDS,
        num_inference_steps: int = 20,
        guidance_scale: float = 5.0,
        eta: float = 1.0,
        **kwargs: Any,
    ) -> _ReferenceGuard:
        """Each prompt's mean statistic over ``num_seeds`` samples of ``sd_pipeline`` (the base model), seeds
        ``seed .. seed + num_seeds - 1``."""
        prompts = list(dict.fromkeys(prompts))
        seeds = [seed + k for k in range(max(int(num_seeds), 1))]
        samples = _base_samples(sd_pipeline, prompts, seeds, num_inference_steps, guidance_scale, eta)
        return cls.from_samples(samples, prompts, **kwargs)

    def ratios(self, images: Any, prompts: Sequence[str]) -> list[float]:
        """Each image's statistic over its prompt's reference (1 when the reference is 0)."""
        images = _prompt_images(images, prompts, self.references, type(self).__name__)
        values = []
        for image, prompt in zip(images, prompts):
            reference = self.references[str(prompt)]
            values.append(type(self).statistic(image) / reference if reference > 0 else 1.0)
        return values

    def term(self, ratio: float) -> float:
        raise NotImplementedError

    def __call__(self, images: Any, prompts: Sequence[str], metadata: Any = None) -> tuple[torch.Tensor, dict]:
        """TRL DDPO scorer: the terms (in [-1, 0]) with the batch's mean ratio to the references."""
        ratios = self.ratios(images, prompts)
        terms = [self.term(r) for r in ratios]
        return torch.tensor(terms, dtype=torch.float32), {self.info_key: float(np.mean(ratios))}


class ContrastGuard(_ReferenceGuard):
    """The ``contrast`` reward term (see the module docstring): ``-max(0, 1 - c / (floor * c_ref))`` per sample,
    ``c`` its RMS contrast and ``c_ref`` its prompt's mean over base-model samples."""

    statistic = staticmethod(rms_contrast)
    info_key = "mean_contrast_ratio"

    def __init__(self, references: Mapping[str, float], floor: float = CONTRAST_FLOOR) -> None:
        if not (0 < float(floor) <= 1):
            raise ValueError(
                f"ContrastGuard: floor is {floor!r}; give the share of the reference kept free, in (0, 1]."
            )
        super().__init__(references, floor)
        self.floor = self.bound

    def term(self, ratio: float) -> float:
        return -max(0.0, 1.0 - ratio / self.floor)


class NoiseGuard(_ReferenceGuard):
    """The ``noise`` reward term (see the module docstring): ``-min(1, max(0, e / (ceiling * e_ref) - 1))`` per
    sample, ``e`` its Laplacian energy and ``e_ref`` its prompt's mean over base-model samples."""

    statistic = staticmethod(laplacian_energy)
    info_key = "mean_noise_ratio"

    def __init__(self, references: Mapping[str, float], ceiling: float = NOISE_CEILING) -> None:
        if not (math.isfinite(float(ceiling)) and float(ceiling) >= 1):
            raise ValueError(f"NoiseGuard: ceiling is {ceiling!r}; give the reference's multiple gained free, >= 1.")
        super().__init__(references, ceiling)
        self.ceiling = self.bound

    def term(self, ratio: float) -> float:
        return -min(1.0, max(0.0, ratio / self.ceiling - 1.0))


class MixedReward:
    """Weighted reward terms as one TRL DDPO scorer: ``total = sum(weight_i * term_i)``; ``info`` is the first
    term's (the artifact reward's counts) plus ``terms``, each term's mean over the batch, unweighted."""

    def __init__(self, funcs: Mapping[str, Callable], weights: Sequence[float]) -> None:
        if len(funcs) != len(weights):
            raise ValueError(
                f"reward_funcs_weights has {len(weights)} values for {len(funcs)} reward_funcs "
                f"({', '.join(funcs)}): give one weight per reward function, in the same order."
            )
        for name, weight in zip(funcs, weights):
            if not (math.isfinite(float(weight)) and float(weight) >= 0):
                raise ValueError(
                    f"reward_funcs_weights: the weight of {name!r} is {weight!r}; weights must be finite and >= 0 "
                    "(a penalty such as 'drift' already enters negatively)."
                )
        self.funcs = dict(funcs)
        self.weights = dict(zip(funcs, (float(w) for w in weights)))

    def __repr__(self) -> str:
        return f"MixedReward({', '.join(f'{w:g} * {n}' for n, w in self.weights.items())})"

    def __call__(self, images: Any, prompts: Sequence[str], metadata: Any = None) -> tuple[torch.Tensor, dict]:
        """TRL DDPO scorer: the weighted sum of the terms, with each term's batch mean in ``info["terms"]``."""
        total, info, terms = None, None, {}
        for name, func in self.funcs.items():
            values, term_info = func(images, prompts, metadata)
            values = torch.as_tensor(values, dtype=torch.float32).flatten()
            terms[name] = float(values.mean()) if values.numel() else float("nan")
            total = self.weights[name] * values if total is None else total + self.weights[name] * values
            if info is None and isinstance(term_info, dict):
                info = dict(term_info)
        info = info or {}
        info["terms"] = terms
        info["num_terms_images"] = int(total.numel())
        return total, info


def _sampled_as(config: Any) -> dict[str, Any]:
    """``from_pipeline``'s sampling arguments as TRL's DDPO ``config`` samples, with its seed."""
    return {
        "seed": int(config.seed),
        "num_inference_steps": config.sample_num_steps,
        "guidance_scale": config.sample_guidance_scale,
        "eta": config.sample_eta,
    }


def get_artifact_reward(*, artifact: Callable, **_: Any) -> Callable:
    """The ``artifact`` term: the classifier's :class:`~synartifact.reward.ArtifactReward` (1 = no artifact)."""
    return artifact


def get_drift_penalty(*, sd_pipeline: Any, prompts: Sequence[str], config: Any, **_: Any) -> DriftPenalty:
    """The ``drift`` term: a :class:`DriftPenalty` against the base model's images of ``prompts`` (call it before
    training), sampled as TRL's ``config`` samples, with its seed."""
    return DriftPenalty.from_pipeline(sd_pipeline, prompts, **_sampled_as(config))


def _reference_samples(sd_pipeline: Any, prompts: Sequence[str], config: Any, memo: dict | None) -> tuple[list, dict]:
    """The training prompts (each once) and the base model's samples of them under :data:`REFERENCE_SEEDS` seeds from
    the config's seed on, sampled as TRL's ``config`` samples; drawn once per ``memo`` (the guards of one reward)."""
    prompts = list(dict.fromkeys(prompts))
    key = tuple(prompts)
    if memo is not None and key in memo:
        return prompts, memo[key]
    sampled = _sampled_as(config)
    first = sampled.pop("seed")
    seeds = [first + k for k in range(REFERENCE_SEEDS)]
    samples = _base_samples(sd_pipeline, prompts, seeds, **sampled)
    if memo is not None:
        memo[key] = samples
    return prompts, samples


def get_contrast_guard(
    *, sd_pipeline: Any, prompts: Sequence[str], config: Any, reference_memo: dict | None = None, **_: Any
) -> ContrastGuard:
    """The ``contrast`` term: a :class:`ContrastGuard` whose references are the base model's samples of ``prompts``
    (call it before training), sampled as TRL's ``config`` samples, from its seed on."""
    prompts, samples = _reference_samples(sd_pipeline, prompts, config, reference_memo)
    return ContrastGuard.from_samples(samples, prompts)


def get_noise_guard(
    *, sd_pipeline: Any, prompts: Sequence[str], config: Any, reference_memo: dict | None = None, **_: Any
) -> NoiseGuard:
    """The ``noise`` term: a :class:`NoiseGuard` on the same base-model samples as the contrast guard's."""
    prompts, samples = _reference_samples(sd_pipeline, prompts, config, reference_memo)
    return NoiseGuard.from_samples(samples, prompts)


REWARD_FUNCS_REGISTRY: dict[str, Callable[..., Callable]] = {
    "artifact": get_artifact_reward,
    "contrast": get_contrast_guard,
    "drift": get_drift_penalty,
    "noise": get_noise_guard,
}


def get_reward_funcs(names: Sequence[str], weights: Sequence[float] | None = None, **context: Any) -> Callable:
    """The DDPO reward of ``names`` (keys of :data:`REWARD_FUNCS_REGISTRY`) with ``weights`` (all 1 when ``None``);
    ``context`` holds what the factories take (``artifact``, ``sd_pipeline``, ``prompts``, ``config``). The plain
    artifact reward with weight 1 is returned as it is."""
    names, weights = check_reward_funcs(names, weights)
    if names == ["artifact"] and weights[0] == 1.0:
        return REWARD_FUNCS_REGISTRY["artifact"](**context)
    context.setdefault("reference_memo", {})  # the contrast and noise guards share their base-model samples
    return MixedReward({n: REWARD_FUNCS_REGISTRY[n](**context) for n in names}, weights)


def check_reward_funcs(names: Sequence[str], weights: Sequence[float] | None = None) -> tuple[list[str], list[float]]:
    """``reward_funcs`` and ``reward_funcs_weights`` checked (known names, each once; one finite weight >= 0 each;
    all 1 when ``None``), as lists."""
    names = list(names)
    if not names:
        raise ValueError(f"reward_funcs is empty: give one or more of {', '.join(REWARD_FUNCS_REGISTRY)}.")
    unknown = [n for n in names if n not in REWARD_FUNCS_REGISTRY]
    if unknown or len(set(names)) != len(names):
        raise ValueError(
            f"reward_funcs {names}: each must be one of {', '.join(REWARD_FUNCS_REGISTRY)}, at most once."
        )
    weights = [1.0] * len(names) if weights is None else list(weights)
    if len(weights) != len(names):
        raise ValueError(
            f"reward_funcs_weights has {len(weights)} values for {len(names)} reward_funcs ({', '.join(names)}): "
            "give one weight per reward function, in the same order."
        )
    for name, weight in zip(names, weights):
        if not (math.isfinite(float(weight)) and float(weight) >= 0):
            raise ValueError(
                f"reward_funcs_weights: the weight of {name!r} is {weight!r}; weights must be finite and >= 0 "
                "(a penalty such as 'drift' already enters negatively)."
            )
    return names, [float(w) for w in weights]


class BestTracker:
    """Keeps the best epoch by judge reward: :meth:`update` says whether an epoch's judge reward beats every earlier
    one (ties keep the earlier epoch; NaN never wins)."""

    def __init__(self) -> None:
        self.best_epoch: int | None = None
        self.best_value: float | None = None

    def update(self, epoch: int, value: float) -> bool:
        """Record ``epoch``'s judge reward; ``True`` when it is the new best (its weights should be kept)."""
        value = float(value)
        if not math.isfinite(value) or (self.best_value is not None and value <= self.best_value):
            return False
        self.best_epoch, self.best_value = int(epoch), value
        return True

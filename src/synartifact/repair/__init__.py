"""Repair: inpaint the artifacts the classifier finds, check again, keep the better image.

Each round, for every image still judged to have artifacts: the classifier's boxes (padded by ``margin``) become a
mask; an inpainting pipeline (diffusers ``StableDiffusionInpaintPipeline`` / ``AutoPipelineForInpainting``)
repaints the masked region, prompted with the image's prompt when there is one and told to avoid the artifacts'
captions (the negative prompt); its output is pasted back inside the mask only, with a feathered edge that stays
inside the mask, so every pixel outside the mask is bit-identical to the input. The candidate is classified again
and kept only if its reward (:class:`~synartifact.reward.ArtifactReward`) is higher: the image returned is the best
one seen, never worse than the original. Rounds stop when nothing is found or they are spent.

>>> repairer = ArtifactRepairer("outputs/classifier", "outputs/inpainter")                # doctest: +SKIP
>>> result = repairer.repair([image], prompts=["a cat on a sofa"], rounds=2, seed=0)[0]   # doctest: +SKIP
>>> result.reward_before, result.reward_after, result.mask_area                           # doctest: +SKIP

``synartifact repair --classifier DIR --inpainter DIR_OR_HUB_ID --images FOLDER_OR_DATASET --out DIR`` runs it on a
folder of images or a dataset split and writes the repaired images, a before/after grid and ``repair.jsonl``.

A classifier that answers without boxes (the ``labels`` answer mode) names kinds but not places: such artifacts are
repaired where ``hints`` (known boxes, e.g. a dataset's annotations) say; else, with ``unboxed="locate"``, where
the classifier itself points when asked by occlusion (:mod:`.locate`: the window whose covering lowers its
probability of the kind most), or over the whole image with ``unboxed="image"``; by default (``"skip"``) they are
reported and left alone.

The parts: :mod:`.masks` (boxes -> mask with margin and feather, pasting inside it), :mod:`.locate` (occlusion
boxes for kinds named without one), :mod:`.results`
(:class:`RepairResult`, :func:`summarize`), :mod:`.repairer` (:class:`ArtifactRepairer`, loading the inpainter) and
:mod:`.cli` (``synartifact repair``: folders and datasets in, images, grid and ``repair.jsonl`` out).
"""

from synartifact.repair.cli import (
    CLI_DEFAULTS,
    GRID_NAME,
    IMAGE_SUFFIXES,
    JSONL_NAME,
    add_cli,
    repair_folder,
    resolve_cli_options,
    save_repair_grid,
)
from synartifact.repair.masks import Box, artifact_mask
from synartifact.repair.repairer import UNBOXED_POLICIES, ArtifactRepairer, load_inpainter
from synartifact.repair.results import RepairResult, RepairRound, summarize

__all__ = [
    "ArtifactRepairer",
    "RepairResult",
    "RepairRound",
    "UNBOXED_POLICIES",
    "artifact_mask",
    "load_inpainter",
    "repair_folder",
    "add_cli",
    "Box",
    "CLI_DEFAULTS",
    "GRID_NAME",
    "IMAGE_SUFFIXES",
    "JSONL_NAME",
    "resolve_cli_options",
    "save_repair_grid",
    "summarize",
]

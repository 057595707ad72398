"""The demo's ``REPORT.md``: tables and plots gathered from the stages' JSON outputs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from synartifact.demo.lanes import LANES_FILE, stage_paths
from synartifact.demo.settings import FINGERPRINT_FILE, DemoSettings
from synartifact.demo.stages import STAGES_BEFORE_REPORT
from synartifact.utils import write_text_atomic

__all__ = ["write_report"]


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _stage_times(out: Path, times: dict[str, Any]) -> list[str]:
    """The stage table; where the judge's stages ran in a second process (``.stages/lanes.json``), a column says
    which stages overlapped and the wall clock counts the side lane only where the main lane waited for it."""
    lanes = _load_json(out / ".stages" / LANES_FILE)
    side, beside = set(lanes.get("side") or ()), set(lanes.get("beside") or ())
    rows = {name: sec for name, sec in times.items() if name != "report"}
    if not side:
        lines = ["## Stage times (seconds)", "", "| stage | seconds |", "|---|---|"]
        return lines + [f"| {name} | {_fmt(sec) if sec is not None else 'not run'} |" for name, sec in rows.items()]

    def lane(name: str) -> str:
        if name in side:
            return f"second process, {lanes.get('threads')} thread(s)"
        return f"beside it, {lanes.get('threads')} thread(s)" if name in beside else "alone"

    main = sum(sec for name, sec in rows.items() if name not in side and isinstance(sec, (int, float)))
    wall = main + float(lanes.get("wait_seconds") or 0)
    lines = [
        "## Stage times (seconds)",
        "",
        f"{', '.join(sorted(side, key=list(rows).index))} ran in a second process beside "
        f"{', '.join(sorted(beside, key=list(rows).index))} (`synartifact.demo.lanes`); the main lane waited "
        f"{_fmt(lanes.get('wait_seconds'))} s for it. Wall clock of the stages: {_fmt(wall)} s.",
        "",
        "| stage | seconds | ran |",
        "|---|---|---|",
    ]
    return lines + [
        f"| {name} | {_fmt(sec) if sec is not None else 'not run'} | {lane(name)} |" for name, sec in rows.items()
    ]


def write_report(s: DemoSettings, folder: Path) -> Path:
    """Write ``REPORT.md`` from the stages' JSON outputs and link their plots."""
    out = Path(s.out)
    clf = _load_json(out / "classifier-eval" / "metrics.json")
    gen = _load_json(out / "generator-eval" / "metrics.json")
    times = {
        st.name: _load_json(stage_paths(out, st)[1] / FINGERPRINT_FILE).get("seconds") for st in STAGES_BEFORE_REPORT
    }
    lines = [
        "# synartifact demo report",
        "",
        "Everything below ran offline on tiny models built from configs (random initial weights), on data "
        "synthesized from photographs bundled with scikit-image. The numbers show the pipeline works end to end; "
        "they say nothing about real checkpoints.",
        "",
    ]
    lines += ["## Dataset", "", f'Hub-layout folder: `{out / "dataset"}` (`load_dataset("{out / "dataset"}")`).', ""]
    if (out / "dataset" / "artifacts_per_kind.png").is_file():
        lines += ["![artifacts per kind](dataset/artifacts_per_kind.png)", ""]
    run = _load_json(out / "classifier" / "sft_run.json")
    method = "SFT + LoRA" if run.get("use_peft") else "SFT, full fine-tuning"
    lines += [f"## Classifier: zero-shot base vs fine-tuned ({method})", ""]
    if run:
        lines += [
            f"Trained {run.get('global_step')} steps on {run.get('num_train_samples')} images "
            f"(answer mode `{run.get('answer_mode')}`, final train loss {_fmt(run.get('train_loss'))}).",
            "",
        ]
    if clf:
        keys = ["accuracy", "macro_f1", "micro_f1", "exact_match"]
        lines += ["| metric | baseline (zero-shot) | fine-tuned | delta |", "|---|---|---|---|"]
        for key in keys:
            b, m = clf.get("baseline", {}).get(key), clf.get("model", {}).get(key)
            delta = m - b if isinstance(m, (int, float)) and isinstance(b, (int, float)) else ""
            lines.append(f"| {key} | {_fmt(b)} | {_fmt(m)} | {_fmt(delta)} |")
        lines += ["", "Full report: [classifier-eval/report.md](classifier-eval/report.md)", ""]
        for png in sorted((out / "classifier-eval").glob("*.png")):
            lines += [f"![{png.stem}](classifier-eval/{png.name})", ""]
    pre = _load_json(out / "tiny-sd" / "pretrain.json")
    if pre:
        lines += [
            "## Base generator: the tiny Stable Diffusion pre-trained on the dataset",
            "",
            f"VAE {pre.get('vae_steps')} steps, UNet {pre.get('unet_steps')} steps on {pre.get('num_images')} images "
            f"and {pre.get('num_prompts')} prompts at {pre.get('resolution')} px in {_fmt(pre.get('seconds'))} s "
            f"(final noise-prediction loss {_fmt(pre.get('final_unet_loss'))}). Samples:",
            "",
            "![pre-trained samples](tiny-sd/pretrain_samples.png)",
            "",
        ]
    lines += ["## Generator: base vs refined (DDPO on the classifier's reward)", ""]
    summary = _load_json(out / "generator" / "ddpo_summary.json")
    if gen:
        if summary:
            timing = summary.get("timing", {})
            lines += [
                f"DDPO: {summary.get('epochs')} epochs in {_fmt(sum(timing.get(k, 0) for k in ('sampling_s', 'reward_s', 'training_s')))} s "
                f"(sampling {100 * timing.get('sampling_share', 0):.0f} %, reward "
                f"{100 * timing.get('reward_share', 0):.0f} %, training {100 * timing.get('training_share', 0):.0f} %) "
                f"on {len(summary.get('train_prompts', []))} training prompts; evaluated below on "
                f"{gen.get('config', {}).get('num_prompts')} held-out prompts x "
                f"{gen.get('config', {}).get('images_per_prompt', 1)} images x seeds {gen.get('config', {}).get('seeds')}.",
                "",
            ]
        lines += ["| generator | mean reward | spread over seeds (std) |", "|---|---|---|"]
        for key in ("base", "refined"):
            part = gen.get(key, {})
            lines.append(f"| {key} | {_fmt(part.get('mean_reward'))} | {_fmt(part.get('std'))} |")
        delta = gen.get("delta", {})
        if delta:
            lines += [
                "",
                f"Gain {_fmt(delta.get('mean_reward'))} = {_fmt(delta.get('gain_over_spread'))} x the larger seed "
                "spread (the target is > 2).",
            ]
        lines += [
            "",
            "Full report: [generator-eval/report.md](generator-eval/report.md); the before/after grid, the drift "
            "and the reward curve are in the next section.",
            "",
        ]
    lines += _trust_section(out, gen, summary)
    lines += _repair_section(out)
    lines += _stage_times(out, times)
    lines += [
        "",
        "## Next",
        "",
        "Open the Spaces on the trained models:",
        "",
        "```",
        f"SYNARTIFACT_CLASSIFIER={out / 'classifier'} python spaces/classify/app.py",
        f"SYNARTIFACT_CLASSIFIER={out / 'classifier'} SYNARTIFACT_GENERATOR_BASE={out / 'tiny-sd'} "
        f"SYNARTIFACT_GENERATOR_LORA={out / 'generator'} python spaces/generate/app.py",
        "```",
        "",
    ]
    path = out / "REPORT.md"
    write_text_atomic(path, "\n".join(lines))
    return path


def _trust_section(out: Path, gen: dict, summary: dict) -> list[str]:
    """REPORT.md's "Is the gain real?": the reward's pair accuracy, the judge's quality, reward vs judge gains, the
    before/after grid, drift and the reward curve (``gen``: generator-eval's metrics, ``summary``: the DDPO run's)."""
    check = _load_json(out / "reward-check" / "metrics.json")
    judge_eval = _load_json(out / "judge-eval" / "metrics.json")
    curve = out / "generator" / "reward_curve.png"
    if not (check or judge_eval or gen or curve.is_file()):
        return []
    lines = ["## Is the gain real?", ""]
    if check:
        lines += [
            f"**Reward pair accuracy**: on {check.get('n_pairs')} pairs (a clean held-out image and the same image "
            "with one injected artifact), how often the reward ranks the clean one higher (ties count half): "
            f"**{_fmt(check.get('pair_accuracy'))}** overall.",
            "",
            "| kind | pair accuracy | pairs |",
            "|---|---|---|",
        ]
        for kind, value in check.get("per_kind", {}).items():
            lines.append(f"| {kind} | {_fmt(value)} | {check.get('per_kind_n', {}).get(kind, '')} |")
        lines += ["", "![pair accuracy per kind](reward-check/per_kind.png)", ""]
    if judge_eval:
        model, base = judge_eval.get("model", {}), judge_eval.get("baseline", {})
        lines += [
            "**The judge**: a tiny model of another family and seed, trained on images the reward's classifier never "
            "saw (`judge-dataset`, synthesized with another seed). On the test split: macro-F1 "
            f"{_fmt(model.get('macro_f1'))} (zero-shot "
            f"{_fmt(base.get('macro_f1'))}), artifact / no-artifact F1 {_fmt(model.get('binary_f1'))}.",
            "",
        ]
    judged = gen.get("judge")
    if judged:
        lines += [
            "| judged by | base | refined | gain | gain / seed spread | artifact rate base -> refined |",
            "|---|---|---|---|---|---|",
        ]
        for name, side, gain in (
            ("training reward", gen, gen.get("reward_gain_in_spread")),
            ("independent judge", judged, gen.get("judge_gain_in_spread")),
        ):
            base, refined, delta = side.get("base", {}), side.get("refined", {}), side.get("delta", {})
            lines.append(
                f"| {name} | {_fmt(base.get('mean_reward'))} | {_fmt(refined.get('mean_reward'))} | "
                f"{_fmt(delta.get('mean_reward'))} | {_fmt(gain)} | {_fmt(base.get('artifact_rate'))} -> "
                f"{_fmt(refined.get('artifact_rate'))} |"
            )
        lines += [
            "",
            "A gain under the training reward that the judge does not confirm is reward hacking, not a result. Both "
            "score the same images of the refined generator's last epoch (the judge's best epoch is not used here, so "
            "the judge never chose what it grades). Per-kind rates: [generator-eval/report.md](generator-eval/report.md).",
            "",
        ]
    if (out / "generator-eval" / "before_after.png").is_file():
        lines += ["![before and after, scored by the reward and by the judge](generator-eval/before_after.png)", ""]
    drift = gen.get("drift")
    if drift:
        hf = drift.get("high_frequency", {})
        lines += [
            f"**Drift**: a refined sample lies {_fmt(drift.get('mean_mse'))} (pixel MSE) from the base sample of the "
            f"same prompt and noise, {_fmt(drift.get('relative_drift'))} x the distance of an independent base sample "
            f"of the prompt ({_fmt(drift.get('seed_to_seed_mse'))}); fine-detail energy base "
            f"{_fmt(hf.get('base', {}).get('mean'))} -> refined {_fmt(hf.get('refined', {}).get('mean'))} "
            f"(ratio {_fmt(drift.get('noise_ratio'))}; samples that turned into noise would show a ratio well above 1).",
            "",
            "![drift](generator-eval/drift.png)",
            "",
        ]
    fidelity = gen.get("fidelity")
    if fidelity and fidelity.get("base_recognized") is not None:
        lines += [
            "**Content fidelity**: can one still tell which prompt a sample shows? A recognizer built from the base "
            "model's own samples (one prototype per prompt, the sample of the same noise left out) names the prompt "
            f"of {_fmt(fidelity.get('base_recognized'))} of the base samples and "
            f"{_fmt(fidelity.get('refined_recognized'))} of the refined ones (chance {_fmt(fidelity.get('chance'))}): "
            f"fidelity {_fmt(fidelity.get('fidelity'))}, kept at {_fmt(fidelity.get('threshold'))} or above "
            "(a generator that turns scenes into blanks is recognized at chance).",
            "",
        ]
        if (out / "generator-eval" / "fidelity.png").is_file():
            lines += ["![content fidelity](generator-eval/fidelity.png)", ""]
    if curve.is_file():
        best = summary.get("best_epoch")
        guard = summary.get("content_guard") or {}
        lost = guard.get("lost_epochs") or []
        if best is not None:
            picked = f" The judge rated epoch {best} best (`generator/best/`)"
            picked += (
                f", passing over {len(lost)} epoch(s) whose samples lost their content ({lost})." if lost else "."
            )
        elif guard.get("no_epoch_kept_content"):
            picked = " No judged epoch kept its content (content fidelity), so no epoch is called best."
        else:
            picked = ""
        lines += [
            "**Overoptimization**: the training reward per epoch beside the judge's reward on held-out prompts that "
            "are neither trained on nor used in the comparison above; a training reward that rises while the judge "
            "falls is the sign of reward hacking." + picked,
            "",
            "![reward curve](generator/reward_curve.png)",
            "",
        ]
    if gen.get("delta"):
        from synartifact.generator.verdict import compute_verdict, verdict_markdown

        # the verdict evaluate-generator computed (also on the generator's card); older runs' figures are weighed now
        verdict = gen.get("verdict") or compute_verdict(gen)
        lines += verdict_markdown(verdict) + [""]
    return lines


def _repair_section(out: Path) -> list[str]:
    """REPORT.md's repair section, from ``repair/summary.json`` (what ``synartifact repair`` writes; nothing when the
    stage has not run)."""
    rep = _load_json(out / "repair" / "summary.json")
    if not rep:
        return []
    pre = _load_json(out / "tiny-sd-inpaint" / "inpaint_pretrain.json")
    lines = ["## Repair: inpaint what the classifier finds, keep the better image", ""]
    if pre:
        lines += [
            f"Inpainter: the pre-trained tiny SD widened to 9 input channels (mask channels zero-initialized), then "
            f"{pre.get('steps')} steps of filling random boxes on {pre.get('num_images')} images at "
            f"{pre.get('resolution')} px in {_fmt(pre.get('seconds'))} s.",
            "",
        ]
    lines += [
        f"{rep.get('num_images')} held-out test images with injected artifacts, {rep.get('rounds')} rounds of "
        f"{rep.get('num_inference_steps')} inpainting steps; judged by the classifier's reward (mode "
        f"`{rep.get('reward_mode')}`). Masks: {rep.get('hints')}, padded by {_fmt(rep.get('margin'))} of the side.",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| artifact rate (classifier) | {_fmt(rep.get('artifact_rate_before'))} | "
        f"{_fmt(rep.get('artifact_rate_after'))} |",
        f"| mean reward | {_fmt(rep.get('mean_reward_before'))} | {_fmt(rep.get('mean_reward_after'))} |",
        f"| artifact rate (independent judge) | {_fmt(rep.get('judge_artifact_rate_before'))} | "
        f"{_fmt(rep.get('judge_artifact_rate_after'))} |",
        f"| mean judge reward | {_fmt(rep.get('judge_mean_reward_before'))} | "
        f"{_fmt(rep.get('judge_mean_reward_after'))} |",
        "",
        f"Images improved {_fmt(rep.get('improved'))}, unchanged {_fmt(rep.get('unchanged'))}, made worse "
        f"{_fmt(rep.get('worse'))} (a repair is kept only if the reward rises, so this is 0 by construction). "
        f"Pixels outside the mask unchanged in every image: **{'yes' if rep.get('outside_mask_unchanged') else 'NO'}** "
        f"(checked pixel by pixel); mean repainted area {_fmt(rep.get('mean_mask_area'))} of the image.",
        "",
        "![repair before and after](repair/before_after.png)",
        "",
    ]
    return lines

"""SynArtifact generate Space: one prompt and seed, the base generator and the refined one side by side.

The refined generator is the base Stable Diffusion with the LoRA that DDPO trained on the artifact classifier's
reward. Both images are drawn from the same seed, then classified and scored by the same classifier.
Models come from ``SYNARTIFACT_GENERATOR_BASE``, ``SYNARTIFACT_GENERATOR_LORA`` and ``SYNARTIFACT_CLASSIFIER``
(Hub ids or folders); without them tiny untrained models are built offline and the page says so.
Run locally with ``python spaces/generate/app.py`` (``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` choose the
address). The models load on the first request, once per process.
"""

from __future__ import annotations

import gradio as gr

from synartifact.webui.display import KIND_COLORS, TABLE_HEADERS, analyse, annotations, report_summary, report_table
from synartifact.webui.events import gpu, user_errors
from synartifact.webui.inputs import MAX_PROMPT_CHARS, validate_generation_settings, validate_prompt
from synartifact.webui.models import classifier_source, demo_notice, generator_sources, get_generator

DESCRIPTION = """# SynArtifact: base vs. refined generator
One prompt, one seed, two generators: the base Stable Diffusion and the same model refined with DDPO on the
artifact classifier's reward (RLAIF). Each image gets the classifier's artifact report and its reward (higher
means fewer artifacts)."""

EXAMPLE_PROMPTS = [
    ["a hand holding a red apple, photograph", 0, 20, 7.5],
    ["a street sign that says OPEN at night", 1, 20, 7.5],
    ["a portrait of a smiling woman in soft window light", 2, 20, 7.5],
]


@gpu(duration=120)
def _draw_and_score(prompt: str, seed: int, steps: int, guidance: float):
    generator = get_generator()
    results = []
    for refined in (False, True):
        image = generator.generate(prompt, seed, steps, guidance, refined=refined)
        report, reward = analyse(image)
        results.append((image, report, reward))
    return results


@user_errors
def generate(prompt, seed, steps, guidance):
    """Draw the base and the refined image from one seed; for each the annotated image, table, reward, summary;
    then both raw answers."""
    prompt = validate_prompt(prompt)
    seed, steps, guidance = validate_generation_settings(seed, steps, guidance)
    outputs, raws = [], []
    for image, report, reward in _draw_and_score(prompt, seed, steps, guidance):
        outputs += [annotations(report, image), report_table(report), round(reward, 4), report_summary(report, reward)]
        raws.append(report.raw_text or "(empty answer)")
    return (*outputs, *raws)


def _side(title: str, key: str):
    with gr.Column(scale=1):
        gr.Markdown(f"### {title}")
        annotated = gr.AnnotatedImage(label=title, color_map=KIND_COLORS, height=320, elem_id=f"{key}-image")
        summary = gr.Markdown(elem_id=f"{key}-summary")
        reward = gr.Number(label="Reward (higher = fewer artifacts)", precision=4, interactive=False)
        table = gr.Dataframe(
            headers=TABLE_HEADERS,
            datatype=["str", "str", "str", "str"],
            label="Artifacts",
            interactive=False,
            wrap=True,
            column_widths=["24%", "18%", "34%", "24%"],
            elem_id=f"{key}-table",
        )
    return annotated, table, reward, summary


def build_demo() -> gr.Blocks:
    """The generate page. Importing the module or calling this loads no model."""
    base, lora = generator_sources()
    with gr.Blocks(title="SynArtifact: base vs. refined generator") as demo:
        gr.Markdown(DESCRIPTION)
        gr.Markdown(demo_notice(base, lora, classifier_source()), elem_id="model-notice")
        with gr.Row():
            with gr.Column(scale=3):
                prompt = gr.Textbox(
                    label="Prompt",
                    placeholder="a hand holding a red apple, photograph",
                    max_length=MAX_PROMPT_CHARS,
                    lines=2,
                    elem_id="prompt",
                )
            with gr.Column(scale=2):
                with gr.Row():
                    seed = gr.Number(label="Seed", value=0, precision=0)
                    steps = gr.Slider(1, 50, value=20, step=1, label="Steps")
                    guidance = gr.Slider(0.0, 15.0, value=7.5, step=0.5, label="Guidance")
        button = gr.Button("Generate both", variant="primary", elem_id="generate-button")
        gr.Examples(examples=EXAMPLE_PROMPTS, inputs=[prompt, seed, steps, guidance], label="Example prompts")
        with gr.Row(equal_height=False):
            base_out = _side("Base generator", "base")
            refined_out = _side(
                "Refined generator (DDPO LoRA)" if lora else "Refined generator (no LoRA set)", "refined"
            )
        with gr.Accordion("Raw model answers", open=False):
            with gr.Row():
                raw_base = gr.Textbox(label="Base image: raw answer", lines=4, interactive=False)
                raw_refined = gr.Textbox(label="Refined image: raw answer", lines=4, interactive=False)
        gr.on(
            [button.click, prompt.submit],
            generate,
            inputs=[prompt, seed, steps, guidance],
            outputs=[*base_out, *refined_out, raw_base, raw_refined],
            api_name="generate",
            concurrency_limit=1,
        )
    return demo


demo = build_demo()

if __name__ == "__main__":
    # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by launch() itself.
    demo.queue(default_concurrency_limit=1, max_size=16).launch()

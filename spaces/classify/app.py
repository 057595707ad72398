"""SynArtifact classify Space: upload an AI-generated image, see which artifacts the VLM classifier finds, and
repair them (inpaint the boxes, keep the result only if the classifier's reward goes up).

The classifier comes from ``SYNARTIFACT_CLASSIFIER`` and the inpainter from ``SYNARTIFACT_INPAINTER`` (each a Hub id
or a folder); without them tiny untrained models are built offline and the page says so. Run locally with ``python spaces/classify/app.py``
(``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` choose the address). The model loads on the first request,
once per process.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from synartifact.webui.display import KIND_COLORS, TABLE_HEADERS, analyse, annotations, report_summary, report_table
from synartifact.webui.events import gpu, user_errors
from synartifact.webui.examples import example_images, kinds_notice, trained_kinds
from synartifact.webui.inputs import MAX_FILE_BYTES, load_image, validated_image
from synartifact.webui.models import classifier_source, demo_notice
from synartifact.webui.repair import inpainter_notice, inpainter_source, repair_summary
from synartifact.webui.repair import repair as repair_image

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"

DESCRIPTION = """# SynArtifact: find artifacts in AI-generated images
Upload, paste or pick an image. A vision-language model fine-tuned on SynArtifact-style data names the artifacts
it sees (13 kinds in three groups: object-aware, object-agnostic, lighting), with a box and a caption for each
(a classifier that answers kinds only is asked where by occlusion: the box marked "by occlusion" is where covering
the image lowers its belief in the kind most), and scores the image (the reward used to refine a generator: higher means fewer artifacts). **Repair** inpaints the
boxes it finds, checks the result again and keeps it only if the reward went up (pixels outside the boxes never
change)."""


@gpu
def _run_models(image):
    return analyse(image, locate=True)


@user_errors
def classify(image):
    """Classify one image: annotated image, artifact table, reward, summary, raw model answer."""
    image = load_image(image)
    report, reward = _run_models(image)
    return (
        annotations(report, image),
        report_table(report),
        round(reward, 4),
        report_summary(report, reward),
        (report.raw_text or "(empty answer)"),
    )


@gpu
def _run_repair(image):
    return repair_image(image)


@user_errors
def repair(image):
    """Repair one image: before and after with their boxes, both rewards, and a summary."""
    image = load_image(image)
    result = _run_repair(image)
    return (
        annotations(result.report_before, result.original),
        annotations(result.report_after, result.image),
        round(result.reward_before, 4),
        round(result.reward_after, 4),
        repair_summary(result),
    )


def build_demo() -> gr.Blocks:
    """The classify page. Importing the module or calling this loads no model."""
    kinds = trained_kinds()
    examples = example_images(EXAMPLES_DIR, kinds)
    with gr.Blocks(title="SynArtifact: classify artifacts") as demo:
        gr.Markdown(DESCRIPTION)
        gr.Markdown(demo_notice(classifier_source()), elem_id="model-notice")
        gr.Markdown(kinds_notice(kinds), elem_id="kinds-notice")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                image_in = validated_image(
                    label="Image",
                    type="pil",
                    sources=["upload", "clipboard"],
                    height=360,
                    elem_id="image-input",
                )
                with gr.Row():
                    button = gr.Button("Find artifacts", variant="primary", elem_id="classify-button")
                    repair_button = gr.Button("Repair", variant="secondary", elem_id="repair-button")
                gr.Examples(examples=[[str(p)] for p in examples], inputs=[image_in], label="Examples")
                gr.Markdown(
                    f"PNG, JPEG or WebP, at most {MAX_FILE_BYTES // (1024 * 1024)} MB and 25 megapixels.",
                    elem_classes=["hint"],
                )
            with gr.Column(scale=1):
                annotated = gr.AnnotatedImage(
                    label="Artifacts found", color_map=KIND_COLORS, height=360, elem_id="annotated-output"
                )
                summary = gr.Markdown(elem_id="summary")
                reward = gr.Number(label="Reward (higher = fewer artifacts)", precision=4, interactive=False)
        table = gr.Dataframe(
            headers=TABLE_HEADERS,
            datatype=["str", "str", "str", "str"],
            label="Artifacts",
            interactive=False,
            wrap=True,
            column_widths=["24%", "18%", "34%", "24%"],
            elem_id="artifact-table",
        )
        with gr.Accordion("Raw model answer", open=False):
            raw = gr.Textbox(
                label="Raw answer", lines=4, max_lines=12, interactive=False, buttons=["copy"], elem_id="raw-answer"
            )
        with gr.Accordion("Repair: before and after", open=True, elem_id="repair-panel"):
            gr.Markdown(inpainter_notice(inpainter_source()), elem_id="inpainter-notice")
            repair_text = gr.Markdown(elem_id="repair-summary")
            with gr.Row(equal_height=False):
                with gr.Column():
                    before = gr.AnnotatedImage(
                        label="Before", color_map=KIND_COLORS, height=320, elem_id="repair-before"
                    )
                    reward_before = gr.Number(label="Reward before", precision=4, interactive=False)
                with gr.Column():
                    after = gr.AnnotatedImage(label="After", color_map=KIND_COLORS, height=320, elem_id="repair-after")
                    reward_after = gr.Number(label="Reward after", precision=4, interactive=False)
        button.click(
            classify,
            inputs=[image_in],
            outputs=[annotated, table, reward, summary, raw],
            api_name="classify",
        )
        repair_button.click(
            repair,
            inputs=[image_in],
            outputs=[before, after, reward_before, reward_after, repair_text],
            api_name="repair",
        )
    return demo


demo = build_demo()

if __name__ == "__main__":
    # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by launch() itself.
    demo.queue(default_concurrency_limit=2, max_size=32).launch(max_file_size=MAX_FILE_BYTES)

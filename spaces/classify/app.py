"""SynArtifact classify Space: upload an AI-generated image, see which artifacts the VLM classifier finds.

The classifier comes from ``SYNARTIFACT_CLASSIFIER`` (a Hub id or a folder); without it a tiny untrained
model is built offline and the page says so. Run locally with ``python spaces/classify/app.py``
(``GRADIO_SERVER_NAME`` / ``GRADIO_SERVER_PORT`` choose the address). The model loads on the first request,
once per process.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from synartifact.spaces_utils import (
    KIND_COLORS,
    MAX_FILE_BYTES,
    TABLE_HEADERS,
    analyse,
    annotations,
    classifier_source,
    demo_notice,
    gpu,
    load_image,
    report_summary,
    report_table,
    user_errors,
    validated_image,
    write_examples,
)

HERE = Path(__file__).resolve().parent
EXAMPLES_DIR = HERE / "examples"

DESCRIPTION = """# SynArtifact: find artifacts in AI-generated images
Upload, paste or pick an image. A vision-language model fine-tuned on SynArtifact-style data names the artifacts
it sees (13 kinds in three groups: object-aware, object-agnostic, lighting), with a box and a caption for each,
and scores the image (the reward used to refine a generator: higher means fewer artifacts)."""


@gpu
def _run_models(image):
    return analyse(image)


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


def build_demo() -> gr.Blocks:
    """The classify page. Importing the module or calling this loads no model."""
    examples = write_examples(EXAMPLES_DIR)
    with gr.Blocks(title="SynArtifact: classify artifacts") as demo:
        gr.Markdown(DESCRIPTION)
        gr.Markdown(demo_notice(classifier_source()), elem_id="model-notice")
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                image_in = validated_image(
                    label="Image",
                    type="pil",
                    sources=["upload", "clipboard"],
                    height=360,
                    elem_id="image-input",
                )
                button = gr.Button("Find artifacts", variant="primary", elem_id="classify-button")
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
        button.click(
            classify,
            inputs=[image_in],
            outputs=[annotated, table, reward, summary, raw],
            api_name="classify",
        )
    return demo


demo = build_demo()

if __name__ == "__main__":
    # GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are read by launch() itself.
    demo.queue(default_concurrency_limit=2, max_size=32).launch(max_file_size=MAX_FILE_BYTES)

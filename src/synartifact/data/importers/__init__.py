"""Build a SynArtifact dataset from real annotations: the SynArtifact-1K release, JSONL, COCO or Label Studio.

Every importer collects *all* problems (missing, corrupt or oversized image, unknown label, degenerate box or one
outside the image, duplicate id, malformed record, image path outside ``--images``), each naming the file, the
record and the field, and raises one :class:`~synartifact.data.schema.DatasetValidationError` listing them. An
unknown label is listed once, with its count and the first records that use it. With ``skip_invalid=True`` the valid
records are kept and every rejected one is returned (``synartifact dataset build`` writes them to
``rejected.jsonl`` in the output folder): nothing is silently lost. A record with one bad artifact is rejected as a
whole, so that an image never looks cleaner than it was annotated. What a build changed or dropped without
rejecting a record (clipped boxes, shapes turned into boxes, regions that are not boxes, labels mapped to
``ignore``, unused annotations) is counted in its :class:`BuildReport`.

Labels: a slug, a display name (loose spellings too) or a 0-based index of :data:`synartifact.taxonomy.KINDS`.
Exports that use their own names ('person', 'Class_1', 'Car') need a label map (``label_map=`` / ``--label-map``):
a JSON or YAML file ``{"Class_1": "localized_blur", "Car": "ignore"}`` or ``"Class_1=localized_blur,Car=ignore"``.
It is looked up first (exact name, then loose spelling); ``ignore`` drops the artifact and counts it.

Images: paths resolve inside ``--images``; an absolute path, one whose ``..`` leaves it or one that a symbolic link
(the file or a folder on its way) leads out of it is a record problem unless ``allow_outside_images``; so is one
image file given under two image ids (it could land in both splits). ``image_id`` is the path relative to ``--images`` without extension (never an absolute
path: it is uploaded with the dataset). Images over ``max_pixels`` pixels (default
:data:`synartifact.images.DEFAULT_MAX_PIXELS`) or that Pillow flags as decompression bombs are record problems.

Formats (``--format``):

``synartifact``
    The SynArtifact-1K release. ``--annotations`` is its root folder: ``eval.txt`` (evaluation images, one
    ``<folder>/<image file>`` a line; they become the ``test`` split) and, per image,
    ``<folder>/annotation_json_artifacts_class/<image_id>.json`` with ``"Artifacts annotation"``: a list of
    ``{"rect_start": [x, y], "rect_end": [x, y], "artifacts_caption": str, "artifacts_class": "<index>"}``
    (pixel corners) and ``"Other artifacts caption"``. Images are looked up as ``<folder>/<image_id>.<ext>``,
    also under ``<folder>/images/``, ``<folder>/data/``, ``images/<folder>/``, ``data/<folder>/`` and in
    ``--images``. ``image_id`` is ``<folder>/<stem>``; ``generator`` is the folder's name.

``jsonl``
    One JSON object per line (UTF-8), one line per image; images relative to ``--images``::

        {"image": "cats/0001.png",              # required: path relative to --images
         "image_id": "cat-0001",                # optional: defaults to the path without extension
         "prompt": "a cat on a sofa",           # optional
         "generator": "sdxl",                   # optional
         "other_artifacts_caption": "",         # optional: artifacts without a box
         "split": "test",                       # optional: "train" / "test"; if any record has it, it decides
         "bbox_format": "xyxy",                 # optional: "xyxy" (corners, any order, default) or "xywh"
         "bbox_units": "pixels",                # optional: "pixels" / "normalized"; default: detected per file
         "artifacts": [{"label": "localized_blur", "bbox": [10, 20, 110, 90], "caption": "blurred paw"}]}

    Without ``bbox_units``, a file whose box coordinates all lie in [0, 1] is read as normalized, otherwise as pixels.

``coco``
    A COCO detection JSON: ``images`` (``id``, ``file_name`` relative to ``--images``, ``width``, ``height``,
    optional ``prompt``, ``generator``, ``other_artifacts_caption``), ``annotations`` (``id``, ``image_id``,
    ``category_id``, ``bbox`` = ``[x, y, width, height]`` in pixels, or else the bounding box of its polygon
    ``segmentation``; caption in ``caption`` or ``attributes.caption``) and ``categories`` (``id``, ``name``: the
    label). Images without annotations are clean images. ``iscrowd`` regions are imported as artifacts like the
    others and counted (``crowd_regions``) in the build report; ``skip_crowd`` (``--skip-crowd``) leaves them out,
    with the images that had only those (not clean images), and counts both under ``dropped``.

``labelstudio``
    A Label Studio JSON export (a list of tasks). Per task: ``data.image`` and optional ``data.prompt`` /
    ``data.generator``. The image reference may take every form Label Studio writes: ``/data/local-files/?d=<path>``,
    ``/data/upload/<project>/<8 hex>-<name>``, ``s3://bucket/key``, ``gs://...``, ``azure-blob://...``,
    ``http(s)://host/path?query`` or a bare name with or without extension. It is looked up under ``--images`` by
    relative path (the longest tail of the reference's path that exists), then by file name (for uploads also
    without the ``<hash>-`` prefix). Regions (``annotations[].result[]``, percent of the image):
    ``rectanglelabels`` boxes (a ``rotation`` becomes the axis-aligned bounding box; a box overshooting the image
    by up to :data:`LABELSTUDIO_BBOX_TOLERANCE` of a side, as Label Studio's editor writes, is clipped),
    ``polygonlabels`` and ``brushlabels`` (RLE masks) become their bounding box; a region with several labels
    gives one artifact per label. ``textarea`` results with a region's ``id`` are its caption, the others form
    ``other_artifacts_caption``. Keypoints, ellipses, choices, relations and other results are dropped and
    counted. ``annotator="first"`` (default) uses the first non-cancelled annotation of a task and counts the
    others; ``"all"`` merges the regions of every non-cancelled annotation. Tasks without a non-cancelled
    annotation are not imported (unannotated is not clean) and are counted.

The field's datasets (issue 22; shared code in ``field.py``). Each uses its built-in label map
(:data:`~synartifact.data.importers.field.LABEL_PRESETS`; ``--label-map NAME`` names one for any format) under the
user's ``--label-map``, which overrides it label by label. A region whose source gives it no kind (LOKI, RichHF,
PAL4VST, SynthScars refs) is never given an invented one: it is kept as a *kind-less artifact* (label
:data:`~synartifact.data.schema.KINDLESS`, -1, with its box, caption and region) and counted per source in the build
report's ``notes`` ("... regions kept without a kind (label -1) ..."), unless ``--kinds-from-captions`` finds a
kind's keyword in its caption (:data:`~synartifact.data.importers.field.CAPTION_KEYWORDS`: the first kind, in that
table's order, with a whole-word keyword, e.g. "extra" -> ``duplicated_components``, "missing" ->
``omitted_components``, "face"/"eye" -> ``awkward_facial_expression``, "hand"/"finger"/"leg" ->
``distorted_components``) or ``--label-map`` maps the source's kind-less label (``synthscars_region``,
``loki_region``, ``richhf_region``, ``pal4vst_region``) to a kind. Polygons and masks give their bounding boxes
(a polygon's min/max point, a mask component's ``[x0, y0, x1 + 1, y1 + 1]`` over the mask's size, the Label Studio
brush convention) and keep their pixels in the artifact's ``mask`` (run-length encoding,
:mod:`synartifact.data.masks`: a SynthScars polygon rasterized at the image's size, a PAL4VST or RichHF component at
its mask's size) unless ``masks=False`` (``--no-masks``). What a reader noted (units detected, corners swapped, paths
resolved) is counted in the report's ``notes``. Datasets are merged with ``synartifact dataset merge``
(:mod:`synartifact.data.merge`: an ``origin`` column, de-duplication by image content, one split per image).

``synthscars``
    SynthScars (LEGION). ``--annotations`` is the root (``{train,test}/annotations/*.json``; the folder gives the
    split) or one JSON file: a list of ``{annotation_id: {"caption", "img_file_name", "refs": [{"sentence",
    "explanation", "bbox": null, "segmentation": [[x1, y1, x2, y2, ...]]}]}}`` (pixels). Images:
    ``<split>/images/<img_file_name>`` under ``--images``, then ``images/<name>``, ``<name>``, then the one file of
    that name; the same stem under another extension (``.png`` / ``.jpg``) is used and counted; an absolute
    ``img_file_name`` is looked up by its file name inside ``--images`` (counted, never read outside). ``caption`` ->
    ``prompt``; a ref's caption is ``"sentence: explanation"`` (the sentence alone when the explanation is empty,
    counted). Refs have no kind (preset: the paper's ``physics`` -> ``unrealistic_lighting``, ``distortion`` ->
    ``abnormal_texture``, ``structure`` -> ``distorted_components``, only for a ref with a ``category`` key, which
    the release lacks). A polygon under 3 points is a problem; a degenerate (collinear) one keeps its box unless
    that box has no area; coordinates up to 1 % outside are clipped and counted.

``had``
    HAD (HADM). ``--annotations``: a folder of ``<split>/<stem>.json`` (``val``/``test`` -> test split) or one file:
    ``{"image": {"file_name", "height", "width"}, "annotation": [{"body_parts": str | [str], "level": "mild" |
    "severe", "bbox": [x1, y1, x2, y2]}], "human": [{"tag", "bbox"}]}`` (pixels). Image: ``<split>/<file_name>``
    under ``--images``, then ``<file_name>``, then by name. Preset: ``face`` -> ``awkward_facial_expression``;
    ``torso``, ``arm``, ``leg``, ``hand``, ``feet`` -> ``distorted_components``; ``human missing X`` ->
    ``omitted_components``; ``human with extra X`` -> ``duplicated_components``. Caption ``"<level> <label>"``.
    Swapped corners are normalized and counted; ``human`` boxes are dropped and counted.

``loki``
    LOKI (image part): one JSON file in UTF-16 with a BOM (UTF-8 read too), a list of ``{"image_path",
    "problems": {"regional": [{"region": [x, y, w, h], "desc"}], "global": [{"desc"}]}}`` (pixels, paths relative to
    ``--images``). Regional problems are kind-less regions captioned by ``desc``; global ones form
    ``other_artifacts_caption``. Preset: empty.

``artiagent``
    ArtiAgent / ArtiBench: a JSON file (one object, or the annotation tool's results list) or a folder of them:
    ``{"image_name", "global_explanation", "bboxes": [{"bbox": [x1, y1, x2, y2], "category", "caption"}]}``. The unit
    is detected per record (every coordinate in [0, 1]: normalized, else pixels) and counted per file in the report.
    Preset: ``addition`` -> ``duplicated_components``, ``removal`` -> ``omitted_components``, ``distortion`` ->
    ``distorted_components``, ``fusion`` -> ``abnormal_spatial_relationship``. ``global_explanation`` ->
    ``other_artifacts_caption``; ``description``, ``explanation``, ``artifact_type`` are not kept.

``richhf``
    RichHF-18K: a TFRecord file (or a folder of ``*tfrecord*`` files) of ``tf.train.Example``, read without
    TensorFlow (:mod:`synartifact.data.tfrecord`; CRCs checked, a corrupt record is a record problem). ``filename``
    names the image, looked up in ``--images`` by relative path then by file name (the dataset ships no images).
    ``artifact_map`` (an encoded 512x512 heatmap, 0-255): pixels ``>= --heatmap-threshold`` (default 128) form
    8-connected regions; regions under ``--min-region-pixels`` (default 16) are dropped and counted; each other one
    is a kind-less box, scaled to the image, its pixels kept as a 512 x 512 mask. The float scores
    (``artifact_score``, ``aesthetics_score``, ...) become image-level float columns of the same names (empty for a
    record without one; listed as ``image_columns`` in the build report). ``misalignment_map`` and
    ``prompt_misalignment_label`` are not kept.

``pal4vst``
    PAL4VST: ``--annotations`` is the ``labels`` folder (or the root holding it) of ``<split>/*.png`` index masks
    (0 background, 1 bad region; other non-zero values are read as bad and counted), ``--images`` the folder of
    ``<split>/<stem>.jpg`` (or the root holding ``images/``). One kind-less box per 8-connected component
    (``--min-region-pixels`` as above); a mask whose size is not the image's is a record problem. An image under
    ``--images`` without a mask file is not imported (no mask does not mean clean: an all-zero mask does) and is
    counted in the report's ``dropped``.
"""

# Layout: records (what every reader shares: Record, BuildReport, labels, image paths), one reader module per
# format (release, jsonl, coco, labelstudio) and build (records -> checked rows -> DatasetDict).
from synartifact.data.importers.build import FORMATS, BuildResult, build_dataset, read_records
from synartifact.data.importers.records import (
    ANNOTATORS,
    IMAGE_EXTENSIONS,
    LABELSTUDIO_BBOX_TOLERANCE,
    BuildReport,
    Record,
    load_label_map,
)
from synartifact.data.importers.records import IGNORE as IGNORE

__all__ = [
    "ANNOTATORS",
    "FORMATS",
    "IMAGE_EXTENSIONS",
    "LABELSTUDIO_BBOX_TOLERANCE",
    "BuildReport",
    "BuildResult",
    "Record",
    "build_dataset",
    "load_label_map",
    "read_records",
]

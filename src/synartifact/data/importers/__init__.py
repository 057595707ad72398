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

Images: paths resolve inside ``--images``; an absolute path or one whose ``..`` leaves it is a record problem unless
``allow_outside_images``. ``image_id`` is the path relative to ``--images`` without extension (never an absolute
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
    label). Images without annotations are clean images.

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

"""The artifact classifier: loading (:mod:`.loading`), prediction (:class:`ArtifactClassifier`, :mod:`.model`),
metrics (:mod:`.metrics`) and ``synartifact evaluate`` (:mod:`.evaluation`)."""

from synartifact.classifier.loading import CONFIG_NAME, read_classifier_config, resolve_base_model
from synartifact.classifier.model import ArtifactClassifier

__all__ = ["CONFIG_NAME", "ArtifactClassifier", "read_classifier_config", "resolve_base_model"]

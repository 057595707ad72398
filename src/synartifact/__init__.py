"""synartifact: find and fix artifacts in AI-generated images (SynArtifact, arXiv 2402.18068)."""

__version__ = "0.1.0"

"""Documents generated from a sealed model: a Hugging Face model card, alignment documentation for
enterprise buyers, and an algorithm-filing dossier for regulators.

Every figure about the model is read from a provenance statement (or from a file the seal signs)
through ``Trace``, which records the statement digest and JSON pointer — or the file and its
sha256 — it came from; ``*.trace.json`` beside the document lists them all, with the digests of
the documents themselves, so a reviewer can check each figure against the sealed statement
(``charter verify`` prints its digest). Runtime settings (gateway config, profiles) and an
attached assessment are not part of the seal: their figures are traced to those files' digests.
Facts the seal cannot know — the developer, the licence, the intended use, the service — come
from an ``--info`` TOML file and are printed as declared by the deployer.

Layers: ``config`` (what is asked, the inputs beside the seal) → ``sections`` (traced Markdown
fragments) → ``facts`` (one typed record per document) → ``templates/*.md.j2`` → ``builder``.
"""

from charter.governance.documents.builder import DocumentBuilder, to_html
from charter.governance.documents.config import (
    FORMATS,
    KINDS,
    AttachedAssessment,
    DeployerInfo,
    DocsConfig,
    Runtime,
    load_info,
)
from charter.governance.documents.sections import count_records
from charter.governance.documents.trace import Trace, resolve_pointer

__all__ = [
    "FORMATS",
    "KINDS",
    "AttachedAssessment",
    "DeployerInfo",
    "DocsConfig",
    "DocumentBuilder",
    "Runtime",
    "Trace",
    "count_records",
    "load_info",
    "resolve_pointer",
    "to_html",
]

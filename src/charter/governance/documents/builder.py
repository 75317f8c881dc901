"""``DocumentBuilder``: a sealed model in, a document out — the facts computed (and traced), laid out
by a Jinja2 template (``templates/*.md.j2``), written as Markdown and HTML with ``*.trace.json``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from charter.constitution import parse_constitution
from charter.core.errors import InputError
from charter.core.io import write_text_atomic
from charter.governance.documents.config import DocsConfig, load_assessment, load_info, load_runtime
from charter.governance.documents.facts import alignment_facts, filing_facts, model_card_facts
from charter.governance.documents.sections import Sections
from charter.governance.documents.trace import Trace
from charter.governance.sealed import SealedModel, load_sealed

FACTS = {"model-card": model_card_facts, "alignment": alignment_facts, "filing": filing_facts}
TEMPLATES = {"model-card": "model_card.md.j2", "alignment": "alignment.md.j2", "filing": "filing.md.j2"}
# Markdown, not HTML: nothing to escape; every variable must exist (a typo is an error, not a blank).
_ENV = Environment(
    loader=PackageLoader("charter.governance.documents", "templates"),
    autoescape=False,
    keep_trailing_newline=True,
    undefined=StrictUndefined,
)


class DocumentBuilder:
    def __init__(self, config: DocsConfig):
        config.validate()
        self.config = config
        self.model: SealedModel = load_sealed(config.model_dir, config.public_key)
        out = Path(config.out).resolve()
        if out.exists() and not out.is_dir():
            raise InputError("exists and is not a directory", source=config.out)
        if out == Path(config.model_dir).resolve() or Path(config.model_dir).resolve() in out.parents:
            # A file added inside a sealed model directory breaks its signature (verify, require_seal).
            raise InputError(
                "is inside the sealed model directory; write the documents elsewhere and copy the model "
                "card into the published repository at release time",
                source="--out",
            )
        self.trace = Trace()
        self.sections = Sections(
            self.model,
            load_info(config.info),
            parse_constitution(self.model.constitution["text"], source="sealed constitution"),
            load_runtime(config),
            load_assessment(config.assessment),
            config.gateway_config,
            self.trace,
        )

    def render(self) -> str:
        """The document as Markdown (its figures recorded in ``self.trace``)."""
        facts = FACTS[self.config.kind](self.sections)
        return _ENV.get_template(TEMPLATES[self.config.kind]).render(f=facts)

    def build(self) -> dict:
        c = self.config
        text = self.render()
        out = Path(c.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = {"model-card": "README", "alignment": "alignment", "filing": "filing"}[c.kind]
        written = {}
        if c.kind == "alignment":
            for s in self.model.stages_oldest_first():
                png = Path(s.model_dir) / "profiles.png"
                if png.is_file():
                    (out / "images").mkdir(exist_ok=True)
                    tmp = out / "images" / (self.sections.image_name(s) + ".tmp")
                    shutil.copyfile(png, tmp)
                    tmp.replace(out / "images" / self.sections.image_name(s))
        if "md" in c.formats:
            written["md"] = write_text_atomic(out / f"{stem}.md", text)
        if "html" in c.formats:
            written["html"] = write_text_atomic(
                out / f"{stem}.html", to_html(text, title=f"{c.kind}: {Path(self.model.head.model_dir).name}")
            )
        import hashlib

        # The trace names the documents it traces, so a document and a stale trace cannot be paired.
        documents = {Path(v).name: hashlib.sha256(Path(v).read_bytes()).hexdigest() for v in written.values()}
        trace = {
            "document": c.kind,
            "documents_sha256": documents,
            "model_dir": self.model.head.model_dir,
            "statement_digest": self.model.head.statement_digest,
            "verified": self.model.head.verified,
            "lineage_truncated": self.model.truncated,
            "figures": self.trace.items,
        }
        written["trace"] = write_text_atomic(
            out / f"{stem}.trace.json", json.dumps(trace, indent=2, default=str) + "\n"
        )
        return {
            "kind": c.kind,
            "files": {k: str(v) for k, v in written.items()},
            "figures": len(self.trace.items),
            "verified": self.model.head.verified,
        }


_CSS = (
    "body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#222}\n"
    "table{border-collapse:collapse;margin:1rem 0;font-size:.92rem}"
    "th,td{border:1px solid #ccc;padding:.3rem .6rem;vertical-align:top}\n"
    "th{background:#f3f3f3}code{background:#f5f5f5;padding:0 .2rem;border-radius:3px}"
    "pre{background:#f5f5f5;padding:.8rem;overflow:auto}\n"
    "img{max-width:100%}.front{background:#fafafa;border:1px solid #ddd;padding:.5rem 1rem;font-size:.85rem}\n"
    "@media print{body{max-width:none}}"
)


def to_html(markdown_text: str, *, title: str) -> str:
    """Markdown -> a standalone HTML page (print it to PDF from any browser)."""
    import html

    from markdown_it import MarkdownIt

    front = ""
    if markdown_text.startswith("---\n"):
        end = markdown_text.index("\n---\n", 4)
        front = f'<pre class="front">{html.escape(markdown_text[4:end])}</pre>\n'
        markdown_text = markdown_text[end + 5 :]
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown_text)
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head>\n<body>\n{front}{body}</body></html>\n"
    )

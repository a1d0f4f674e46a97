"""``run_report.html``: the run report as one self-contained file, readable offline.

Made from ``run_report.md`` with Python-Markdown: every image it shows is
embedded as a data URI (so the file can be mailed or attached to a ticket on its
own), and a table of contents links to each section.
"""

import base64
import html
import mimetypes
import os
import re

import markdown

HTML_FILE = "run_report.html"
_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem;
       line-height: 1.45; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
img { max-width: 100%; }
code { background: #f3f3f3; padding: 0 0.2rem; word-break: break-all; }
pre code { display: block; padding: 0.5rem; overflow-x: auto; word-break: normal; }
blockquote { border-left: 4px solid #d9822b; margin-left: 0; padding-left: 1rem; background: #fff8ef; }
nav.toc { background: #f7f7f7; border: 1px solid #ddd; padding: 0.5rem 1rem; display: inline-block; }
nav.toc ul { margin: 0.2rem 0; padding-left: 1.2rem; }
figure.gallery { display: inline-block; margin: 0.3rem; text-align: center; font-size: 0.85rem; }
"""
_IMAGE_SOURCE = re.compile(r'(<img\b[^>]*?\bsrc=")([^"]+)(")')


def _data_uri(path: str) -> str:
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    with open(path, "rb") as f:
        return f"data:{kind};base64,{base64.b64encode(f.read()).decode('ascii')}"


def embed_images(body: str, base_dir: str) -> str:
    """Every ``<img src>`` naming a file (relative to ``base_dir``, or absolute) becomes a data URI;
    one whose file is missing keeps its link."""
    def replace(match: re.Match) -> str:
        source = html.unescape(match.group(2))
        if source.startswith(("data:", "http://", "https://")):
            return match.group(0)
        path = source if os.path.isabs(source) else os.path.join(base_dir, source)
        if not os.path.isfile(path):
            return match.group(0)
        return match.group(1) + _data_uri(path) + match.group(3)

    return _IMAGE_SOURCE.sub(replace, body)


def to_html(markdown_text: str, base_dir: str) -> str:
    """The whole HTML page for a report written in Markdown, its images under ``base_dir``."""
    converter = markdown.Markdown(extensions=["tables", "fenced_code", "md_in_html", "toc"],
                                  extension_configs={"toc": {"toc_depth": "2-3"}})
    body = embed_images(converter.convert(markdown_text), base_dir)
    title = next((line[2:].strip() for line in markdown_text.splitlines() if line.startswith("# ")), "Run report")
    contents = f'<nav class="toc"><strong>Contents</strong>{converter.toc}</nav>'
    # The contents go after the title and the outcome lines, before the first section.
    first_section = body.find("<h2")
    body = body[:first_section] + contents + body[first_section:] if first_section >= 0 else contents + body
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


def write_html_report(markdown_path: str) -> str:
    """Writes ``run_report.html`` beside ``markdown_path``; returns its path."""
    base_dir = os.path.dirname(os.path.abspath(markdown_path))
    with open(markdown_path, encoding="utf-8") as f:
        page = to_html(f.read(), base_dir)
    path = os.path.join(base_dir, HTML_FILE)
    with open(path, "w", encoding="utf-8") as f:
        f.write(page)
    return path

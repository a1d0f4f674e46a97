"""html_report: one file, images inside, sections linked from the contents."""

import base64
import re

from pipeline import html_report
from tests.helpers import encode_image


def test_the_html_report_embeds_its_images_and_links_its_sections(tmp_path):
    (tmp_path / "run_report_files").mkdir()
    png = encode_image(image_format="PNG")
    (tmp_path / "run_report_files" / "curve.png").write_bytes(png)
    markdown_path = tmp_path / "run_report.md"
    markdown_path.write_text(
        "# Run report: r1\n\n**Serving as version 1.**\n\n## Training\n\n![curves](run_report_files/curve.png)\n\n"
        "## Why the model is wrong\n\n### bees: 2 misclassified\n\n| class | recall |\n|---|---|\n| ants | 0.5 |\n\n"
        '## Configuration\n\n<details markdown="1"><summary>config.yaml</summary>\n\n```yaml\nseed: 42\n```\n\n'
        "</details>\n\n![gone](run_report_files/missing.png)\n", encoding="utf-8")
    page = (tmp_path / html_report.write_html_report(str(markdown_path))).read_text(encoding="utf-8")

    assert page.startswith("<!DOCTYPE html>") and "<title>Run report: r1</title>" in page
    sources = re.findall(r'<img[^>]*src="([^"]+)"', page)
    assert sources[0] == "data:image/png;base64," + base64.b64encode(png).decode()
    assert sources[1] == "run_report_files/missing.png"  # a missing file keeps its link
    for anchor in ("training", "why-the-model-is-wrong", "bees-2-misclassified", "configuration"):
        assert f'href="#{anchor}"' in page and f'id="{anchor}"' in page
    assert page.index('<nav class="toc">') < page.index('id="training"')
    assert "<table>" in page and '<code class="language-yaml">seed: 42' in page

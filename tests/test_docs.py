"""Code comments cite docs/reproduction.md by section anchor: every cited anchor must be a heading of the page."""
import re

from helpers.paths import REPO_ROOT

PAGE = REPO_ROOT / "docs" / "reproduction.md"
CITING = ["codes", "persona_extractor", "tests", "RUN", "DATA", "docs", "README.md"]


def anchor(heading):
    """The anchor a Markdown renderer gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^a-z0-9 _-]", "", heading.strip().lower()).replace(" ", "-")


def test_every_cited_section_of_the_docs_page_exists():
    headings = {anchor(line.lstrip("#")) for line in PAGE.read_text(encoding="utf-8").splitlines()
                if line.startswith("## ")}
    files = [p for top in CITING for p in ([REPO_ROOT / top] if (REPO_ROOT / top).is_file()
                                             else (REPO_ROOT / top).rglob("*"))
             if p.suffix in (".py", ".sh", ".md") and "__pycache__" not in p.parts]
    cited = {}
    for path in files:
        for section in re.findall(r"reproduction\.md#([a-z0-9-]+)", path.read_text(encoding="utf-8")):
            cited.setdefault(section, str(path.relative_to(REPO_ROOT)))
    assert cited, "no citation of docs/reproduction.md found"
    missing = {section: name for section, name in cited.items() if section not in headings}
    assert not missing, f"cited sections without a heading in {PAGE.name}: {missing}"

"""The README as a short front door and the documentation pages behind it (``docs/*.md``, built
into a site by ``mkdocs.yml``): every relative link leads to a file, every page is in the site's
navigation, the test command is the same wherever it is written, and the strict build passes."""

import re
import subprocess
import sys

import pytest
import yaml

from .helpers import ROOT, run_py

README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("*.md"))
README_LIMIT = 15_000  # characters: the details live in docs/


def without_code(text: str) -> str:
    """The Markdown text with its fenced blocks, indented blocks and inline code taken out, where
    brackets and parentheses are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    text = re.sub(r"^(?: {4}|\t).*$", "", text, flags=re.M)
    return re.sub(r"`[^`]*`", "", text)


def relative_links(path):
    """The targets of the Markdown links and images of ``path`` that are not web addresses or
    anchors on the same page, without their anchor."""
    targets = re.findall(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", without_code(path.read_text()))
    return [
        target.split("#")[0]
        for target in targets
        if not re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.I) and not target.startswith("#")
    ]


def test_the_readme_is_a_short_front_door():
    assert len(README.read_text()) < README_LIMIT


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_relative_link_leads_to_a_file(page):
    links = relative_links(page)
    missing = [target for target in links if not (page.parent / target).exists()]
    assert not missing, f"{page.name} links to files that do not exist: {missing}"
    if page.parent.name == "docs":  # the site is built from docs/ alone: a link out of it breaks there
        outside = [t for t in links if not (page.parent / t).resolve().is_relative_to((ROOT / "docs").resolve())]
        assert not outside, f"{page.name} links out of docs/: {outside}"


def test_the_link_check_finds_links():
    assert "docs/figures/samples.png" in relative_links(README)
    assert "figures/reconstructions.png" in relative_links(ROOT / "docs" / "runs.md")


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_table_row_has_the_cells_of_its_header(page):
    """A ``|`` inside a cell, p(x|z) say, must be written ``\\|``, or it splits the cell in two."""
    width = None
    for number, line in enumerate(page.read_text().splitlines(), 1):
        if not line.startswith("|"):
            width = None
            continue
        cells = len(re.split(r"(?<!\\)\|", line.strip().strip("|")))
        width = width or cells
        assert cells == width, f"{page.name}:{number} has {cells} cells, its header {width}"


def test_every_page_is_in_the_site_navigation():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())

    def pages(nav):
        for entry in nav:
            value = next(iter(entry.values())) if isinstance(entry, dict) else entry
            yield from pages(value) if isinstance(value, list) else [value]

    assert config["docs_dir"] == "docs"
    assert sorted(pages(config["nav"])) == [page.name for page in PAGES]


def readme_test_command():
    (command,) = {
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
        for line in block.splitlines()
        if '".[test]"' in line
    }
    return command


def test_the_test_command_is_one_command_everywhere():
    """``.ci/run`` runs the README's test command verbatim, the home page shows the same, and it
    runs the strict documentation build."""
    command = readme_test_command()
    assert "mkdocs build --strict" in command and "--quiet" not in command  # --quiet hides what --strict counts
    assert (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1] == command
    for page in PAGES:
        for line in page.read_text().splitlines():
            if '".[test]"' in line and "ruff" in line:
                assert line.strip() == command, page.name


@pytest.mark.slow
def test_the_site_builds_strictly(tmp_path):
    """``mkdocs build --strict``: a broken link or anchor, a page left out of the navigation or a
    docstring the API reference cannot read fails it."""
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()


# The programs a reader runs. The README's first command makes the virtual environment .venv/ and
# does not activate it, so a command runs as written only when it takes its program from .venv/bin/
# (`.venv/bin/python run.py ...`, `.venv/bin/pip install ...`); `python3 -m venv .venv` alone comes
# before it. A bare name followed by an argument (`python run.py`, `pip install`) is the other form.
PROGRAMS = r"python3?|pip3?|pytest|torchrun|tensorboard|mkdocs|ruff|jupyter"
BARE_PROGRAM = re.compile(rf"(?:^|(?<=[\s(:;&|]))(?<!-m )(?:{PROGRAMS})(?=\s+[^\s#])")
CREATE_VENV = "python3 -m venv .venv"


def commands_of(text: str):
    """The shell lines of the ``bash`` blocks of a page and the inline code outside them, each on one line."""
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M):
        yield from (line.strip() for line in block.splitlines() if not line.lstrip().startswith("#"))
    prose = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    yield from (" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose))


def bare_programs(command: str):
    """The programs ``command`` runs by a bare name (found on PATH, outside .venv/) rather than from .venv/bin/."""
    return BARE_PROGRAM.findall(command.replace(CREATE_VENV, ""))


def test_the_form_check_tells_the_two_forms_apart():
    page = (
        "```bash\npython3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python run.py\n"
        "python run.py latent_dim=2     # a comment\n.venv/bin/python -m pytest -k x\n"
        "torchrun --nproc_per_node=2 run.py\n```\n"
        "Prose: `pip install` pulls torch; `torchrun` starts them; `tensorboard/` is a folder; resume with\n"
        "`SIGINT: stopped; resume with: python run.py latent_dim=2\nresume=true` or `.venv/bin/python run.py`.\n"
    )
    assert [(command, bare_programs(command)) for command in commands_of(page) if bare_programs(command)] == [
        ("python run.py latent_dim=2     # a comment", ["python"]),
        ("torchrun --nproc_per_node=2 run.py", ["torchrun"]),
        ("pip install", ["pip"]),
        ("SIGINT: stopped; resume with: python run.py latent_dim=2 resume=true", ["python"]),
    ]


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda path: path.relative_to(ROOT).as_posix())
def test_every_command_of_the_pages_runs_its_program_from_the_virtual_environment(page):
    """After the README's first command, every command a reader copies (run.py, pip, pytest, torchrun,
    TensorBoard, the benchmarks and figure scripts) runs as written: ``.venv/bin/PROGRAM``."""
    bare = [command for command in commands_of(page.read_text()) if bare_programs(command)]
    assert not bare, f"{page.name}: run these from .venv/bin/ as the README's first command does: {bare}"


def test_every_command_of_the_help_and_the_config_comments_runs_from_the_virtual_environment():
    """``run.py --help`` (conf/hydra/help/pyro_vae.yaml) and the commands in conf/'s comments."""
    lines = [line for path in sorted((ROOT / "conf").rglob("*.yaml")) for line in path.read_text().splitlines()]
    # Prose stands beside the commands here ("the tensorboard extra"): a command is a program and its first argument.
    command = re.compile(rf"{BARE_PROGRAM.pattern}(?=\s+(?:run\.py|install|-|benchmarks/|docs/|tests/))")
    bare = [line.strip() for line in lines if command.search(line.replace(CREATE_VENV, ""))]
    assert not bare, f"conf/: run these from .venv/bin/: {bare}"
    assert sum(".venv/bin/python run.py" in line for line in lines) >= 20


def test_help_says_what_the_program_does_lists_the_groups_and_shows_the_readmes_first_command():
    result = run_py("--help")
    first_command = re.search(r"## The two commands\n.*?```bash\n(.*?)\n```", README.read_text(), flags=re.S).group(1)
    assert result.stdout.startswith("pyro-vae: train and evaluate a variational autoencoder")
    assert first_command in result.stdout
    groups = dict(line.split(": ", 1) for line in result.stdout.splitlines() if re.match(r"^[a-z_/]+: \w", line))
    assert groups["guide"] == "diagonal, full, iaf" and "vampprior" in groups["prior"] and "iwae" in groups["objective"]
    assert "Powered by Hydra" not in result.stdout
    # Each top-level setting with its declared default and meaning (schema.settings_listing).
    assert re.search(r"^latent_dim=20 +dimensions of z$", result.stdout, flags=re.M)
    assert re.search(r"^early_stopping.patience=null +stop after", result.stdout, flags=re.M)


def test_the_settings_page_names_every_declared_setting():
    """docs/settings.md's table against the declarations (schema.py): every setting of the top level and of
    every option of every group is named in a row, as `NAME` (a group's settings as `GROUP.NAME`)."""
    from pyro_vae.runs.configuration.schema import every_setting

    rows = [
        line.split(" | ")[0]
        for line in (ROOT / "docs" / "settings.md").read_text().splitlines()
        if line.startswith("| `")
    ]
    named = set(re.findall(r"`([^`]*)`", " ".join(rows)))
    assert {name for name, _ in every_setting()} - named == set()
